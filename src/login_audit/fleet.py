"""Every tenant of the configuration file in one run (``login-audit audit --all``).

Tenants run concurrently; tenants of the same platform share one pacer, so together
they stay within the platform's rate limit. One failing tenant does not stop the others,
and the exit code reports the worst outcome.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from login_audit import __version__, interrupts
from login_audit.archive import (
    Archive,
    TenantKey,
    archive_failure,
    archive_secrets,
    open_archive,
)
from login_audit.config import (
    PLATFORMS,
    HttpSettings,
    Secret,
    TenantConfig,
    load_tenants,
    validate_days,
)
from login_audit.errors import (
    EXIT_CONFIG,
    EXIT_FINDINGS,
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_UNEXPECTED,
    ConfigError,
    LoginAuditError,
)
from login_audit.http import HttpClient, Pacer, cancel_all
from login_audit.models import Policy, RunSummary
from login_audit.platforms import authenticate, connect, retention_days
from login_audit.printable import printable
from login_audit.redaction import Redactor
from login_audit.reports import WriteNotes
from login_audit.reports.atomic import check_output_dir, ensure_dir, replace_set, write_atomic
from login_audit.reports.csvreport import CleanupCsv, write_rows
from login_audit.reports.jsonreport import summary_json
from login_audit.service import audit_and_report, exit_code_for, tenant_key
from login_audit.timeutil import utcnow

log = logging.getLogger(__name__)

#: From worst to best: what a scheduler should hear about first.
SEVERITY = (EXIT_UNEXPECTED, EXIT_CONFIG, EXIT_INCOMPLETE, EXIT_FINDINGS, EXIT_OK)


@dataclass
class TenantOutcome:
    """What happened to one tenant of a fleet run."""

    tenant: TenantConfig
    summary: RunSummary | None = None
    notes: WriteNotes | None = None
    error: str = ""
    code: int = EXIT_OK


def in_cleanup_file(outcome: TenantOutcome) -> bool:
    """Whether a tenant's removals join the combined cleanup file: only a complete run's,
    as only a complete run replaces a tenant's own cleanup file (see ``report_dir``)."""
    return outcome.summary is not None and outcome.summary.complete


def left_out(outcome: TenantOutcome) -> str:
    """Why a tenant is not in the combined cleanup file, in a few words."""
    if outcome.summary is None:
        return f"failed: {printable(outcome.error)}"
    problems = outcome.summary.problems
    return "incomplete" + (f": {printable(problems[0])}" if problems else "")


def worst(codes: list[int]) -> int:
    """The most severe exit code of ``codes``."""
    return min(codes, key=SEVERITY.index) if codes else EXIT_OK


@dataclass(frozen=True)
class FleetOptions:
    """How a fleet run audits: the shared policy (file values fill what the command line
    did not set, ``explicit``), HTTP settings, reports and archive."""

    policy: Policy
    explicit: frozenset[str]
    settings: HttpSettings
    output_dir: Path
    archive_spec: str | None
    no_archive: bool
    allow_short_history: bool
    fail_on_findings: bool
    max_archive_days: int
    api_keys: bool = False
    #: Tells a tenant's owners what its audit found (``audit --notify``): given the
    #: tenant's archive, key, summary and exit code, returns the exit code.
    notify: Callable[[Archive | None, TenantKey, RunSummary, int], int] | None = None


def tenant_policy(tenant: TenantConfig, options: FleetOptions) -> Policy:
    """File values override the defaults; options given on the command line override both."""
    base = options.policy

    def pick(name: str, file_value: Any, cli_value: Any) -> Any:
        return cli_value if name in options.explicit or file_value is None else file_value

    retention = retention_days(tenant.target.platform)
    days = int(pick("days", tenant.days, base.days))
    validate_days(days, retention if options.no_archive else options.max_archive_days)
    grace = pick(
        "grace_days",
        tenant.grace_days,
        None if "grace_days" not in options.explicit else base.grace_days,
    )
    return Policy(
        days=days,
        include_disabled=bool(
            pick("include_disabled", tenant.include_disabled, base.include_disabled)
        ),
        exclude_patterns=base.exclude_patterns + tenant.exclude,
        exclude_roles=base.exclude_roles + tenant.exclude_roles,
        grace_days=days if grace is None else int(grace),
        identity_map=base.identity_map + tenant.identity_map,
        ignore_identities=base.ignore_identities + tenant.ignore_identities,
        trust_empty_evidence=base.trust_empty_evidence + tenant.trust_empty_evidence,
    )


