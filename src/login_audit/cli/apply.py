"""``login-audit apply``: disable or delete the accounts of a cleanup CSV, safely."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from login_audit.actions import (
    ACTIONS,
    CANNOT,
    DONE,
    FAILED,
    JOURNAL_FILENAME,
    PLANNED,
    Change,
    Journal,
    Recheck,
    Requests,
    apply_json,
    describe,
    execute,
    plan,
    recheck,
    requests_from_archive,
    requests_from_csv,
)
from login_audit.archive.base import Archive
from login_audit.cli.common import (
    archive_options,
    build_policy,
    chosen_target,
    common_options,
    evidence_options,
    evidence_settings,
    exclusion_options,
    http_options,
    http_settings,
    open_archive_for,
    open_platform,
    tenant_options,
)
from login_audit.cli.state import CONTEXT, AppState
from login_audit.errors import EXIT_CONFIG, EXIT_INCOMPLETE, EXIT_OK, ConfigError
from login_audit.locks import file_lock
from login_audit.printable import printable
from login_audit.reports.atomic import check_output_dir, ensure_dir
from login_audit.service import tenant_key
from login_audit.timeutil import format_minute, utcnow


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
    help="Act only on accounts with no successful logon in this many days, read again "
    "from the audit log just before acting.",
)
@exclusion_options
@evidence_options
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
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Also print the plan (with --yes, its results) as JSON on stdout: each account, "
    "the action, the outcome and the evidence checked.",
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
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Disable (or delete) the accounts of a cleanup CSV, each proven stale again first.

    Acts on --from CSV, or on the last complete audit of the tenant in the archive.
    Without --yes it only prints the plan. With --yes it holds the tenant's lock, lists
    the accounts and reads every logon of the last --days again, and skips, with the
    reason, any account that signed in within --days, is not the account the audit
    reported, changed status, no longer exists, is excluded, cannot be changed on this
    platform, or is the last enabled administrator. It refuses to change more than
    --max-changes accounts, stops at the first failure, and journals every action in
    apply_journal.csv. A re-run is safe: accounts already disabled are skipped.

    \b
    Examples:
      login-audit apply --from reports/filtered_accounts_report.csv          # the plan
      login-audit apply --from reports/filtered_accounts_report.csv --yes    # disable
      login-audit apply --from f.csv --action delete --yes --confirm-delete
      login-audit apply --from f.csv --json > plan.json                      # for approval
    """
    state = click.get_current_context().ensure_object(AppState)
    settings = http_settings(kwargs)
    evidence = evidence_settings(kwargs)
    target = chosen_target(platform, region, base_url)
    if target.platform == "cloudone" and not unverified_cloudone_actions:
        raise ConfigError(
            "Cloud One documents no API to disable or delete users; apply refuses unless "
            "--unverified-cloudone-actions is given (see the README)"
        )
    policy = build_policy(
        days, include_disabled, exclude, exclude_role, exclude_file, 3650, evidence=evidence
    )
    if no_archive and not from_csv:
        raise ConfigError("--no-archive needs --from CSV: there is no last audit to act on")
    key = tenant_key(target, tenant_name)
    label = f"{key.platform}/{key.region}/{key.name}"
    with contextlib.ExitStack() as stack:
        archive = None if no_archive else open_archive_for(state, archive_spec)
        if archive is not None:
            stack.callback(archive.close)
        tenant = archive.tenant_id(key) if archive else None
        if from_csv:
            requests = requests_from_csv(Path(from_csv))
        else:
            assert archive is not None and tenant is not None
            requests = requests_from_archive(archive, tenant)
        out = check_output_dir(Path(output_dir))
        if yes:
            ensure_dir(out)  # a dry run writes nothing, so it creates no folder
            # Listing, deciding and acting all happen under the tenant's lock, so that two
            # runs can never both count the same administrator as the one that remains.
            lock_path = out / f"{JOURNAL_FILENAME}.lock"
            busy = f"another login-audit apply keeps its journal in {out}; wait for it to finish"
            stack.enter_context(file_lock(lock_path, busy))
            if archive is not None and tenant is not None:
                stack.enter_context(archive.lock(tenant))
        client = stack.enter_context(open_platform(state, target, token_file, settings))
        found = recheck(client, policy, utcnow())
        changes = plan(requests, found, policy, action, client)
        _show_plan(requests, found, changes, action)

        def emit(shown: list[Change], carried_out: bool, refused: str | None) -> None:
            if as_json:
                doc = apply_json(
                    label,
                    requests,
                    found,
                    shown,
                    carried_out=carried_out,
                    refused=refused,
                    max_changes=max_changes,
                )
                # ASCII only: a control character of a vendor value is escaped, never sent.
                click.echo(json.dumps(doc, indent=2, ensure_ascii=True))
                state.json_mode = False  # this was the run's one JSON document

        planned = _count(changes)
        impossible = _impossible(changes)
        too_many = (
            f"{planned} changes planned, more than --max-changes {max_changes}; review the "
            f"plan, then --max-changes {planned} would allow it"
            if planned > max_changes
            else None
        )
        if impossible or too_many or not yes:
            refused = impossible or (too_many if yes else None)
            emit(changes, False, refused)
            if refused:
                raise ConfigError(refused)
            hint = too_many or "add --yes to carry out the plan"
            click.echo(f"dry run: nothing changed; {hint}", err=True)
            raise SystemExit(EXIT_OK)
        _confirm_delete(action, planned, confirm_delete)

        mirror = _mirror(archive, tenant) if archive is not None and tenant is not None else None
        journal = Journal(out / JOURNAL_FILENAME, label, mirror=mirror)
        try:
            results = execute(client, changes, journal)
        finally:
            journal.close()
    emit(results, True, None)
    done = sum(1 for r in results if r.outcome == DONE)
    failed = [r for r in results if r.outcome == FAILED]
    click.echo(
        f"apply: {done} {action}d, {len(failed)} failed; journal {out / JOURNAL_FILENAME}", err=True
    )
    for result in failed:
        click.echo(describe(result), err=True)
    raise SystemExit(EXIT_INCOMPLETE if failed else EXIT_OK)


