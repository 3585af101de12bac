"""``sync``, ``export`` and ``archive``: keeping audit records beyond the vendor's retention."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from login_audit.archive.base import Archive, TenantInfo, TenantKey
from login_audit.cli.common import (
    ArchiveChoice,
    TenantChoice,
    archive_options,
    check_tenant_name,
    chosen_target,
    common_options,
    http_options,
    open_archive_for,
    open_platform,
    progress_reporter,
    quiet_broken_pipe,
    tenant_options,
)
from login_audit.cli.state import CONTEXT, AppState
from login_audit.config import HttpSettings, Target
from login_audit.errors import EXIT_INCOMPLETE, EXIT_OK, ConfigError
from login_audit.export import FORMATS, check_output, export_records, guess_format
from login_audit.platforms.base import Platform
from login_audit.printable import printable
from login_audit.reports import WriteNotes
from login_audit.service import sync_tenant, tenant_key
from login_audit.sync import SyncResult
from login_audit.timeutil import format_minute, format_z, parse_timestamp


def _date(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError:
        raise ConfigError(
            f"{option} {value!r} is not a date; use YYYY-MM-DD or an ISO-8601 time"
        ) from None


def _day(moment: datetime | None) -> str:
    return format_minute(moment, missing="-")


def run_sync(
    state: AppState,
    archive: Archive,
    *,
    target: Target,
    token_file: str | None,
    tenant_name: str,
    overlap_minutes: int,
    http: HttpSettings,
) -> SyncResult:
    """Snapshot the accounts and bring the ``all`` stream of one tenant up to date."""
    with open_platform(state, target, token_file, http) as platform:
        return sync_platform(archive, platform, tenant_key(target, tenant_name), overlap_minutes)


def sync_platform(
    archive: Archive,
    platform: Platform,
    key: TenantKey,
    overlap_minutes: int,
    *,
    quiet: bool = False,
) -> SyncResult:
    """:func:`login_audit.service.sync_tenant` with progress drawn on a terminal."""
    with progress_reporter(not quiet) as progress:
        return sync_tenant(archive, platform, key, overlap_minutes, progress=progress)


def describe_sync(result: SyncResult) -> str:
    """One line about a sync, for stderr."""
    how = "resumed" if result.resumed else "read"
    text = (
        f"sync: {how} {result.fetched} records ({result.inserted} new) in {result.pages} pages "
        f"and {result.requests} requests, {_day(result.window.start)} to "
        f"{_day(result.window.end)}"
    )
    if not result.complete:
        text += (
            f"\nINCOMPLETE: {printable(result.problem)}; the next run resumes from the last "
            "saved page"
        )
    return text


overlap_option = click.option(
    "--overlap-minutes",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    envvar="LOGIN_AUDIT_OVERLAP_MINUTES",
    help="Re-read this much before the last sync's end, for records that arrive late.",
)


@click.command(context_settings=CONTEXT)
@tenant_options
@archive_options
@overlap_option
@http_options
@common_options
def sync(
    tenant_choice: TenantChoice,
    archive_choice: ArchiveChoice,
    overlap_minutes: int,
    http: HttpSettings,
) -> None:
    """Pull every audit record of the tenant into the archive.

    The first run reads the vendor's whole retention (Vision One 180 days, Cloud One
    one year); later runs read only
    what is new since the last one (minus --overlap-minutes). Every page is committed
    with its checkpoint, so an interrupted sync resumes where it stopped. Accounts are
    stored as snapshots, so removed accounts and role changes stay visible.

    \b
    Example (daily, from cron):
      login-audit sync --region eu --archive /var/lib/login-audit/archive.sqlite3
    """
    state = click.get_current_context().ensure_object(AppState)
    target = chosen_target(tenant_choice)
    archive = open_archive_for(state, archive_choice.archive_spec)
    try:
        result = run_sync(
            state,
            archive,
            target=target,
            token_file=tenant_choice.token_file,
            tenant_name=archive_choice.tenant_name,
            overlap_minutes=overlap_minutes,
            http=http,
        )
    finally:
        archive.close()
    click.echo(describe_sync(result), err=True)
    raise SystemExit(EXIT_OK if result.complete else EXIT_INCOMPLETE)


@click.command(context_settings=CONTEXT)
@tenant_options
@archive_options
@click.option(
    "--output", "-o", default="-", show_default=True, help="File to write ('-' for stdout)."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="json (one array), jsonl, csv, or ocsf (logons as OCSF Authentication events, "
    "JSONL) [default: from the --output suffix, else json].",
)
@click.option("--since", metavar="DATE", help="Only records logged at or after DATE.")
@click.option("--until", metavar="DATE", help="Only records logged before DATE.")
@click.option("--category", help="Only records of this category, e.g. 'Logon and Logoff'.")
@click.option(
    "--no-sync", is_flag=True, help="Export what the archive holds without asking the vendor."
)
@click.option("--force", is_flag=True, help="Overwrite --output when it already exists.")
@overlap_option
@http_options
@common_options
def export(
    tenant_choice: TenantChoice,
    archive_choice: ArchiveChoice,
    output: str,
    fmt: str | None,
    since: str | None,
    until: str | None,
    category: str | None,
    no_sync: bool,
    force: bool,
    overlap_minutes: int,
    http: HttpSettings,
) -> None:
    """Write archived audit records as JSON, JSONL or CSV, streaming.

    Brings the archive up to date first (reading only what is new), unless --no-sync.
    Records are written oldest first, as the API returned them.

    With --platform cloudone and --output AuditLogs.json this writes the file the
    vendor's example script produces, without losing pages to 429s.

    \b
    Examples:
      login-audit export --output audit-2026.jsonl --since 2026-01-01
      login-audit export --no-sync --category 'Logon and Logoff' --format csv -o logons.csv
    """
    state = click.get_current_context().ensure_object(AppState)
    start, end = _date(since, "--since"), _date(until, "--until")
    if start is not None and end is not None and start >= end:
        raise ConfigError(
            f"--since {since} is not before --until {until}: no record could match; swap them"
        )
    fmt = guess_format(output, fmt)
    check_output(output, force=force)
    target = chosen_target(tenant_choice)
    tenant_name = archive_choice.tenant_name
    archive = open_archive_for(state, archive_choice.archive_spec, read_only=no_sync)
    code = EXIT_OK
    try:
        if not no_sync:
            result = run_sync(
                state,
                archive,
                target=target,
                token_file=tenant_choice.token_file,
                tenant_name=tenant_name,
                overlap_minutes=overlap_minutes,
                http=http,
            )
            click.echo(describe_sync(result), err=True)
            if not result.complete:
                code = EXIT_INCOMPLETE
        key = tenant_key(target, tenant_name)
        tenant = archive.find_tenant(key)
        if tenant is None:
            raise ConfigError(
                f"the archive {archive.location} holds no tenant {key.name!r} of "
                f"{key.platform} {key.region}; 'archive info' lists the tenants it holds"
            )
        notes = WriteNotes()
        with quiet_broken_pipe():
            count = export_records(
                archive.iter_records(tenant, start, end, category), output, fmt, notes
            )
    finally:
        archive.close()
    where = "stdout" if output == "-" else output
    click.echo(f"export: wrote {count} records as {fmt} to {where}", err=True)
    raise SystemExit(code)


@click.group("archive", context_settings=CONTEXT)
def archive_group() -> None:
    """Inspect or prune the event archive."""


def info_json(item: TenantInfo) -> dict[str, Any]:
    """One tenant of ``archive info --json``."""

    def t(moment: datetime | None) -> str | None:
        return format_z(moment) if moment else None

    return {
        "platform": item.key.platform,
        "region": item.key.region,
        "tenant": item.key.name,
        "records": item.records,
        "firstRecord": t(item.first_record),
        "lastRecord": t(item.last_record),
        "accounts": item.accounts,
        "rawBytes": item.raw_bytes,
        "streams": {
            name: {
                "coveredFrom": t(s.covered_from),
                "watermark": t(s.watermark),
                "lastSync": t(s.last_sync_at),
                "interrupted": s.checkpoint is not None,
            }
            for name, s in item.streams.items()
        },
    }


@archive_group.command("info", context_settings=CONTEXT)
@click.option("--archive", "archive_spec", envvar="LOGIN_AUDIT_ARCHIVE", help="The archive.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@common_options
def archive_info(archive_spec: str | None, as_json: bool) -> None:
    """Show, per tenant: records, first and last record time, watermark, last sync, size.

    \b
    Examples:
      login-audit archive info
      login-audit archive info --archive postgresql://audit@db.example/login_audit --json
    """
    state = click.get_current_context().ensure_object(AppState)
    archive = open_archive_for(state, archive_spec, read_only=True)
    try:
        items, size = archive.info(), archive.size_bytes()
    finally:
        archive.close()
    if as_json:
        data = {
            "archive": archive.location,
            "sizeBytes": size,
            "tenants": [info_json(i) for i in items],
        }
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"archive {archive.location}: {size / 1_048_576:.1f} MiB, {len(items)} tenants")
    for item in items:
        key = item.key
        click.echo(
            f"  {key.platform} {key.region} {key.name}: {item.records} records "
            f"({_day(item.first_record)} to {_day(item.last_record)}), {item.accounts} accounts, "
            f"{item.raw_bytes / 1_048_576:.1f} MiB of raw records"
        )
        for name, s in item.streams.items():
            flag = " (interrupted; resumes on next run)" if s.checkpoint else ""
            click.echo(
                f"    {name}: complete from {_day(s.covered_from)} to {_day(s.watermark)}, "
                f"last sync {_day(s.last_sync_at)}{flag}"
            )


@archive_group.command("prune", context_settings=CONTEXT)
@click.option("--archive", "archive_spec", envvar="LOGIN_AUDIT_ARCHIVE", help="The archive.")
@click.option(
    "--tenant",
    "only_tenant",
    metavar="NAME",
    callback=check_tenant_name,
    help="Only the tenants of this name (as 'archive info' lists them) [default: all].",
)
@click.option("--before", required=True, metavar="DATE", help="Delete records logged before DATE.")
@click.option("--yes", is_flag=True, help="Really delete (without it nothing is deleted).")
@common_options
def archive_prune(
    archive_spec: str | None, only_tenant: str | None, before: str, yes: bool
) -> None:
    """Delete records older than a date, for a retention policy.

    Audits that need older logons will then refuse or report 'none since' the new
    oldest record.

    \b
    Example:
      login-audit archive prune --before 2024-01-01 --yes
    """
    cutoff = _date(before, "--before")
    assert cutoff is not None
    if not yes:
        raise ConfigError(
            f"this deletes every archived record before {cutoff:%Y-%m-%d}; add --yes to go ahead"
        )
    state = click.get_current_context().ensure_object(AppState)
    archive = open_archive_for(state, archive_spec, existing=True)
    try:
        if only_tenant is None:
            deleted = archive.prune(cutoff)
        else:
            keys = [i.key for i in archive.info() if i.key.name == only_tenant]
            if not keys:
                raise ConfigError(
                    f"no tenant named {only_tenant!r} in the archive; 'archive info' lists them"
                )
            deleted = sum(archive.prune(cutoff, archive.tenant_id(key)) for key in keys)
    finally:
        archive.close()
    click.echo(f"prune: deleted {deleted} records logged before {cutoff:%Y-%m-%d}", err=True)
