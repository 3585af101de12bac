"""The jobs of one tenant as library calls: audit and report, sync, summarise, exit code.

The command line (``audit``, ``demo``, ``sync``, ``watch``), the original script and the
tests all run an audit through :func:`audit_and_report` and a sync through
:func:`sync_tenant`; none of them needs the command line to do it.
Logging for such a run is set up by :func:`configure_logging`, every record redacted.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from login_audit.archive import Archive, TenantKey
from login_audit.audit import SAMPLE, check_same_tenant, run_archived_audit, run_audit
from login_audit.config import Target
from login_audit.errors import EXIT_FINDINGS, EXIT_INCOMPLETE, EXIT_OK, ConfigError
from login_audit.exclusions import unmatched_exclusions
from login_audit.models import Policy, RunSummary
from login_audit.platforms.base import Platform
from login_audit.printable import printable
from login_audit.redaction import Redactor
from login_audit.reports import WriteNotes, prepare_in_background, write_reports
from login_audit.sync import ALL, SyncResult, sync_stream
from login_audit.timeutil import utcnow

log = logging.getLogger("login_audit")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

Progress = Callable[[str, int], None]


class LogFileError(ConfigError):
    """The log file cannot be opened for appending."""


def configure_logging(redactor: Redactor, level: str, log_file: str | None) -> None:
    """Send logs to stderr (and ``log_file``, 0600 when created), secrets scrubbed.

    Raises :class:`ValueError` for an unknown level and :class:`LogFileError` for a file
    that cannot be opened.
    """
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger("login_audit")
    root.handlers.clear()
    root.setLevel(numeric)
    root.propagate = False
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(logging.Formatter("login-audit: %(levelname)s: %(message)s"))
    console.addFilter(redactor)
    root.addHandler(console)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    if log_file:
        path = Path(log_file).expanduser()
        from login_audit.reports.atomic import looks_binary, open_failure, open_private_append

        def vet(fd: int) -> None:
            if looks_binary(fd):
                raise LogFileError(
                    f"cannot open log file {path}: it holds binary data (a NUL byte or a "
                    "SQLite header), so it is not a log file; name another file"
                )

        try:
            fd, created = open_private_append(path, os.O_RDWR, vet, tighten=False)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                os.write(fd, b"\n")  # our lines start on a line of their own
            stream = os.fdopen(fd, "a", encoding="utf-8")
        except OSError as exc:
            raise LogFileError(f"cannot open log file {path}: {open_failure(exc)}") from None
        # A text file we did not create may be shared on purpose: advise, never chmod it.
        if not created and os.fstat(fd).st_mode & (stat.S_IRGRP | stat.S_IROTH):
            root.warning(
                "log file %s can be read by other users; restrict it with: chmod 600 %s",
                path,
                path,
            )
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(redactor)
        root.addHandler(handler)


def audit_and_report(
    platform: Platform,
    *,
    policy: Policy,
    output_dir: Path,
    progress: Progress | None = None,
    archive: Archive | None = None,
    tenant: TenantKey | None = None,
    allow_short_history: bool = False,
    api_keys: bool = False,
) -> tuple[RunSummary, WriteNotes]:
    """Run one audit and write its reports.

    With an ``archive``, logons are synced into it first and read back from it, and the
    takeover signals of the period (when ``watch`` runs) join the reports.
    """
    from login_audit.reports.atomic import check_output_dir

    check_output_dir(output_dir)  # fail before the network work, not after it
    prepare_in_background()
    report = progress or (lambda stage, count: None)
    if archive is not None:
        summary = run_archived_audit(
            platform,
            archive,
            tenant or TenantKey(platform.name, platform.region, "default"),
            policy,
            progress=report,
            allow_short_history=allow_short_history,
            api_keys=api_keys,
        )
    else:
        summary = run_audit(platform, policy, progress=report, api_keys=api_keys)
    accounts = (finding.account for finding in summary.findings)
    summary = replace(
        summary,
        warnings=summary.warnings + unmatched_exclusions(accounts, policy),
        tenant_name=tenant.name if tenant else "",
    )
    if archive is not None and tenant is not None:
        from login_audit.watcher import period_signals

        since = summary.finished_at - timedelta(days=policy.days)
        signals = period_signals(archive, tenant, since, summary.finished_at)
        summary = replace(summary, signals=signals)
    if archive is not None:
        archive.checkpoint_in_background()  # while the reports are written
    notes = write_reports(summary, output_dir)
    if notes.neutralised:
        log.warning(
            "%d CSV values began like a spreadsheet formula; prefixed with ' to keep them inert",
            notes.neutralised,
        )
    return summary, notes


def sync_tenant(
    archive: Archive,
    platform: Platform,
    key: TenantKey,
    overlap_minutes: int,
    *,
    progress: Progress | None = None,
) -> SyncResult:
    """Under the tenant's sync lock: snapshot the accounts, then sync the ``all`` stream.

    Refuses, before storing anything, accounts that are mostly unknown to the archive's
    tenant of that key (see :func:`~login_audit.audit.check_same_tenant`).
    """
    tenant = archive.tenant_id(key)
    with archive.lock(tenant):
        accounts = list(platform.list_accounts())
        known = archive.known_account_ids(tenant)
        check_same_tenant(accounts[:SAMPLE], known, key, platform.base_url)
        archive.store_accounts(tenant, accounts, utcnow())
        return sync_stream(
            archive,
            platform,
            tenant,
            ALL,
            overlap=timedelta(minutes=overlap_minutes),
            progress=progress or (lambda stage, count: None),
        )


def render_summary(summary: RunSummary, notes: WriteNotes) -> str:
    """The one-screen summary printed on stderr after an audit."""
    counts = summary.counts()
    window = f"{summary.window.start:%Y-%m-%d} to {summary.window.end:%Y-%m-%d}"
    lines = [
        f"login-audit {summary.tool_version}: {summary.platform} ({summary.region}), "
        f"{len(summary.findings)} accounts, logons {window}, threshold {summary.policy.days} days",
        "  " + " | ".join(f"{kind} {count}" for kind, count in counts.items()),
        f"  to remove: {len(summary.to_remove)}",
        f"  requests: {summary.requests}, logon events read: {summary.events_read} "
        f"({summary.unmatched_events} identities in the log matched no account)",
    ]
    lines += [f"  wrote {path}" for path in notes.paths]
    if notes.neutralised:
        lines.append(
            f"  warning: {notes.neutralised} CSV values began like a spreadsheet formula and "
            "were prefixed with ' to keep them inert"
        )
    lines += [f"  warning: {warning}" for warning in summary.warnings]
    if not summary.complete:
        lines.append("  INCOMPLETE: accounts whose data could not be read are 'unknown' and")
        lines.append("  are not on the removal list:")
        lines += [f"    - {printable(problem)}" for problem in summary.problems]
        if notes.paths:
            lines.append(
                f"  This run's reports are in {notes.paths[0].parent}; the last complete "
                "reports beside that folder were left as they were."
            )
    return "\n".join(lines)


def tenant_key(target: Target, name: str) -> TenantKey:
    """How the archive names a tenant: platform, region (or the host of a custom URL), name."""
    return TenantKey(target.platform, target.key_region, name)


def exit_code_for(summary: RunSummary, fail_on_findings: bool) -> int:
    """0 complete, 3 findings (only with --fail-on-findings), 4 incomplete or unjudged."""
    if not summary.complete or summary.counts()["unknown"]:
        return EXIT_INCOMPLETE
    if fail_on_findings and summary.to_remove:
        return EXIT_FINDINGS
    return EXIT_OK
