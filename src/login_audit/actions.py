"""Safe cleanup: disable or delete the accounts of a cleanup CSV, each proven stale again.

Nothing changes without an explicit go-ahead, and only accounts that pass every check of
:func:`plan` at the moment of acting, in this order:

1. the row names exactly one account of a fresh listing (case-insensitively);
2. the account is still the one the audit reported: same id, same role, not re-enabled,
   and on the audit's removal list when the audit's report is at hand;
3. its status allows the action, and no exclusion of the policy covers it;
4. the audit log (read again for the whole plan in one sweep, from ``now - days``) holds
   no successful logon of it within ``days``, and no logon whose time is unreadable;
5. the platform can make the change (Cloud One cannot disable, nor touch SAML users);
6. it is not the last enabled administrator of the tenant (:func:`is_administrator`).

The caller holds the tenant's lock while it lists, plans and acts, so two runs cannot both
decide on the same listing. Every action and its result is journalled before the next,
and the first failure stops the run.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import stat
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from login_audit.analysis import (
    ActivityIndex,
    LogonFold,
    ambiguous_identities,
    exclusion_reason,
)
from login_audit.archive.base import Archive
from login_audit.errors import (
    ConfigError,
    IncompleteDataError,
    LoginAuditError,
    NotFoundError,
    UnsupportedActionError,
)
from login_audit.models import Account, AccountStatus, Policy, ReportedAccount, TimeWindow
from login_audit.platforms.base import Platform, is_administrator, role_is_opaque
from login_audit.printable import printable
from login_audit.reports import WriteNotes
from login_audit.reports.csvreport import CLEANUP_HEADER, neutral_row, read_cell
from login_audit.sweep import Sweep
from login_audit.timeutil import Clock, format_minute, format_z, utcnow

log = logging.getLogger(__name__)

ACTIONS = ("disable", "delete")
JOURNAL_FILENAME = "apply_journal.csv"
JOURNAL_HEADER = (
    "Time",
    "Tenant",
    "Action",
    "UserId",
    "AccountId",
    "Role",
    "Finding",
    "FindingReason",
    "Outcome",
    "Reason",
)
REPORT_FILENAME = "audit_report.json"

PLANNED, SKIPPED, CANNOT = "planned", "skipped", "cannot"
DONE, FAILED, NOT_RUN = "done", "failed", "not-run"


@dataclass(frozen=True)
class Change:
    """One line of the plan, then of the journal: what happens to one row, and why."""

    user_id: str
    action: str
    outcome: str  # planned, skipped, cannot, done, failed, not-run
    reason: str
    account: Account | None = None
    reported: ReportedAccount | None = None
    #: The newest successful logon the re-check found (older ones included), if any.
    last_logon: datetime | None = None

    @property
    def account_id(self) -> str:
        """The account's id, when it still exists."""
        return self.account.id if self.account else ""


@dataclass(frozen=True)
class Requests:
    """The rows to act on and, when an audit report is at hand, its removal list."""

    rows: list[ReportedAccount]
    source: str
    #: Case-folded user ids of the report's removal list; None without a report.
    listed: frozenset[str] | None = None


@dataclass(frozen=True)
class Recheck:
    """What was read again just before acting: the accounts and their logons."""

    accounts: list[Account]
    index: ActivityIndex
    since: datetime
    until: datetime
    events: int
    #: Why no account can be proven stale (identities of the log that match none).
    doubt: str | None = None


# Only ASCII letters compare case-insensitively: Unicode case folding would let a row
# name another string (``straße`` folds to ``strasse``).
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _key(user_id: str) -> str:
    return user_id.translate(_ASCII_LOWER)


def read_cleanup_csv(path: Path) -> list[ReportedAccount]:
    """The ``Remove`` rows of a cleanup CSV: user id and role, cells read back exactly.

    A byte-order mark and CRLF line ends are accepted; rows of another ``RequestType``
    are ignored with a warning; nothing else is changed (no trimming), so a row can only
    name the account whose user id it holds.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if header is None or [h.strip() for h in header[:3]] != list(CLEANUP_HEADER):
        raise ConfigError(
            f"{path} is not a cleanup CSV: its header must be UserId,RoleName,RequestType"
        )
    requested = []
    for number, row in enumerate(rows, 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 3 or row[2].strip() != "Remove":
            log.warning("%s line %d: RequestType is not 'Remove'; row ignored", path, number)
            continue
        user = read_cell(row[0])
        if not user:
            log.warning("%s line %d: no UserId; row ignored", path, number)
            continue
        requested.append(ReportedAccount(user, read_cell(row[1])))
    return requested


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def read_report(path: Path) -> dict[str, ReportedAccount] | None:
    """The removal list of ``audit_report.json`` at ``path`` by user id, or None if absent."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read {path} ({exc}); move it aside to act on the cleanup CSV alone"
        ) from None
    accounts = data.get("accounts") if isinstance(data, dict) else None
    if not isinstance(accounts, list):
        raise ConfigError(f"{path} has no list of accounts; it is not an audit report")
    removal = {}
    for item in accounts:
        if isinstance(item, dict) and item.get("remove") is True and _text(item.get("userId")):
            entry = ReportedAccount(
                _text(item.get("userId")),
                _text(item.get("role")),
                _text(item.get("accountId")),
                _text(item.get("status")),
                _text(item.get("finding")),
                _text(item.get("reason")),
            )
            removal[_key(entry.user_id)] = entry
    return removal


