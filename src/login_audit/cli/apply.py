"""``login-audit apply``: disable or delete the accounts of a cleanup CSV, safely."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from login_audit.actions import (
    ACTIONS,
    JOURNAL_FILENAME,
    Change,
    Journal,
    execute,
    plan,
    read_cleanup_csv,
    recent_logons,
    recheck_since,
)
from login_audit.cli.common import (
    CONTEXT,
    AppState,
    archive_options,
    build_policy,
    chosen_target,
    common_options,
    exclusion_options,
    http_options,
    http_settings,
    open_archive_for,
    open_platform,
    tenant_key,
    tenant_options,
)
from login_audit.errors import EXIT_CONFIG, EXIT_INCOMPLETE, EXIT_OK, ConfigError
from login_audit.reports.atomic import ensure_dir
from login_audit.timeutil import utcnow


def _line(change: Change) -> str:
    return f"  {change.outcome:8} {change.action:7} {change.user_id}: {change.reason}"


@click.command(context_settings=CONTEXT)
@click.option(
    "--from",
    "from_csv",
    type=click.Path(dir_okay=False),
    help="The cleanup CSV of an audit (filtered_accounts_report.csv) [default: the last "
    "audit of this tenant in the archive].",
)
@click.option(
    "--action",
    type=click.Choice(ACTIONS),
    default="disable",
    show_default=True,
    help="Disable the accounts (reversible) or delete them.",
)
@click.option("--yes", is_flag=True, help="Carry out the plan (without it nothing changes).")
@click.option(
    "--confirm-delete",
    is_flag=True,
    help="With --yes --action delete: do not ask for the confirmation word.",
)
@click.option(
    "--max-changes",
    type=click.IntRange(min=1),
    default=25,
    show_default=True,
    envvar="LOGIN_AUDIT_MAX_CHANGES",
    help="Refuse a run that would change more accounts than this.",
)
@click.option(
    "--days",
    type=int,
    default=90,
    show_default=True,
    envvar="LOGIN_AUDIT_DAYS",
    help="Without audit_report.json beside the CSV, re-check this many days of logons.",
)
@exclusion_options
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    envvar="LOGIN_AUDIT_OUTPUT_DIR",
    help=f"Where {JOURNAL_FILENAME} is kept.",
)
@click.option(
    "--unverified-cloudone-actions",
    is_flag=True,
    help="Allow changes on Cloud One through undocumented endpoints (see the README).",
)
@tenant_options
@archive_options
@click.option(
    "--no-archive",
    is_flag=True,
    help="Neither read the last audit from the archive nor journal there (needs --from).",
)
@http_options
@common_options
def apply(
    from_csv: str | None,
    action: str,
    yes: bool,
    confirm_delete: bool,
    max_changes: int,
    days: int,
    include_disabled: bool,
    exclude: tuple[str, ...],
    exclude_role: tuple[str, ...],
    exclude_file: str | None,
    output_dir: str,
    unverified_cloudone_actions: bool,
    platform: str,
    region: str | None,
    base_url: str | None,
    token_file: str | None,
    archive_spec: str | None,
    tenant_name: str,
    no_archive: bool,
    **kwargs: Any,
) -> None:
    """Disable (or delete) the accounts of a cleanup CSV, after checking each one again.

    Acts on --from CSV, or on the last complete audit of the tenant in the archive.
    Without --yes it only prints the plan. Before acting it reads the accounts and
    every logon since the audit again, and skips, with the reason, any account that
    signed in since, changed status, no longer exists, is excluded, or is the last
    enabled Master Administrator. It refuses to change more than --max-changes accounts,
    stops at the first failure, and journals every action in apply_journal.csv. A
    re-run is safe: accounts already disabled are skipped.

    \b
    Examples:
      login-audit apply --from reports/filtered_accounts_report.csv          # the plan
      login-audit apply --from reports/filtered_accounts_report.csv --yes    # disable
      login-audit apply --from f.csv --action delete --yes --confirm-delete
    """
    state = click.get_current_context().ensure_object(AppState)
    settings = http_settings(kwargs)
    target = chosen_target(platform, region, base_url)
    if target.platform == "cloudone" and not unverified_cloudone_actions:
        raise ConfigError(
            "Cloud One documents no API to disable or delete users; apply refuses unless "
            "--unverified-cloudone-actions is given (see the README)"
        )
    policy = build_policy(days, include_disabled, exclude, exclude_role, exclude_file, 3650)
    if no_archive and not from_csv:
        raise ConfigError("--no-archive needs --from CSV: there is no last audit to act on")
    archive = None if no_archive else open_archive_for(state, archive_spec)
    tenant = archive.tenant_id(tenant_key(target, tenant_name)) if archive else None
    now = utcnow()
    if from_csv:
        source = from_csv
        requested = read_cleanup_csv(Path(from_csv))
        since = recheck_since(Path(from_csv), policy, now)
    else:
        assert archive is not None and tenant is not None
        last = archive.last_audit(tenant)
        if last is None:
            raise ConfigError(
                "the archive holds no audit of this tenant: run 'login-audit audit' first, "
                "or pass --from CSV"
            )
        window_end, complete, _, requested = last
        if not complete:
            raise ConfigError(
                "the last audit of this tenant was incomplete: run a complete audit first"
            )
        source = f"the last audit ({window_end:%Y-%m-%d %H:%M} UTC)"
        since = window_end - timedelta(minutes=5)
    out = ensure_dir(Path(output_dir))

    def mirror(change: Change, at: datetime) -> None:
        if archive is not None and tenant is not None:
            archive.journal(
                tenant,
                at,
                change.action,
                change.user_id,
                change.account_id,
                change.outcome,
                change.reason,
            )

    with open_platform(state, target, token_file, settings) as client:
        accounts = list(client.list_accounts())
        index = recent_logons(client, accounts, since, now)
        changes = plan(requested, accounts, index, policy, action, since)
        planned = [c for c in changes if c.outcome == "planned"]
        click.echo(
            f"apply: {len(requested)} accounts in {source}; {len(planned)} to {action}, "
            f"{len(changes) - len(planned)} skipped (logons re-checked since "
            f"{since:%Y-%m-%d %H:%M} UTC)",
            err=True,
        )
        for change in changes:
            click.echo(_line(change), err=True)
        if len(planned) > max_changes:
            raise ConfigError(
                f"{len(planned)} changes planned, more than --max-changes {max_changes}; "
                "review the list and raise --max-changes to go ahead"
            )
        if not yes:
            click.echo("dry run: nothing changed; add --yes to carry out the plan", err=True)
            raise SystemExit(EXIT_OK)
        if action == "delete" and planned and not confirm_delete:
            if not sys.stdin.isatty():
                raise ConfigError(
                    "deleting accounts needs --confirm-delete when not run interactively"
                )
            word = click.prompt(
                f"Type 'delete {len(planned)}' to delete these accounts",
                default="",
                show_default=False,
                err=True,
            )
            if word.strip() != f"delete {len(planned)}":
                click.echo("apply: not confirmed; nothing changed", err=True)
                raise SystemExit(EXIT_CONFIG)
        journal = Journal(out / JOURNAL_FILENAME, mirror=mirror)
        try:
            results = execute(client, changes, journal)
        finally:
            journal.close()
            if archive is not None:
                archive.close()
    done = sum(1 for r in results if r.outcome == "done")
    failed = [r for r in results if r.outcome == "failed"]
    click.echo(
        f"apply: {done} {action}d, {len(failed)} failed; journal {out / JOURNAL_FILENAME}", err=True
    )
    for result in failed:
        click.echo(_line(result), err=True)
    raise SystemExit(EXIT_INCOMPLETE if failed else EXIT_OK)