def _mirror(archive: Archive, tenant: int) -> Callable[[Change, datetime], None]:
    """Journal each change in the archive too."""

    def mirror(change: Change, at: datetime) -> None:
        archive.journal(
            tenant,
            at,
            change.action,
            change.user_id,
            change.account_id,
            change.outcome,
            change.reason,
        )

    return mirror


def _count(changes: list[Change]) -> int:
    return sum(1 for c in changes if c.outcome == PLANNED)


def _show_plan(requests: Requests, found: Recheck, changes: list[Change], action: str) -> None:
    planned = _count(changes)
    click.echo(
        f"apply: {len(requests.rows)} accounts in {printable(requests.source)}; {planned} to "
        f"{action}, {len(changes) - planned} not (no successful logon may follow "
        f"{format_minute(found.since)} UTC; {found.events} logon events read again)",
        err=True,
    )
    for change in changes:
        click.echo(describe(change), err=True)


def _impossible(changes: list[Change]) -> str | None:
    """Why nothing of the plan can be carried out on this platform, or None."""
    cannot = [c for c in changes if c.outcome == CANNOT]
    if cannot and not _count(changes):
        return f"nothing in this plan can be carried out: {printable(cannot[0].reason)}"
    return None


def _confirm_delete(action: str, planned: int, confirmed: bool) -> None:
    """Ask for the typed confirmation of a deletion (or refuse when none can be asked)."""
    if action != "delete" or not planned or confirmed:
        return
    if not sys.stdin.isatty():
        raise ConfigError("deleting accounts needs --confirm-delete when not run interactively")
    word = click.prompt(
        f"Type 'delete {planned}' to delete these accounts",
        default="",
        show_default=False,
        err=True,
    )
    if word.strip() != f"delete {planned}":
        click.echo("apply: not confirmed; nothing changed", err=True)
        raise SystemExit(EXIT_CONFIG)
