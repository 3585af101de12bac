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
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from login_audit import interrupts
from login_audit.analysis import (
    ActivityIndex,
    LogonFold,
    decide,
    evidence_doubts,
    exclusion_reason,
)
from login_audit.archive.base import Archive
from login_audit.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    ConfigError,
    IncompleteDataError,
    LoginAuditError,
    NotFoundError,
    UnsupportedActionError,
)
from login_audit.http import url_origin
from login_audit.models import (
    Account,
    AccountStatus,
    FindingKind,
    Policy,
    ReportedAccount,
    TimeWindow,
)
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
#: Journalled before a change's request: alone, the request's outcome is unknown.
STARTED = "started"
UNKNOWN_OUTCOME = (
    "interrupted while the request was in flight: the vendor may or may not have made "
    "the change; check this account"
)


class ApplyInterrupted(LoginAuditError):
    """The run was stopped (Ctrl-C, a signal) while carrying out its plan.

    :attr:`changes` holds every row's outcome: the change in flight stays ``started``
    (unknown), the rest ``not-run``; all of it is in the journal.
    """

    def __init__(self, changes: list[Change], exit_code: int) -> None:
        unknown = [c.user_id for c in changes if c.outcome == STARTED]
        check = f"; check {', '.join(unknown)}: its outcome is unknown" if unknown else ""
        stopped = "terminated (SIGTERM)" if exit_code == EXIT_TERMINATED else "interrupted"
        super().__init__(f"{stopped} while carrying out the plan{check}")
        self.changes, self.exit_code = changes, exit_code


@dataclass(frozen=True)
class Change:
    """One line of the plan, then of the journal: what happens to one row, and why."""

    user_id: str
    action: str
    outcome: str  # planned, skipped, cannot, started, done, failed, not-run
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
    #: The ``--days`` of the audit that made the rows, when known.
    days: int | None = None
    #: Rows of the file refused as malformed, each with why: shown, never acted on.
    refused: tuple[tuple[ReportedAccount, str], ...] = ()
    #: Where the audit that made the rows ran, as its report says (see :class:`ReportRun`).
    run: ReportRun | None = None


@dataclass(frozen=True)
class ReportRun:
    """The tenant an ``audit_report.json`` was made for: its ``--tenant`` name (None when
    the audit kept no archive), platform and API address (credentials removed)."""

    tenant: str | None
    platform: str
    base_url: str

    def mismatch(self, tenant: str, platform: str, base_url: str) -> str | None:
        """Why rows of this report must not be applied to ``tenant`` at ``base_url``."""
        if self.platform and self.platform != platform:
            return f"it was made for a {self.platform} tenant, not {platform}"
        if self.base_url and url_origin(self.base_url) != url_origin(base_url):
            return f"it was made for the tenant at {self.base_url}, not {base_url}"
        if self.tenant is not None and self.tenant != tenant:
            return f"it was made for the tenant named {self.tenant!r}, not {tenant!r}"
        return None


@dataclass(frozen=True)
class Recheck:
    """What was read again just before acting: the accounts and their logons."""

    accounts: list[Account]
    index: ActivityIndex
    since: datetime
    until: datetime
    events: int
    #: Why no account can be proven stale (identities of the log that match none), as the
    #: audit would say it.
    doubt: str | None = None
    #: Why no account of a type (``saml``, ``local``) can be proven stale, by type.
    doubt_by_type: dict[str, str] = field(default_factory=dict)

    def doubt_of(self, account: Account) -> str | None:
        """Why the absence of ``account``'s logons cannot be trusted, or None."""
        return self.doubt or self.doubt_by_type.get(account.auth_type.lower())


@dataclass(frozen=True)
class Ages:
    """What the archive knows of when each account appeared, for the audit's grace."""

    #: Account ids of the archive's snapshots, and when each first appeared after the
    #: first snapshot (accounts of the first snapshot are older than the archive).
    known: frozenset[str]
    first_seen: dict[str, datetime]


def ages_from_archive(archive: Archive, tenant: int) -> Ages | None:
    """When the archive first saw each account of ``tenant``; None before its first snapshot."""
    first_seen, first_snapshot = archive.first_seen(tenant)
    if first_snapshot is None:
        return None
    witnessed = {k: seen for k, seen in first_seen.items() if seen > first_snapshot}
    return Ages(frozenset(first_seen), witnessed)


# Only ASCII letters compare case-insensitively: Unicode case folding would let a row
# name another string (``straße`` folds to ``strasse``).
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def _key(user_id: str) -> str:
    return user_id.translate(_ASCII_LOWER)


