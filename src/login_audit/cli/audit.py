"""``login-audit audit``: the stale-account audit and its reports."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from login_audit.cli.common import (
    MAX_ARCHIVE_DAYS,
    ArchiveChoice,
    Evidence,
    Exclusions,
    TenantChoice,
    archive_options,
    audit_and_report,
    build_policy,
    chosen_target,
    common_options,
    evidence_options,
    exclusion_options,
    http_options,
    open_archive_for,
    open_platform,
    tenant_options,
)
from login_audit.cli.state import CONTEXT, AppState
from login_audit.cli.watch import WebhookChoice, notify_owners, notify_webhook, webhook_options
from login_audit.config import HttpSettings, default_config_path
from login_audit.fleet import FleetOptions, audit_all
from login_audit.models import Policy, RunSummary
from login_audit.platforms import retention_days
from login_audit.reports import WriteNotes
from login_audit.service import exit_code_for, render_summary, tenant_key


@click.command(context_settings=CONTEXT)
@tenant_options
@click.option(
    "--days",
    type=int,
    default=Policy.days,
    show_default=True,
    envvar="LOGIN_AUDIT_DAYS",
    help="Flag accounts with no successful logon in this many days (at most 180 unless the "
    "archive holds more history).",
)
@click.option(
    "--grace-days",
    type=int,
    envvar="LOGIN_AUDIT_GRACE_DAYS",
    help="Never flag accounts the archive first saw fewer than this many days ago "
    "(0 to 36500) [default: --days].",
)
@click.option(
    "--allow-short-history",
    is_flag=True,
    envvar="LOGIN_AUDIT_ALLOW_SHORT_HISTORY",
    help="Run even when the archive and the vendor do not reach back --days; 'no-login' then "
    "means 'none since' the oldest record.",
)
@click.option(
    "--no-archive",
    is_flag=True,
    envvar="LOGIN_AUDIT_NO_ARCHIVE",
    help="Read logons straight from the vendor, store nothing (at most 180 days).",
)
@archive_options
@click.option(
    "--all",
    "all_tenants",
    is_flag=True,
    help="Audit every tenant of the configuration file, concurrently.",
)
@click.option(
    "--config",
    "config_path",
    envvar="LOGIN_AUDIT_CONFIG",
    type=click.Path(dir_okay=False),
    help="The tenants file for --all. [default: config.toml in the user configuration "
    "directory, ~/.config/login-audit/ on Linux]",
)
@exclusion_options
@evidence_options
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    envvar="LOGIN_AUDIT_OUTPUT_DIR",
    help="Where the reports are written.",
)
@click.option(
    "--fail-on-findings",
    is_flag=True,
    envvar="LOGIN_AUDIT_FAIL_ON_FINDINGS",
    help="Exit 3 when accounts are to be removed (for CI and schedulers).",
)
@click.option(
    "--quiet", "-q", is_flag=True, envvar="LOGIN_AUDIT_QUIET", help="Print no summary or progress."
)
@click.option(
    "--api-keys",
    "audit_keys",
    is_flag=True,
    envvar="LOGIN_AUDIT_API_KEYS",
    help="Also list API keys unused in --days, expired or never used (stale_api_keys.csv).",
)
@click.option(
    "--json",
    "json_summary",
    is_flag=True,
    envvar="LOGIN_AUDIT_JSON",
    help="Print a JSON summary on stdout (counts, reports written, exit code) for scripts.",
)
@click.option(
    "--notify",
    is_flag=True,
    envvar="LOGIN_AUDIT_NOTIFY",
    help="Post to the webhook (--webhook-file, or $LOGIN_AUDIT_WEBHOOK_URL) which accounts became "
    "stale since the last audit in the archive, and whether the run was incomplete.",
)
@webhook_options
@http_options
@common_options
def audit(
    tenant_choice: TenantChoice,
    days: int,
    exclusions: Exclusions,
    evidence: Evidence,
    output_dir: str,
    fail_on_findings: bool,
    quiet: bool,
    audit_keys: bool,
    json_summary: bool,
    grace_days: int | None,
    allow_short_history: bool,
    no_archive: bool,
    archive_choice: ArchiveChoice,
    all_tenants: bool,
    config_path: str | None,
    notify: bool,
    webhook: WebhookChoice,
    http: HttpSettings,
) -> None:
    """Audit a Vision One or Cloud One tenant; write the cleanup CSV and detailed reports.

    Reads every IAM account and the 'Log on' events of the audit log, and gives each
    account one finding: active, inactive, no-login, excluded or unknown. Logons are
    kept in the archive (--archive), so later runs read only what is new and --days
    can reach beyond the vendor's 180 days once the archive holds that much history;
    --no-archive reads the 180 days straight from the vendor instead. Inactive and
    no-login accounts go to filtered_accounts_report.csv
    (UserId,RoleName,RequestType=Remove). If any data could not be read, affected
    accounts are 'unknown', never removed, and the exit code is 4.

    The token comes from $TMV1_TOKEN (Cloud One: $C1_API_KEY) or --token-file; it is
    never printed.

    \b
    Examples:
      login-audit audit --region eu --days 90 --output-dir reports/
      login-audit audit --base-url https://api.xdr.trendmicro.com --exclude 'svc-*'
      login-audit audit --token-file ~/.config/tmv1.token --fail-on-findings
      login-audit audit --platform cloudone --region de-1
    """
    ctx = click.get_current_context()
    state = ctx.ensure_object(AppState)
    state.json_mode = json_summary
    sink = notify_webhook(state, notify, webhook, http)
    if sink is not None:
        ctx.call_on_close(sink.close)
    if all_tenants:
        explicit = frozenset(
            name
            for name in ("days", "grace_days", "include_disabled")
            if ctx.get_parameter_source(name)
            in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
        )
        base = build_policy(days, exclusions, evidence, MAX_ARCHIVE_DAYS, grace_days)
        options = FleetOptions(
            policy=base,
            explicit=explicit,
            settings=http,
            output_dir=Path(output_dir),
            archive_spec=archive_choice.archive_spec,
            no_archive=no_archive,
            allow_short_history=allow_short_history,
            fail_on_findings=fail_on_findings,
            max_archive_days=MAX_ARCHIVE_DAYS,
            api_keys=audit_keys,
            notify=functools.partial(notify_owners, sink) if sink else None,
        )
        code, text, document = audit_all(
            state.redactor, Path(config_path) if config_path else default_config_path(), options
        )
        if json_summary:
            click.echo(json.dumps(document, indent=2))
        if not quiet:
            click.echo(text, err=True)
        raise SystemExit(code)
    target = chosen_target(tenant_choice)
    max_days = retention_days(target.platform) if no_archive else MAX_ARCHIVE_DAYS
    policy = build_policy(days, exclusions, evidence, max_days, grace_days)
    archive = None if no_archive else open_archive_for(state, archive_choice.archive_spec)
    key = tenant_key(target, archive_choice.tenant_name)
    try:
        with open_platform(state, target, tenant_choice.token_file, http) as client:
            summary, notes = audit_and_report(
                state,
                client,
                policy=policy,
                output_dir=Path(output_dir),
                quiet=quiet,
                archive=archive,
                tenant=key,
                allow_short_history=allow_short_history,
                api_keys=audit_keys,
            )
        code = exit_code_for(summary, fail_on_findings)
        if sink is not None:
            code = notify_owners(sink, archive, key, summary, code)
    finally:
        if archive is not None:
            archive.close()
    if json_summary:
        click.echo(json.dumps(script_summary(summary, notes, code), indent=2))
    if not quiet:
        click.echo(render_summary(summary, notes), err=True)
    raise SystemExit(code)


def script_summary(summary: RunSummary, notes: WriteNotes, code: int) -> dict[str, Any]:
    """The ``--json`` summary: what a script needs to act on a run."""
    return {
        "complete": summary.complete,
        "exitCode": code,
        "counts": summary.counts(),
        "toRemove": len(summary.to_remove),
        "staleApiKeys": (
            None if summary.api_keys is None else sum(1 for f in summary.api_keys if f.flagged)
        ),
        "requests": summary.requests,
        "problems": list(summary.problems),
        "warnings": list(summary.warnings),
        "reports": [str(path) for path in notes.paths],
    }