_CLOSING = threading.Lock()


def run_tenant(
    redactor: Redactor, tenant: TenantConfig, options: FleetOptions, pacers: dict[str, Pacer]
) -> TenantOutcome:
    """Audit one tenant into ``<output-dir>/<name>/``; failures are caught and reported."""
    outcome = TenantOutcome(tenant)
    archive = None
    try:
        policy = tenant_policy(tenant, options)
        token = tenant.load_token()
        redactor.add(token)
        auth = authenticate(tenant.target.platform, token)
        archive = None if options.no_archive else open_archive(options.archive_spec)
        with HttpClient(auth, options.settings, pacer=pacers[tenant.target.platform]) as http:
            key = tenant_key(tenant.target, tenant.name)
            summary, notes = audit_and_report(
                connect(tenant.target, http),
                policy=policy,
                output_dir=options.output_dir / tenant.name,
                archive=archive,
                tenant=key,
                allow_short_history=options.allow_short_history,
                api_keys=options.api_keys,
            )
        outcome.summary, outcome.notes = summary, notes
        outcome.code = exit_code_for(summary, options.fail_on_findings)
        if options.notify is not None:
            outcome.code = options.notify(archive, key, summary, outcome.code)
    except LoginAuditError as exc:
        outcome.error, outcome.code = redactor.scrub(str(exc)), exc.exit_code
        log.error("tenant %s: %s", tenant.name, outcome.error)
    except Exception as exc:  # one tenant's bug must not lose the others' reports
        failure = archive_failure(exc, archive.location if archive else "the archive")
        if failure is not None:
            outcome.error, outcome.code = redactor.scrub(str(failure)), failure.exit_code
            log.error("tenant %s: %s", tenant.name, outcome.error)
        else:
            outcome.error = redactor.scrub(f"{type(exc).__name__}: {exc}")
            outcome.code = EXIT_UNEXPECTED
            log.error("tenant %s: unexpected error: %s", tenant.name, outcome.error)
    finally:
        if archive is not None:
            # One at a time: SQLite deletes the write-ahead log when the last connection
            # closes, and tells it is the last by a lock; two tenants closing at the same
            # moment (all of them, when the run is interrupted) can each see the other and
            # leave the -wal and -shm files behind.
            with _CLOSING:
                archive.close()
    return outcome


def write_combined(outcomes: list[TenantOutcome], output_dir: Path) -> WriteNotes:
    """The combined ``filtered_accounts_report.csv`` (with ``Tenant``) and ``audit_report.json``."""
    notes = WriteNotes()
    rows = []
    for outcome in outcomes:
        if outcome.summary is not None and in_cleanup_file(outcome):
            rows += [
                [outcome.tenant.name, *row] for row in CleanupCsv().rows(outcome.summary.findings)
            ]
    data = {
        "schemaVersion": 1,
        "tool": {"name": "login-audit", "version": __version__},
        "exitCode": worst([o.code for o in outcomes]),
        "tenants": [
            {
                "tenant": o.tenant.name,
                "platform": o.tenant.target.platform,
                "region": o.tenant.target.key_region,
                "exitCode": o.code,
                "error": o.error or None,
                "inCleanupFile": in_cleanup_file(o),
                "report": summary_json(o.summary) if o.summary else None,
            }
            for o in outcomes
        ],
    }
    import json

    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    # Jinja2 only when a combined page is written: `audit` of one tenant imports this module.
    from login_audit.reports.htmlreport import HTML_FILENAME, FleetEntry, render_fleet

    def write(staging: Path) -> list[Path]:
        header = ("Tenant", "UserId", "RoleName", "RequestType")
        csv_path = write_atomic(
            staging / "filtered_accounts_report.csv",
            lambda h: write_rows(h, header, rows, notes),
            newline="",
        )
        pages = {
            o.tenant.name: str(path.relative_to(output_dir))
            for o in outcomes
            for path in (o.notes.paths if o.notes else [])
            if path.name == HTML_FILENAME
        }
        entries = [
            FleetEntry(o.tenant.name, o.summary, pages.get(o.tenant.name), o.code, o.error)
            for o in outcomes
        ]
        page = render_fleet(entries, utcnow())
        html_path = write_atomic(staging / "audit_report.html", lambda h: h.write(page))
        json_path = write_atomic(staging / "audit_report.json", lambda h: h.write(text))
        return [csv_path, html_path, json_path]

    notes.paths += replace_set(ensure_dir(output_dir), write)
    return notes