def requests_from_csv(path: Path) -> Requests:
    """The rows of a cleanup CSV, joined to ``audit_report.json`` beside it when present."""
    rows = read_cleanup_csv(path)
    report = read_report(path.with_name(REPORT_FILENAME))
    if report is None:
        return Requests(rows, str(path))
    joined = [
        replace(report[_key(row.user_id)], role=row.role) if _key(row.user_id) in report else row
        for row in rows
    ]
    return Requests(joined, str(path), frozenset(report))


def requests_from_archive(archive: Archive, tenant: int) -> Requests:
    """The removal list of the tenant's last audit in the archive (which must be complete)."""
    last = archive.last_audit(tenant)
    if last is None:
        raise ConfigError(
            "the archive holds no audit of this tenant: run 'login-audit audit' first, "
            "or pass --from CSV"
        )
    window_end, complete, _, rows = last
    if not complete:
        raise ConfigError(
            "the last audit of this tenant was incomplete: run a complete audit first"
        )
    source = f"the last audit ({format_minute(window_end)} UTC)"
    return Requests(rows, source, frozenset(_key(row.user_id) for row in rows))


def recheck(platform: Platform, policy: Policy, now: datetime) -> Recheck:
    """List the accounts and read every logon of the last ``days``, in one sweep.

    The API takes whole seconds, so the window ends at the next whole second: a logon in
    the current second must not escape. Refuses (``IncompleteDataError``) unless every
    record was read, since a logon missed here would be an active account changed.
    """
    days = policy.days
    if days > platform.retention_days:
        raise ConfigError(
            f"--days {days} is beyond the {platform.retention_days} days of logons the "
            f"vendor keeps, so staleness cannot be proven again; use --days "
            f"{platform.retention_days} or less"
        )
    accounts = list(platform.list_accounts())
    # With the two clocks apart, the window spans both: a logon must not escape because
    # this machine's clock runs ahead of the vendor's, or behind it.
    server = platform.http.last_server_date
    since = min(now, server or now) - timedelta(days=days)
    until = max(now, server or now).replace(microsecond=0) + timedelta(seconds=1)
    window = TimeWindow(since, until)
    fold = LogonFold(window)
    problems = Sweep(platform, window, logons_only=True).run(lambda page, _: fold.add(page.records))
    if problems:
        raise IncompleteDataError(
            f"cannot read the logons since {format_minute(since)} ({problems[0]}); "
            "nothing was changed"
        )
    index = ActivityIndex(accounts, policy)
    index.add_all(platform.account_activity())
    index.add_all(fold.events_for_index())
    ambiguous = ambiguous_identities(index.unmatched_identities(), policy, now)
    doubt = None
    if ambiguous:
        names = ", ".join(repr(u.identity) for u in ambiguous[:3])
        doubt = (
            f"logons within {days} days by identities that match no account ({names}) could "
            "be this account's; map them with --identity-map or accept them with "
            "--ignore-identity"
        )
    return Recheck(accounts, index, since, until, fold.events, doubt)


def _counts_as_administrator(platform: Platform, account: Account) -> bool:
    # A SAML group is a mapping that may hold nobody: it never keeps a tenant administered.
    return (
        account.status is AccountStatus.ENABLED
        and account.auth_type.lower() != "samlgroup"
        and is_administrator(platform, account.role)
    )


def _mismatch(reported: ReportedAccount, account: Account) -> str | None:
    """How ``account`` differs from what the audit reported, or None."""
    if reported.account_id and reported.account_id != account.id:
        return f"a different account now (id {account.id}; the audit saw {reported.account_id})"
    if reported.role is not None and reported.role.strip().casefold() != (
        account.role.strip().casefold()
    ):
        return f"role is {account.role!r}, not {reported.role!r} as reported"
    if reported.status == AccountStatus.DISABLED.value and (
        account.status is AccountStatus.ENABLED
    ):
        return "re-enabled since the audit"
    return None


