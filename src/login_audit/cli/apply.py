"""``login-audit apply``: disable or delete the accounts of a cleanup CSV, safely."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from login_audit.actions import (
    ACTIONS,
    DONE,
    JOURNAL_FILENAME,
    STARTED,
    ApplyInterrupted,
    describe,
)
from login_audit.cleanup import (
    DEFAULT_MAX_CHANGES,
    ApplyPlan,
    ApplyRequest,
    ApplyResult,
    Cleanup,
    check_request,
    prepare,
)
from login_audit.cli.common import (
    MAX_ARCHIVE_DAYS,
    ArchiveChoice,
    Evidence,
    Exclusions,
    TenantChoice,
    archive_options,
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
from login_audit.config import HttpSettings
from login_audit.errors import EXIT_CONFIG, EXIT_INCOMPLETE, EXIT_OK, ConfigError
from login_audit.models import Policy
from login_audit.printable import printable
from login_audit.service import tenant_key
from login_audit.timeutil import format_minute


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
    default=DEFAULT_MAX_CHANGES,
    show_default=True,
    envvar="LOGIN_AUDIT_MAX_CHANGES",
    help="Refuse a run that would change more accounts than this.",
)
@click.option(
    "--days",
    type=int,
    default=Policy.days,
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
    exclusions: Exclusions,
    evidence: Evidence,
    output_dir: str,
    unverified_cloudone_actions: bool,
    tenant_choice: TenantChoice,
    archive_choice: ArchiveChoice,
    no_archive: bool,
    as_json: bool,
    http: HttpSettings,
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
    if confirm_delete and action != "delete":
        raise ConfigError(
            "--confirm-delete confirms a deletion, and --action is disable: drop "
            "--confirm-delete, or add --action delete to delete"
        )
    target = chosen_target(tenant_choice)
    policy = build_policy(days, exclusions, evidence, MAX_ARCHIVE_DAYS)
    request = ApplyRequest(
        tenant=tenant_key(target, archive_choice.tenant_name),
        policy=policy,
        action=action,
        source=Path(from_csv) if from_csv else None,
        output_dir=Path(output_dir),
        max_changes=max_changes,
        allow_undocumented=unverified_cloudone_actions,
    )
    check_request(request, has_archive=not no_archive)
    archive = None if no_archive else open_archive_for(state, archive_choice.archive_spec)
    connect = functools.partial(open_platform, state, target, tenant_choice.token_file, http)
    try:
        with prepare(request, connect, archive, dry_run=not yes) as cleanup:
            result = _review_then_carry_out(state, cleanup, yes, confirm_delete, as_json)
    finally:
        if archive is not None:
            archive.close()
    done, failed = len(result.done), result.failed
    click.echo(f"apply: {done} {action}d, {len(failed)} failed; journal {result.journal}", err=True)
    for change in failed:
        click.echo(describe(change), err=True)
    raise SystemExit(EXIT_OK if result.complete else EXIT_INCOMPLETE)


def _review_then_carry_out(
    state: AppState, cleanup: Cleanup, yes: bool, confirm_delete: bool, as_json: bool
) -> ApplyResult:
    """Show the plan; stop at a dry run or a refusal; else confirm and carry it out."""
    plan = cleanup.plan
    _show_plan(plan)

    def emit(document: dict[str, object]) -> None:
        if as_json:
            # ASCII only: a control character of a vendor value is escaped, never sent.
            click.echo(json.dumps(document, indent=2, ensure_ascii=True))
            state.json_mode = False  # this was the run's one JSON document

    refused = plan.refusal(carrying_out=yes)
    if refused or not yes:
        emit(plan.document(refused=refused, exit_code=EXIT_CONFIG if refused else EXIT_OK))
        if refused:
            raise ConfigError(refused)
        hint = plan.over_limit or "add --yes to carry out the plan"
        click.echo(f"dry run: nothing changed; {hint}", err=True)
        raise SystemExit(EXIT_OK)
    _confirm_delete(plan.request.action, plan.planned, confirm_delete)
    try:
        result = cleanup.carry_out()
    except ApplyInterrupted as exc:
        emit(plan.document(results=exc.changes, exit_code=exc.exit_code, error=str(exc)))
        for change in exc.changes:
            if change.outcome in (STARTED, DONE):
                click.echo(describe(change), err=True)
        click.echo(f"apply: journal {plan.request.journal_path}", err=True)
        raise
    failed = result.failed
    emit(
        plan.document(
            results=result.changes,
            exit_code=EXIT_OK if result.complete else EXIT_INCOMPLETE,
            error=failed[0].reason if failed else None,
        )
    )
    return result


def _show_plan(plan: ApplyPlan) -> None:
    requests, found, changes = plan.requests, plan.found, plan.changes
    click.echo(
        f"apply: {len(requests.rows)} accounts in {printable(requests.source)}; {plan.planned} "
        f"to {plan.request.action}, {len(changes) - plan.planned} not (no successful logon may "
        f"follow {format_minute(found.since)} UTC; {found.events} logon events read again)",
        err=True,
    )
    for change in changes:
        click.echo(describe(change), err=True)


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
        raise ConfigError("not confirmed; nothing changed")