def fleet_json(outcomes: list[TenantOutcome], notes: WriteNotes) -> dict[str, Any]:
    """The ``--json`` summary of a fleet run: one entry per tenant, and the worst exit code."""
    return {
        "complete": all(o.summary is not None and o.summary.complete for o in outcomes),
        "exitCode": worst([o.code for o in outcomes]),
        "tenants": [
            {
                "tenant": o.tenant.name,
                "exitCode": o.code,
                "complete": bool(o.summary and o.summary.complete),
                "inCleanupFile": in_cleanup_file(o),
                "counts": o.summary.counts() if o.summary else None,
                "toRemove": len(o.summary.to_remove) if o.summary else None,
                "problems": list(o.summary.problems) if o.summary else [],
                "warnings": list(o.summary.warnings) if o.summary else [],
                "error": o.error or None,
                "reports": [str(p) for p in o.notes.paths] if o.notes else [],
            }
            for o in outcomes
        ],
        "reports": [str(path) for path in notes.paths],
    }


def audit_all(
    redactor: Redactor, config_path: Path, options: FleetOptions
) -> tuple[int, str, dict[str, Any]]:
    """Audit every configured tenant; return the worst exit code, a summary text and the
    ``--json`` document. Every secret met is added to ``redactor``, which the caller's
    logging scrubs with."""
    tenants = load_tenants(config_path)
    for tenant in tenants:
        if "/" in tenant.name or tenant.name.startswith("."):
            raise ConfigError(
                f"tenant name {tenant.name!r} cannot be the name of its reports' folder: it "
                "holds '/' or starts with '.' (hidden, or taken for a run's staging folder)"
            )
    check_output_dir(options.output_dir)  # refused now, or left as it was
    for secret in archive_secrets(options.archive_spec):
        redactor.add(Secret(secret))
    if not options.no_archive:
        # Create and migrate the shared archive once, before the tenants open it together.
        open_archive(options.archive_spec).close()
    # Created only now that the run goes ahead (the combined reports are written into it
    # whatever becomes of the tenants), so that each tenant's thread creates only its own
    # folder and none removes a parent folder another thread is about to write into.
    made = [f for f in (options.output_dir, *options.output_dir.parents) if not f.exists()]
    ensure_dir(options.output_dir)
    pacers = {
        platform: Pacer(options.settings.rate_limit, options.settings.rate_window)
        for platform in PLATFORMS
    }
    try:
        with ThreadPoolExecutor(
            max_workers=min(4, len(tenants)), initializer=interrupts.spare_this_thread
        ) as pool:
            try:
                outcomes = list(
                    pool.map(lambda t: run_tenant(redactor, t, options, pacers), tenants)
                )
            except KeyboardInterrupt:
                # The run ends: tenants not started never start, the running ones stop
                # within a request (not at the end of their audit) while the pool is
                # waited for.
                pool.shutdown(wait=False, cancel_futures=True)
                cancel_all()
                raise
    except KeyboardInterrupt:
        # No combined reports will come: the folders made for them go, if still empty.
        for folder in made:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    notes = write_combined(outcomes, options.output_dir)
    lines = [f"login-audit {__version__}: {len(outcomes)} tenants"]
    for o in outcomes:
        if o.summary is not None:
            state_text = "complete" if o.summary.complete else "INCOMPLETE"
            lines.append(
                f"  {o.tenant.name}: {state_text}, {len(o.summary.findings)} accounts, "
                f"{len(o.summary.to_remove)} to remove, exit {o.code}"
            )
            lines += [f"    warning: {warning}" for warning in o.summary.warnings]
        else:
            lines.append(f"  {o.tenant.name}: FAILED (exit {o.code}): {printable(o.error)}")
    missing = [o for o in outcomes if not in_cleanup_file(o)]
    if missing:
        lines.append("  left out of the combined cleanup file: ")
        lines[-1] += "; ".join(f"{o.tenant.name} ({left_out(o)})" for o in missing)
    lines += [f"  wrote {p}" for p in notes.paths]
    return worst([o.code for o in outcomes]), "\n".join(lines), fleet_json(outcomes, notes)