def _judge(
    row: ReportedAccount,
    account: Account,
    requests: Requests,
    found: Recheck,
    policy: Policy,
    action: str,
    platform: Platform,
) -> tuple[str, str]:
    """``(outcome, reason)`` for one row naming one account, checks 2 to 5 of the module."""
    if requests.listed is not None and _key(row.user_id) not in requests.listed:
        return SKIPPED, "not on the removal list of the audit report beside the CSV"
    mismatch = _mismatch(row, account)
    if mismatch:
        return SKIPPED, mismatch
    if action == "disable" and account.status is AccountStatus.DISABLED:
        return SKIPPED, "already disabled"
    if account.status is AccountStatus.DISABLED and not policy.include_disabled:
        return SKIPPED, "disabled (use --include-disabled to delete disabled accounts)"
    if account.status not in (AccountStatus.ENABLED, AccountStatus.DISABLED):
        return SKIPPED, f"status is {account.status.value}"
    excluded = exclusion_reason(replace(account, status=AccountStatus.ENABLED), policy)
    if excluded:
        return SKIPPED, f"excluded: {excluded}"
    activity = found.index.get(account.id)
    last = activity.last_success
    if last is not None and last >= found.since:
        return SKIPPED, f"signed in {format_z(last)}, within the last {policy.days} days"
    if activity.undated_success:
        return SKIPPED, "a successful logon with an unreadable time; not judged"
    if found.doubt:
        return SKIPPED, f"not proven stale: {found.doubt}"
    cannot = platform.unsupported_reason(action, account)
    if cannot:
        return CANNOT, cannot
    last_note = f"last logon {format_z(last)}" if last else "none"
    return PLANNED, f"no successful logon since {format_z(found.since)} ({last_note})"


def plan(
    requests: Requests, found: Recheck, policy: Policy, action: str, platform: Platform
) -> list[Change]:
    """Decide, for every requested row, what ``apply`` does and why (see the module)."""
    by_user: dict[str, list[Account]] = {}
    for account in found.accounts:
        by_user.setdefault(_key(account.user_id), []).append(account)
    admins = sum(1 for a in found.accounts if _counts_as_administrator(platform, a))
    changes: list[Change] = []
    seen: set[str] = set()
    for row in requests.rows:
        key = _key(row.user_id)
        if key in seen:
            changes.append(Change(row.user_id, action, SKIPPED, "a repeated row", None, row))
            continue
        seen.add(key)
        matches = by_user.get(key, [])
        if len(matches) != 1:
            reason = (
                f"{len(matches)} accounts have this user id; not judged"
                if matches
                else "no longer exists"
            )
            changes.append(Change(row.user_id, action, SKIPPED, reason, None, row))
            continue
        account = matches[0]
        outcome, reason = _judge(row, account, requests, found, policy, action, platform)
        if outcome == PLANNED and _counts_as_administrator(platform, account):
            if admins <= 1:
                outcome, reason = SKIPPED, f"the last enabled administrator ({account.role})"
            else:
                admins -= 1
        elif outcome == PLANNED and role_is_opaque(platform, account.role):
            outcome, reason = (
                SKIPPED,
                (
                    f"its role {account.role!r} is an id, not a name: it may be an administrator "
                    "role, so the account is left alone"
                ),
            )
        last = found.index.get(account.id).last_success
        changes.append(Change(row.user_id, action, outcome, reason, account, row, last))
    return changes


def _open_journal(path: Path) -> int:
    """Open the journal for appending: never through a link, only a private regular file."""
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise ConfigError(
            f"cannot open the journal {path}: {exc.strerror} (a symbolic link is refused)"
        ) from None
    info = os.fstat(fd)
    problem = ""
    if not stat.S_ISREG(info.st_mode):
        problem = "it is not a regular file"
    elif info.st_nlink != 1:
        problem = "it has other hard links"
    elif info.st_uid != os.geteuid():
        problem = "it belongs to another user"
    if problem:
        os.close(fd)
        raise ConfigError(f"cannot use the journal {path}: {problem}; move it aside")
    os.fchmod(fd, 0o600)
    return fd


