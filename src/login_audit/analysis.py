"""Pure decisions: accounts + logon events + policy + now -> one finding per account.

Nothing here does I/O or reads the clock, so every rule is testable with plain values.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from login_audit.models import (
    Account,
    AccountStatus,
    ApiKey,
    ApiKeyFinding,
    Finding,
    FindingKind,
    LoginEvent,
    Policy,
)
from login_audit.timeutil import days_between


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


@dataclass
class ActivityIndex:
    """Joins events to accounts and keeps one :class:`Activity` per account id.

    An event belongs to the account whose email (or URN) equals its principal,
    case-insensitively, or whose id equals the event's account id.
    """

    accounts: Iterable[Account]
    by_id: dict[str, Activity] = field(default_factory=dict, init=False)
    unmatched: int = field(default=0, init=False)
    events: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._by_key: dict[str, str] = {}
        self._ids: set[str] = set()
        for account in self.accounts:
            self._ids.add(account.id)
            for key in (account.email, account.urn):
                if key:
                    self._by_key.setdefault(key.lower(), account.id)

    def add(self, event: LoginEvent) -> None:
        """Fold one event into the activity of the account it belongs to."""
        self.events += 1
        account_id = self._by_key.get(event.principal.lower()) if event.principal else None
        if account_id is None and event.account_id in self._ids:
            account_id = event.account_id
        if account_id is None:
            self.unmatched += 1
            return
        self.by_id.setdefault(account_id, Activity()).add(event)

    def add_all(self, events: Iterable[LoginEvent]) -> None:
        """Fold many events in."""
        for event in events:
            self.add(event)

    def get(self, account_id: str) -> Activity:
        """The activity of one account (empty when the log never names it)."""
        return self.by_id.get(account_id, Activity())


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
    return moment.strftime("%Y-%m-%d")


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
) -> Finding:
    """The finding for one account under ``policy`` at ``now``.

    A successful logon inside the threshold is proof of activity whatever else failed;
    the absence of one is only trusted when every logon record of the window was read.
    """
    last, failed = activity.last_success, activity.last_failed
    days = days_between(last, now) if last else None

    def finding(kind: FindingKind, reason: str) -> Finding:
        return Finding(account, kind, reason, last, failed, days)

    excluded = exclusion_reason(account, policy)
    if excluded:
        return finding(FindingKind.EXCLUDED, excluded)
    threshold = now - timedelta(days=policy.days)
    if last is not None and last >= threshold:
        return finding(FindingKind.ACTIVE, f"last successful logon {_days(days)} ago")
    if not logins_complete:
        return finding(
            FindingKind.UNKNOWN,
            f"logon records incomplete ({incomplete_reason or 'read failed'}); not judged",
        )
    if activity.undated_success:
        return finding(
            FindingKind.UNKNOWN, "a successful logon record has an unreadable time; not judged"
        )
    failed_note = f"; last failed logon {_day(failed)}" if failed else ""
    if first_seen is not None and now - first_seen < timedelta(days=policy.grace_days):
        return finding(
            FindingKind.EXCLUDED,
            f"new account: first seen {_day(first_seen)}, inside the {policy.grace_days}-day "
            f"grace period{failed_note}",
        )
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
) -> tuple[Finding, ...]:
    """One finding per account: accounts to remove first, then by user id.

    ``first_seen`` maps account ids to when the archive first saw them, for the accounts
    whose appearance the archive witnessed; they get ``policy.grace_days`` of grace.
    """
    seen = first_seen or {}
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