def read_cleanup_csv(path: Path) -> list[ReportedAccount]:
    """The ``Remove`` rows of a cleanup CSV: user id and role, cells read back exactly.

    A byte-order mark and CRLF line ends are accepted; rows of another ``RequestType``
    are ignored with a warning; nothing else is changed (no trimming), so a row can only
    name the account whose user id it holds. Rows that are not exactly what the audit
    writes are left out (see :func:`read_cleanup_rows`).
    """
    return read_cleanup_rows(path)[0]


def read_cleanup_rows(
    path: Path,
) -> tuple[list[ReportedAccount], list[tuple[ReportedAccount, str]]]:
    """The ``Remove`` rows of a cleanup CSV, and the rows refused with why.

    A file that drives deletions is read strictly: a row of other than three cells, or
    whose ``RequestType`` is ``Remove`` only once blanks or case are ignored, is refused
    (shown in the plan, never acted on) rather than guessed at.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if header is None or [h.strip() for h in header] != list(CLEANUP_HEADER):
        raise ConfigError(
            f"{path} is not a cleanup CSV: its header must be UserId,RoleName,RequestType"
        )
    requested: list[ReportedAccount] = []
    refused: list[tuple[ReportedAccount, str]] = []
    for number, row in enumerate(rows, 2):
        if not any(cell.strip() for cell in row):
            continue
        kind = row[2] if len(row) > 2 else ""
        if kind.strip().casefold() != "remove":
            log.warning("%s line %d: RequestType is not 'Remove'; row ignored", path, number)
            continue
        user = read_cell(row[0])
        if not user:
            log.warning("%s line %d: no UserId; row ignored", path, number)
            continue
        entry = ReportedAccount(user, read_cell(row[1]))
        if len(row) != 3:
            refused.append((entry, f"line {number} has {len(row)} cells, not 3; row refused"))
        elif kind != "Remove":
            refused.append((entry, f"line {number}: RequestType {kind!r} is not 'Remove'"))
        else:
            requested.append(entry)
    return requested, refused


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def read_report(
    path: Path,
) -> tuple[dict[str, ReportedAccount], int | None, ReportRun] | None:
    """The removal list of ``audit_report.json`` at ``path`` by user id, the audit's
    ``--days`` (None if it does not say) and where it ran, or None if there is no report."""
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
    policy = data.get("policy")
    days = policy.get("days") if isinstance(policy, dict) else None
    run = data.get("run") if isinstance(data.get("run"), dict) else {}
    tenant = run.get("tenant")
    where = ReportRun(
        tenant if isinstance(tenant, str) and tenant else None,
        _text(run.get("platform")),
        _text(run.get("baseUrl")),
    )
    return removal, days if isinstance(days, int) and not isinstance(days, bool) else None, where


def requests_from_csv(path: Path) -> Requests:
    """The rows of a cleanup CSV, joined to ``audit_report.json`` beside it when present."""
    rows, refused = read_cleanup_rows(path)
    found = read_report(path.with_name(REPORT_FILENAME))
    if found is None:
        return Requests(rows, str(path), refused=tuple(refused))
    report, days, run = found
    joined = [
        replace(report[_key(row.user_id)], role=row.role) if _key(row.user_id) in report else row
        for row in rows
    ]
    return Requests(joined, str(path), frozenset(report), days, tuple(refused), run)


def requests_from_archive(archive: Archive, tenant: int) -> Requests:
    """The removal list of the tenant's last audit in the archive (which must be complete)."""
    last = archive.last_audit(tenant)
    if last is None:
        raise ConfigError(
            "the archive holds no audit of this tenant: run 'login-audit audit' first, "
            "or pass --from CSV"
        )
    window_end, complete, days, rows = last
    if not complete:
        raise ConfigError(
            "the last audit of this tenant was incomplete: run a complete audit first"
        )
    source = f"the last audit ({format_minute(window_end)} UTC)"
    return Requests(rows, source, frozenset(_key(row.user_id) for row in rows), days)