class Journal:
    """``apply_journal.csv``: appended, neutralised like the reports, fsynced per line.

    Created 0600 without following links; an existing file must have the same columns.
    """

    def __init__(
        self,
        path: Path,
        tenant: str,
        clock: Clock = utcnow,
        mirror: Callable[[Change, datetime], None] | None = None,
    ) -> None:
        self.path, self.tenant, self.clock, self.mirror = path, tenant, clock, mirror
        fd = _open_journal(path)
        first = os.pread(fd, 4096, 0).split(b"\n", 1)[0].decode("utf-8", "replace")
        self.handle = os.fdopen(fd, "a", encoding="utf-8", newline="")
        self.writer = csv.writer(self.handle, lineterminator="\r\n")
        if not first:
            self._write_row(JOURNAL_HEADER)
        elif next(csv.reader([first.rstrip("\r")]), []) != list(JOURNAL_HEADER):
            self.handle.close()
            raise ConfigError(
                f"{path} has other columns than this version writes; move it aside and run again"
            )
        self.entries: list[Change] = []

    def _write_row(self, row: Iterable[str]) -> None:
        self.writer.writerow(neutral_row(list(row), WriteNotes()))
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def write(self, change: Change) -> None:
        """Record one change (file, and archive when there is one) before the next action."""
        at = self.clock()
        reported = change.reported or ReportedAccount(change.user_id)
        self._write_row(
            [
                format_z(at),
                self.tenant,
                change.action,
                change.user_id,
                change.account_id,
                change.account.role if change.account else (reported.role or ""),
                reported.finding,
                reported.reason,
                change.outcome,
                change.reason,
            ]
        )
        if self.mirror is not None:
            self.mirror(change, at)
        self.entries.append(change)

    def close(self) -> None:
        """Close the file."""
        self.handle.close()


def execute(
    platform: Platform,
    changes: list[Change],
    journal: Journal,
    on_change: Callable[[Change], None] = lambda change: None,
) -> list[Change]:
    """Carry out the planned changes in order; stop at the first failure.

    A 404 means the account went away meanwhile: skipped, and the run goes on. Any other
    refusal (409, 5xx after every retry, a missing permission) fails the change, and the
    rest is not run: the state of the tenant is then unknown until it is listed again.
    """
    results: list[Change] = []
    failed = False
    for change in changes:
        if change.outcome != PLANNED or change.account is None:
            result = change
        elif failed:
            result = replace(change, outcome=NOT_RUN, reason="stopped after a failure")
        else:
            try:
                if change.action == "disable":
                    platform.disable_account(change.account)
                else:
                    platform.delete_account(change.account)
            except UnsupportedActionError as exc:
                result = replace(change, outcome=CANNOT, reason=str(exc))
            except NotFoundError:
                gone = "no longer exists (HTTP 404)"
                if change.action == "delete":
                    gone += "; a retried request of this run may have deleted it"
                result = replace(change, outcome=SKIPPED, reason=gone)
            except LoginAuditError as exc:
                result = replace(change, outcome=FAILED, reason=str(exc))
                failed = True
            else:
                result = replace(change, outcome=DONE)
        journal.write(result)
        on_change(result)
        results.append(result)
    return results


def describe(change: Change) -> str:
    """One line of the plan or the results for a terminal (control characters removed)."""
    role = f" ({change.account.role})" if change.account and change.account.role else ""
    return printable(
        f"  {change.outcome:8} {change.action:7} {change.user_id}{role}: {change.reason}"
    )


def change_json(change: Change, found: Recheck) -> dict[str, object]:
    """One account of ``apply --json``: the action, the outcome, and the evidence."""
    reported = change.reported
    account = change.account
    return {
        "userId": change.user_id,
        "accountId": change.account_id or None,
        "role": account.role if account else None,
        "status": account.status.value if account else None,
        "action": change.action,
        "outcome": change.outcome,
        "reason": change.reason,
        "evidence": {
            "logonsCheckedSince": format_z(found.since),
            "logonsCheckedUntil": format_z(found.until),
            "lastSuccessfulLogon": format_z(change.last_logon) if change.last_logon else None,
        },
        "audit": None
        if reported is None
        else {
            "role": reported.role,
            "accountId": reported.account_id or None,
            "status": reported.status or None,
            "finding": reported.finding or None,
            "reason": reported.reason or None,
        },
    }


def apply_json(
    tenant: str,
    requests: Requests,
    found: Recheck,
    changes: list[Change],
    *,
    carried_out: bool,
    refused: str | None,
    max_changes: int,
) -> dict[str, object]:
    """The document of ``apply --json``: the plan (or its results) and the evidence."""
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.outcome] = counts.get(change.outcome, 0) + 1
    return {
        "tenant": tenant,
        "source": requests.source,
        "carriedOut": carried_out,
        "refused": refused,
        "maxChanges": max_changes,
        "logonsCheckedSince": format_z(found.since),
        "logonsCheckedUntil": format_z(found.until),
        "logonEventsRead": found.events,
        "counts": counts,
        "accounts": [change_json(change, found) for change in changes],
    }
