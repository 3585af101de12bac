"""Pure decisions: accounts + logon events + policy + now -> one finding per account.

Nothing here does I/O or reads the clock, so every rule is testable with plain values.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from login_audit.models import (
    Account,
    AccountStatus,
    ApiKey,
    ApiKeyFinding,
    AuditRecord,
    Doubt,
    Finding,
    FindingKind,
    LoginEvent,
    Policy,
    TimeWindow,
    UnmatchedIdentity,
    looks_like_uuid,
)
from login_audit.timeutil import days_between, format_day


@dataclass
class Activity:
    """What the log says about one account, folded from its events."""

    last_success: datetime | None = None
    last_failed: datetime | None = None
    undated_success: bool = False

    def add(self, event: LoginEvent) -> None:
        """Fold one event in."""
        if event.when is None:
            self.undated_success |= event.successful
        elif event.successful:
            if self.last_success is None or event.when > self.last_success:
                self.last_success = event.when
        elif self.last_failed is None or event.when > self.last_failed:
            self.last_failed = event.when


#: How far ahead of the audit's own clock a logon may be dated and still be believed
#: (clock skew between the vendor's servers and ours).
FUTURE_TOLERANCE = timedelta(hours=1)


def identity_kind(principal: str, account_id: str | None) -> str:
    """What an identity that matches no account looks like: ``email``, ``id`` or
    ``display-name``.

    An email address, an id (``loggedUserId``, a UUID, a URN) names one principal that
    is not in the account list: a deleted account or an API key. A display name could
    stand for any account.
    """
    if account_id or principal.startswith("urn:") or looks_like_uuid(principal):
        return "id"
    if "@" in principal:
        return "email"
    return "display-name"


@dataclass
class ActivityIndex:
    """Joins events to accounts and keeps one :class:`Activity` per account id.

    An event belongs to the account its identity is mapped to by the policy's
    ``identity_map``; else to the account whose email (or URN) equals its principal,
    case-insensitively; else to the account whose id equals the event's account id.
    Events of no account are kept per identity (see :class:`UnmatchedIdentity`).
    """

    accounts: Iterable[Account]
    policy: Policy = field(default_factory=Policy)
    by_id: dict[str, Activity] = field(default_factory=dict, init=False)
    events: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._by_key: dict[str, str] = {}
        self._ids: set[str] = set()
        for account in self.accounts:
            self._ids.add(account.id)
            for key in (account.email, account.urn):
                if key:
                    self._by_key.setdefault(key.lower(), account.id)
        self._mapped: dict[str, str] = {}
        self.unmapped_targets: list[str] = []
        self.conflicting: set[str] = set()
        for identity, target in self.policy.identity_map:
            account_id = self._by_key.get(target.lower())
            if account_id is None and target in self._ids:
                account_id = target
            key = identity.lower()
            if account_id is None:
                self.unmapped_targets.append(target)
            elif self._mapped.get(key, account_id) != account_id:
                # Two maps (the command line's and the tenant's) disagree: believe neither,
                # so the identity stays unmatched and its logons keep their doubt.
                self.conflicting.add(key)
            else:
                self._mapped[key] = account_id
        for key in self.conflicting:
            self._mapped.pop(key, None)
        self._ignored = {name.lower() for name in self.policy.ignore_identities}
        self._unmatched: dict[str, Activity] = {}
        self._unmatched_kind: dict[str, str] = {}

    def add(self, event: LoginEvent) -> None:
        """Fold one event into the activity of the account it belongs to."""
        self.events += 1
        principal = event.principal.lower() if event.principal else ""
        account_id = self._mapped.get(principal) if principal else None
        if account_id is None and principal:
            account_id = self._by_key.get(principal)
        if account_id is None and event.account_id in self._ids:
            account_id = event.account_id
        if account_id is None and event.account_id:
            account_id = self._mapped.get(event.account_id.lower())
        if account_id is not None:
            self.by_id.setdefault(account_id, Activity()).add(event)
            return
        name = event.principal or event.account_id or ""
        key = name.lower()
        if key not in self._unmatched_kind:
            ignored = key in self._ignored or (event.account_id or "").lower() in self._ignored
            self._unmatched_kind[key] = (
                "ignored" if ignored else identity_kind(principal, event.account_id)
            )
            self._unmatched[key] = Activity()
        self._unmatched[key].add(event)

    def add_all(self, events: Iterable[LoginEvent]) -> None:
        """Fold many events in."""
        for event in events:
            self.add(event)

    def get(self, account_id: str) -> Activity:
        """The activity of one account (empty when the log never names it)."""
        return self.by_id.get(account_id, Activity())

    @property
    def unmatched(self) -> int:
        """How many distinct identities of the log match no account."""
        return len(self._unmatched)

    def unmatched_identities(self) -> tuple[UnmatchedIdentity, ...]:
        """Every identity of the log that matches no account, newest logon first."""
        found = [
            UnmatchedIdentity(
                identity=key,
                kind=self._unmatched_kind[key],
                last_success=activity.last_success,
                last_failed=activity.last_failed,
                undated_success=activity.undated_success,
            )
            for key, activity in self._unmatched.items()
        ]
        oldest = datetime.min.replace(tzinfo=timezone.utc)
        found.sort(key=lambda u: (u.last_success or oldest, u.identity), reverse=True)
        return tuple(found)


class LogonFold:
    """Keeps only the newest logon per identity and outcome while records stream in.

    An audit reads many pages of records but decides on the newest successful and failed
    logon of each identity: folding as pages arrive keeps memory flat, whatever the size of
    the log. Records older than ``window`` are dropped; newer ones are kept (a time in the
    future is a doubt for the rules, not a reason to drop evidence).
    """

    def __init__(self, window: TimeWindow) -> None:
        self.window = window
        self.newest: dict[tuple[str, str | None, bool], LoginEvent] = {}
        self.undated: set[tuple[str, str | None, bool]] = set()
        self.events = 0

    def add(self, records: Iterable[AuditRecord]) -> None:
        """Fold one page of records in."""
        for record in records:
            event = record.login_event()
            if event is None:
                continue
            if event.when is not None and event.when < self.window.start:
                continue  # later than the window is kept: a time in the future is suspect
            self.events += 1
            key = (event.principal, event.account_id, event.successful)
            if event.when is None:
                self.undated.add(key)
                continue
            kept = self.newest.get(key)
            if kept is None or (kept.when is not None and event.when > kept.when):
                self.newest[key] = event

    def events_for_index(self) -> list[LoginEvent]:
        """The kept logons, for :meth:`ActivityIndex.add_all`; undated ones without a time."""
        undated = [
            LoginEvent(None, ok, principal, account) for principal, account, ok in self.undated
        ]
        return [*self.newest.values(), *undated]


def ambiguous_identities(
    unmatched: Iterable[UnmatchedIdentity], policy: Policy, now: datetime
) -> list[UnmatchedIdentity]:
    """Display names that logged on within the threshold: any account could be theirs."""
    threshold = now - timedelta(days=policy.days)
    return [
        u
        for u in unmatched
        if u.kind == "display-name"
        and (u.undated_success or (u.last_success is not None and u.last_success >= threshold))
    ]


def evidence_doubts(
    accounts: Iterable[Account],
    index: ActivityIndex,
    policy: Policy,
    now: datetime,
    window_start: datetime,
) -> tuple[str | None, dict[str, str]]:
    """Why the absence of logons cannot be trusted: for every account, and per account type.

    The first is set when identities of the log that look like display names logged on
    within the threshold (see :func:`ambiguous_identities`). The second names each type
    of account (``saml``, ``local``) of which not one enabled account has a successful
    logon in the whole window while accounts of another type do: the vendor may record
    that type's sign-ins elsewhere. ``policy.trust_empty_evidence`` lifts the second.
    """
    ambiguous = ambiguous_identities(index.unmatched_identities(), policy, now)
    everyone = None
    if ambiguous:
        names = ", ".join(repr(u.identity) for u in ambiguous[:3])
        more = f" and {len(ambiguous) - 3} more" if len(ambiguous) > 3 else ""
        everyone = (
            f"{len(ambiguous)} identit{'y' if len(ambiguous) == 1 else 'ies'} of the log "
            f"({names}{more}) logged on within {policy.days} days and match no account, so any "
            "account could be theirs; map them with --identity-map or accept them with "
            "--ignore-identity"
        )
    seen: dict[str, bool] = {}
    for account in accounts:
        kind = account.auth_type.lower()
        if account.status is not AccountStatus.ENABLED or not kind or kind == "samlgroup":
            continue
        activity = index.get(account.id)
        logged_on = activity.last_success is not None or activity.undated_success
        seen[kind] = seen.get(kind, False) or logged_on
    trusted = {t.lower() for t in policy.trust_empty_evidence}
    if "all" in trusted:
        trusted |= set(seen)
    by_type: dict[str, str] = {}
    if seen and not any(seen.values()) and "all" not in trusted and not set(seen) <= trusted:
        # Not one account of the tenant signed in: more likely the vendor records sign-ins
        # in a way this tool does not read than a tenant nobody uses.
        everyone = everyone or (
            f"not one enabled account has a successful logon since {_day(window_start)}: the "
            "audit log may record sign-ins in another form; pass --trust-empty-evidence all if "
            "nobody really signed in"
        )
    elif any(seen.values()):
        for kind, logged_on in seen.items():
            if not logged_on and kind not in trusted:
                by_type[kind] = (
                    f"not one enabled {kind} account has a successful logon since "
                    f"{_day(window_start)} while other accounts do: the vendor may record "
                    f"{kind} sign-ins elsewhere; pass --trust-empty-evidence {kind} if none of "
                    "them really signed in"
                )
    return everyone, by_type


def exclusion_reason(account: Account, policy: Policy) -> str | None:
    """Why ``account`` is out of scope of the removal list, or None if it is in scope."""
    if account.status is AccountStatus.DISABLED and not policy.include_disabled:
        return "status disabled (use --include-disabled to audit disabled accounts)"
    if account.status is AccountStatus.INVITED:
        return "status invited: the invitation has not been accepted yet"
    if account.auth_type.lower() == "samlgroup":
        return "SAML group: a group mapping, not a person"
    for pattern in policy.exclude_patterns:
        for value in (account.email, account.id):
            if value and fnmatch.fnmatchcase(value.lower(), pattern.lower()):
                return f"matches exclusion pattern {pattern!r}"
    for role in policy.exclude_roles:
        if account.role.casefold() == role.casefold():
            return f"role {account.role!r} is excluded"
    return None


def _days(count: int | None) -> str:
    return "1 day" if count == 1 else f"{count} days"


def _day(moment: datetime) -> str:
    return format_day(moment)


def decide(
    account: Account,
    activity: Activity,
    policy: Policy,
    now: datetime,
    window_start: datetime,
    *,
    logins_complete: bool,
    incomplete_reason: str = "",
    first_seen: datetime | None = None,
    doubt: str | None = None,
) -> Finding:
    """The finding for one account under ``policy`` at ``now``.

    In this order: excluded; unknown when its newest successful logon is dated in the
    future (the record cannot be trusted); active with a successful logon inside the
    threshold, which is proof whatever else failed; unknown when the records were not
    all read, a successful logon has no readable time, or ``doubt`` says why the
    absence of logons cannot be trusted; excluded inside the grace period; inactive;
    no-login.
    """
    last, failed = activity.last_success, activity.last_failed
    days = days_between(last, now) if last else None

    def finding(kind: FindingKind, reason: str, doubt: Doubt | None = None) -> Finding:
        return Finding(account, kind, reason, last, failed, days, doubt)

    excluded = exclusion_reason(account, policy)
    if excluded:
        return finding(FindingKind.EXCLUDED, excluded)
    if last is not None and last > now + FUTURE_TOLERANCE:
        return finding(
            FindingKind.UNKNOWN,
            f"its newest successful logon is dated {_day(last)}, in the future: the record "
            "cannot be trusted; not judged",
            Doubt.FUTURE_LOGON,
        )
    threshold = now - timedelta(days=policy.days)
    if last is not None and last >= threshold:
        return finding(FindingKind.ACTIVE, f"last successful logon {_days(max(0, days or 0))} ago")
    if not logins_complete:
        return finding(
            FindingKind.UNKNOWN,
            f"logon records incomplete ({incomplete_reason or 'read failed'}); not judged",
            Doubt.RECORDS_INCOMPLETE,
        )
    if activity.undated_success:
        return finding(
            FindingKind.UNKNOWN,
            "a successful logon record has an unreadable time; not judged",
            Doubt.UNDATED_LOGON,
        )
    failed_note = f"; last failed logon {_day(failed)}" if failed else ""
    if first_seen is not None and now - first_seen < timedelta(days=policy.grace_days):
        return finding(
            FindingKind.EXCLUDED,
            f"new account: first seen {_day(first_seen)}, inside the {policy.grace_days}-day "
            f"grace period{failed_note}",
        )
    if doubt:
        return finding(FindingKind.UNKNOWN, f"not proven stale: {doubt}", Doubt.NOT_PROVEN_STALE)
    if last is not None:
        return finding(
            FindingKind.INACTIVE,
            f"last successful logon {_day(last)} ({_days(days)} ago), older than the "
            f"{policy.days}-day threshold{failed_note}",
        )
    return finding(
        FindingKind.NO_LOGIN,
        f"no successful logon since {_day(window_start)}, the oldest record read{failed_note}",
    )


_ORDER = {
    FindingKind.INACTIVE: 0,
    FindingKind.NO_LOGIN: 1,
    FindingKind.UNKNOWN: 2,
    FindingKind.ACTIVE: 3,
    FindingKind.EXCLUDED: 4,
}


def analyse(
    accounts: Iterable[Account],
    index: ActivityIndex,
    policy: Policy,
    now: datetime,
    window_start: datetime,
    *,
    logins_complete: bool,
    incomplete_reason: str = "",
    first_seen: dict[str, datetime] | None = None,
    doubts: tuple[str | None, dict[str, str]] | None = None,
) -> tuple[Finding, ...]:
    """One finding per account: accounts to remove first, then by user id.

    Accounts that would be removed become ``unknown`` when :func:`evidence_doubts` finds
    a reason not to trust the absence of their logons (``doubts``, when the caller has
    them already). ``first_seen`` maps account ids to when the archive first saw them,
    for the accounts whose appearance the archive witnessed; they get
    ``policy.grace_days`` of grace.
    """
    seen = first_seen or {}
    accounts = list(accounts)
    everyone, by_type = doubts or evidence_doubts(accounts, index, policy, now, window_start)
    findings = [
        decide(
            account,
            index.get(account.id),
            policy,
            now,
            window_start,
            logins_complete=logins_complete,
            incomplete_reason=incomplete_reason,
            first_seen=seen.get(account.id),
            doubt=everyone or by_type.get(account.auth_type.lower()),
        )
        for account in accounts
    ]
    findings.sort(key=lambda f: (_ORDER[f.kind], f.account.user_id.lower(), f.account.id))
    return tuple(findings)


def judge_api_key(key: ApiKey, days: int, now: datetime) -> ApiKeyFinding:
    """``expired`` (still present), ``never-used``, ``stale`` (unused in ``days``) or ``active``.

    Disabled keys are judged too: a disabled key that nobody uses is still clutter, but the
    reason says it is disabled.
    """
    state = "" if key.enabled else " (disabled)"
    if key.expires is not None and key.expires <= now:
        return ApiKeyFinding(
            key, "expired", f"expired {_day(key.expires)} and still present{state}"
        )
    if key.last_used is None:
        return ApiKeyFinding(key, "never-used", f"never used{state}")
    age = days_between(key.last_used, now)
    if key.last_used < now - timedelta(days=days):
        return ApiKeyFinding(
            key,
            "stale",
            f"last used {_day(key.last_used)} ({_days(age)} ago), older than the "
            f"{days}-day threshold{state}",
        )
    return ApiKeyFinding(key, "active", f"last used {_days(age)} ago{state}")