def recheck(platform: Platform, policy: Policy, now: datetime) -> Recheck:
    """List the accounts and read every logon the vendor keeps, in one sweep.

    An account is stale when none of its successful logons falls in the last ``days``;
    the older ones tell, as in the audit, whether a type of account has sign-ins on
    record at all (:func:`~login_audit.analysis.evidence_doubts`).

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
    # Everything the vendor keeps, as the audit reads it: whether a type of account has
    # any logon on record (the audit's evidence rules) looks beyond ``days``.
    read_from = min(now, server or now) - timedelta(days=platform.retention_days)
    window = TimeWindow(read_from, until)
    fold = LogonFold(window)
    problems = Sweep(platform, window, logons_only=True).run(lambda page, _: fold.add(page.records))
    if problems:
        raise IncompleteDataError(
            f"cannot read the logons since {format_minute(read_from)} ({problems[0]}); "
            "nothing was changed"
        )
    index = ActivityIndex(accounts, policy)
    index.add_all(platform.account_activity())
    index.add_all(fold.events_for_index())
    # The audit's own rules for when the absence of logons proves nothing.
    doubt, by_type = evidence_doubts(accounts, index, policy, now, read_from)
    return Recheck(accounts, index, since, until, fold.events, doubt, by_type)


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
    ages: Ages | None,
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
    new = _newness(account, requests, policy, ages)
    if new:
        return SKIPPED, new
    # The audit's own decision on the fresh evidence: what it would not remove, apply
    # does not change (evidence of a type never recorded, the grace of a new account).
    finding = decide(
        replace(account, status=AccountStatus.ENABLED),
        activity,
        policy,
        found.since + timedelta(days=policy.days),
        found.since,
        logins_complete=True,
        first_seen=ages.first_seen.get(account.id) if ages else None,
        doubt=found.doubt_of(account),
    )
    if finding.kind not in (FindingKind.INACTIVE, FindingKind.NO_LOGIN):
        return SKIPPED, f"the audit would call it {finding.kind.value} now: {finding.reason}"
    cannot = platform.unsupported_reason(action, account)
    if cannot:
        return CANNOT, cannot
    last_note = f"last logon {format_z(last)}" if last else "none"
    return PLANNED, f"no successful logon since {format_z(found.since)} ({last_note})"


def _newness(account: Account, requests: Requests, policy: Policy, ages: Ages | None) -> str | None:
    """Why ``account`` may be too new to judge, or None.

    The audit gives accounts the archive saw appear ``--grace-days`` of grace. Without an
    archive that has seen the tenant, only the audit's own removal list (which applied
    that grace) can vouch for a row; an account the archive has never seen appeared after
    its last snapshot.
    """
    if policy.grace_days <= 0:
        return None
    if ages is None:
        if requests.listed is None:
            return (
                "not known to be older than the grace period: no archive has seen this "
                f"tenant and no {REPORT_FILENAME} beside the CSV lists it; keep the report "
                "beside the CSV or use the archive of the audit"
            )
        return None
    if account.id not in ages.known:
        return "new account: the archive has never seen it (it appeared after the last audit)"
    return None


def plan(
    requests: Requests,
    found: Recheck,
    policy: Policy,
    action: str,
    platform: Platform,
    ages: Ages | None = None,
) -> list[Change]:
    """Decide, for every requested row, what ``apply`` does and why (see the module).

    ``ages`` (from the archive) gives new accounts the audit's grace; without it a row
    must be on the removal list of the audit's report.
    """
    by_user: dict[str, list[Account]] = {}
    by_id = {account.id: account for account in found.accounts}
    for account in found.accounts:
        by_user.setdefault(_key(account.user_id), []).append(account)
    admins = sum(1 for a in found.accounts if _counts_as_administrator(platform, a))
    changes: list[Change] = [
        Change(row.user_id, action, SKIPPED, reason, None, row) for row, reason in requests.refused
    ]
    seen: set[str] = set()
    for row in requests.rows:
        key = _key(row.user_id)
        if key in seen:
            changes.append(Change(row.user_id, action, SKIPPED, "a repeated row", None, row))
            continue
        seen.add(key)
        matches = by_user.get(key, [])
        if len(matches) != 1:
            if matches:
                reason = f"{len(matches)} accounts have this user id; not judged"
            elif row.user_id in by_id:
                # An id is not what a cleanup row holds: never guess that it meant this one.
                reason = (
                    "names an account by its id, not its email: rows are matched by email "
                    "only; not changed"
                )
            else:
                reason = "no longer exists"
            changes.append(Change(row.user_id, action, SKIPPED, reason, None, row))
            continue
        account = matches[0]
        outcome, reason = _judge(row, account, requests, found, policy, action, platform, ages)
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
    else:
        problem = _not_a_journal(fd)
    if problem:
        os.close(fd)
        raise ConfigError(f"cannot use the journal {path}: {problem}; move it aside")
    os.fchmod(fd, 0o600)  # only once it is known to be ours (or new)
    return fd


def _not_a_journal(fd: int) -> str:
    """Why the file ``fd`` is not a journal of ours, or ``""``; an empty file is one."""
    from login_audit.reports.atomic import looks_binary

    if os.fstat(fd).st_size == 0:
        return ""
    if looks_binary(fd):
        return "it holds binary data (a NUL byte or a SQLite header), not CSV"
    first = os.pread(fd, 4096, 0).split(b"\n", 1)[0].rstrip(b"\r")
    try:
        header = next(csv.reader([first.decode("utf-8", "replace")]), [])
    except csv.Error:
        return "it is not a CSV file"
    if header != list(JOURNAL_HEADER):
        return "it has other columns than this version writes"
    return ""


class Journal:
    """``apply_journal.csv``: appended, neutralised like the reports, fsynced per line.

    Created 0600 without following links; an existing file must be a CSV file with the same
    columns, and is made 0600 only then.
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
        empty = os.fstat(fd).st_size == 0
        self.handle = os.fdopen(fd, "a", encoding="utf-8", newline="")
        self.writer = csv.writer(self.handle, lineterminator="\r\n")
        if empty:
            self._write_row(JOURNAL_HEADER)
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

    Each change is journalled ``started`` before its request and with its outcome after,
    so a run killed in between leaves the account named in the journal. A 404 means the
    account went away meanwhile: skipped, and the run goes on. Any other refusal (409,
    5xx after every retry, a missing permission) fails the change, and the rest is not
    run: the state of the tenant is then unknown until it is listed again. An interrupt
    (Ctrl-C, or a signal handler's ``SystemExit``) journals the rest as ``not-run`` and
    raises :class:`ApplyInterrupted`.
    """
    results: list[Change] = []
    failed = False
    started: Change | None = None
    try:
        for change in changes:
            if change.outcome != PLANNED or change.account is None:
                result = change
            elif failed:
                result = replace(change, outcome=NOT_RUN, reason="stopped after a failure")
            else:
                journal.write(replace(change, outcome=STARTED, reason=UNKNOWN_OUTCOME))
                started = change
                result = _make(platform, change)
                failed = result.outcome == FAILED
            journal.write(result)
            started = None
            on_change(result)
            results.append(result)
    except (KeyboardInterrupt, SystemExit) as exc:
        # A second Ctrl-C must not cut the journal of the rows not run short: it is only
        # recorded now (with the command line's handlers; the run ends anyway).
        interrupts.finishing()
        _after_interrupt(changes, results, started, journal)
        code = exc.code if isinstance(exc, SystemExit) else getattr(exc, "exit_code", None)
        code = code if isinstance(code, int) else EXIT_INTERRUPTED
        raise ApplyInterrupted(results, code) from exc
    return results


def _make(platform: Platform, change: Change) -> Change:
    """Make one planned change; its outcome (a refusal of the vendor is an outcome)."""
    assert change.account is not None  # see execute
    try:
        if change.action == "disable":
            platform.disable_account(change.account)
        else:
            platform.delete_account(change.account)
    except UnsupportedActionError as exc:
        return replace(change, outcome=CANNOT, reason=str(exc))
    except NotFoundError:
        gone = "no longer exists (HTTP 404)"
        if change.action == "delete":
            gone += "; a retried request of this run may have deleted it"
        return replace(change, outcome=SKIPPED, reason=gone)
    except LoginAuditError as exc:
        return replace(change, outcome=FAILED, reason=str(exc))
    return replace(change, outcome=DONE)


def _after_interrupt(
    changes: list[Change], results: list[Change], started: Change | None, journal: Journal
) -> None:
    """After an interrupt: the change in flight stays ``started`` (its outcome unknown),
    and the rows not reached are journalled, the planned ones as ``not-run``."""
    if started is not None:
        results.append(replace(started, outcome=STARTED, reason=UNKNOWN_OUTCOME))
    for change in changes[len(results) :]:
        result = change
        if change.outcome == PLANNED:
            result = replace(change, outcome=NOT_RUN, reason="not run: the run was interrupted")
        journal.write(result)
        results.append(result)


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
    exit_code: int,
    error: str | None,
) -> dict[str, object]:
    """The document of ``apply --json``: the plan (or its results) and the evidence, and
    how the run ended (``exitCode`` and ``error``, as every command's ``--json``)."""
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.outcome] = counts.get(change.outcome, 0) + 1
    return {
        "exitCode": exit_code,
        "error": error,
        "tenant": tenant,
        "source": requests.source,
        "carriedOut": carried_out,
        "refused": refused,
        "maxChanges": max_changes,
        "logonsCheckedSince": format_z(found.since),
        "logonsCheckedUntil": format_z(found.until),
        "logonEventsRead": found.events,
        "counts": counts,
        "checkAccounts": [c.user_id for c in changes if c.outcome == STARTED],
        "accounts": [change_json(change, found) for change in changes],
    }
