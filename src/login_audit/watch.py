"""Takeover signals: pure rules over new audit records and what the archive remembers.

:func:`detect` never reads the clock or the database: it is given the new records (in
the order the archive stored them), a :class:`History` that answers questions about
the past, and the rules. For each record, in this order:

1. An undated record is skipped: it cannot be placed in time.
2. A **successful logon** is a *dormant account reactivated* when the identity's previous
   successful logon is older than ``dormant_days``, or when the archive holds none and
   it covers at least ``dormant_days`` before the logon (otherwise nothing can be said).
3. A **failed logon** on a known account that is stale at that moment (``inactive`` or
   ``no-login`` by rule 2) is a *failed-logon burst* when at least ``failed_threshold``
   failed logons of the account fall within ``failed_window`` ending at it, unless a
   burst of the account was already reported within ``failed_window`` of it.
4. Any other record is read for privilege changes: an account created, an account's
   role changed to an administrator role, an API key created (see
   :func:`privilege_change` for the record types).

A signal's id hashes its kind and the key of the record that triggered it, so the same
input always gives the same signals, and storing them twice keeps one.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from login_audit.models import (
    DEFAULT_IGNORED_IDENTITIES,
    AuditRecord,
    RecordKind,
    Signal,
    SignalKind,
)
from login_audit.timeutil import days_between

#: Roles that make an account an administrator, by default (Vision One, Cloud One name
#: and Cloud One role id).
DEFAULT_ADMIN_ROLES = ("Master Administrator", "Full Access", "administrator")

_CREATE = re.compile(r"^\s*(add|create|invite|generate)\b", re.IGNORECASE)
_CHANGE = re.compile(r"^\s*(edit|update|change|modify|assign)\b", re.IGNORECASE)
_C1_USER_CREATED = re.compile(r"^audit\.(saml[_-])?user[_-]created\.v\d+$", re.IGNORECASE)
_C1_USER_UPDATED = re.compile(r"^audit\.(saml[_-])?user[_-]updated\.v\d+$", re.IGNORECASE)
_C1_KEY_CREATED = re.compile(r"^audit\.api[_-]?key[_-]created\.v\d+$", re.IGNORECASE)
_ROLE_KEYS = ("role", "newrole", "rolename", "role_name", "roleid", "newroleid")
_TARGET_KEYS = ("account", "email", "useraccount", "targetuser", "user", "username", "name")
_C1_TARGET_KEYS = ("email", "subject", "urn", "userurn", "name", "id")
_KEY_KEYS = ("name", "apikeyname", "keyname", "alias", "id", "apikeyid")


@dataclass(frozen=True)
class WatchRules:
    """The thresholds of the rules; every field has a ``watch`` option."""

    dormant_days: int = 90
    failed_threshold: int = 5
    failed_window: timedelta = timedelta(hours=1)
    admin_roles: tuple[str, ...] = DEFAULT_ADMIN_ROLES
    #: As for the audit: an identity as the log writes it, and its account's email or id.
    identity_map: tuple[tuple[str, str], ...] = ()
    ignore_identities: tuple[str, ...] = DEFAULT_IGNORED_IDENTITIES


@dataclass(frozen=True)
class Identity:
    """Every name under which the audit log may record one account."""

    subject: str
    principals: tuple[str, ...]
    account_ids: tuple[str, ...]
    known: bool


class History(Protocol):
    """What the rules ask about the past (the archive answers in production)."""

    covered_from: datetime | None

    def identity(self, record: AuditRecord) -> Identity:
        """The identity that ``record`` names, joined to a known account when possible."""
        ...

    def last_logon_before(self, identity: Identity, before: datetime) -> datetime | None:
        """The identity's newest successful logon strictly before ``before``."""
        ...

    def failed_logons(self, identity: Identity, after: datetime, until: datetime) -> int:
        """Failed logons of the identity logged in ``(after, until]``."""
        ...

    def signalled(self, kind: SignalKind, subject: str, since: datetime, until: datetime) -> bool:
        """True when a stored ``kind`` signal about ``subject`` occurred in ``[since, until]``."""
        ...


def signal_id(kind: SignalKind, record_key: str) -> str:
    """The stable id of the ``kind`` signal that the record ``record_key`` triggered."""
    return hashlib.sha256(f"{kind.value}:{record_key}".encode()).hexdigest()[:32]


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Run:
    """Signals found so far in one call, so a batch answers like the archive would."""

    history: History
    found: list[Signal] = field(default_factory=list)
    _times: dict[tuple[SignalKind, str], list[datetime]] = field(default_factory=dict)

    def add(self, signal: Signal) -> None:
        self.found.append(signal)
        self._times.setdefault((signal.kind, signal.subject), []).append(signal.occurred_at)

    def signalled(self, kind: SignalKind, subject: str, since: datetime, until: datetime) -> bool:
        if any(since <= t <= until for t in self._times.get((kind, subject), ())):
            return True
        return self.history.signalled(kind, subject, since, until)


def dormancy(
    history: History, identity: Identity, when: datetime, rules: WatchRules
) -> tuple[datetime | None, int] | None:
    """``(previous logon or None, days asleep)`` if the identity was stale at ``when``.

    None when it was active, or when the archive does not reach back far enough to say.
    """
    previous = history.last_logon_before(identity, when)
    limit = timedelta(days=rules.dormant_days)
    if previous is not None:
        return (previous, days_between(previous, when)) if when - previous > limit else None
    covered = history.covered_from
    if covered is not None and when - covered >= limit:
        return None, days_between(covered, when)
    return None


def _reactivation(
    run: _Run, record: AuditRecord, when: datetime, rules: WatchRules
) -> Signal | None:
    identity = run.history.identity(record)
    asleep = dormancy(run.history, identity, when, rules)
    if asleep is None:
        return None
    kind = SignalKind.REACTIVATED
    # Two logons at the same instant after the sleep are one awakening.
    if run.signalled(kind, identity.subject, when, when):
        return None
    previous, days = asleep
    if previous is not None:
        summary = (
            f"{identity.subject} logged on after {days} days without a successful logon "
            f"(previous {_stamp(previous)})"
        )
        evidence = (("previousLogon", _stamp(previous)), ("daysDormant", str(days)))
    else:
        summary = (
            f"{identity.subject} logged on with no successful logon in all the archive holds "
            f"(at least {days} days)"
        )
        covered = run.history.covered_from
        assert covered is not None
        evidence = (("noLogonSince", _stamp(covered)), ("daysDormant", str(days)))
    return Signal(
        id=signal_id(kind, record.key),
        kind=kind,
        subject=identity.subject,
        occurred_at=when,
        summary=summary,
        actor=identity.subject,
        evidence=(("logon", _stamp(when)), *evidence, ("recordKey", record.key)),
    )


def _burst(run: _Run, record: AuditRecord, when: datetime, rules: WatchRules) -> Signal | None:
    identity = run.history.identity(record)
    if not identity.known:
        return None
    asleep = dormancy(run.history, identity, when, rules)
    if asleep is None:
        return None
    window = rules.failed_window
    count = run.history.failed_logons(identity, when - window, when)
    if count < rules.failed_threshold:
        return None
    kind = SignalKind.FAILED_BURST
    if run.signalled(kind, identity.subject, when - window, when + window):
        return None
    previous, days = asleep
    state = "inactive" if previous is not None else "no-login"
    minutes = int(window.total_seconds() // 60)
    return Signal(
        id=signal_id(kind, record.key),
        kind=kind,
        subject=identity.subject,
        occurred_at=when,
        summary=(
            f"{count} failed logons within {minutes} minutes on {identity.subject}, "
            f"{state} for {days} days"
        ),
        evidence=(
            ("failedLogons", str(count)),
            ("windowMinutes", str(minutes)),
            ("lastFailed", _stamp(when)),
            ("accountState", state),
            ("daysDormant", str(days)),
            *((("previousLogon", _stamp(previous)),) if previous else ()),
            ("recordKey", record.key),
        ),
    )


def _lowered(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {str(k).lower(): v for k, v in value.items()}
    return {}


def _first(details: dict[str, Any], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = details.get(key)
        if isinstance(value, (str, int)) and str(value).strip():
            return str(value).strip()
    return ""


def privilege_change(record: AuditRecord, rules: WatchRules) -> tuple[SignalKind, str, str] | None:
    """``(kind, subject, role)`` when ``record`` creates an account or API key, or makes an
    account an administrator; None otherwise.

    Vision One: category ``Account Management`` with an activity that adds or creates an
    account, or edits one so that its role (``details.role`` and similar keys, or the
    details text) is an administrator role; any record whose category or activity names
    an API key and whose activity adds, creates or generates one. Cloud One:
    ``audit.user_created.v1``, ``audit.user_updated.v1`` with an administrator ``roleID``,
    ``audit.api_key_created.v1`` (and their SAML and hyphenated spellings).
    """
    category, activity = record.category.strip(), record.activity.strip()
    kind: SignalKind | None = None
    needs_admin = False
    if _C1_KEY_CREATED.match(category):
        kind = SignalKind.API_KEY_CREATED
    elif _C1_USER_CREATED.match(category):
        kind = SignalKind.ACCOUNT_CREATED
    elif _C1_USER_UPDATED.match(category):
        kind, needs_admin = SignalKind.ROLE_ADMIN, True
    elif category.lower().startswith("audit."):
        return None
    elif "api key" in f"{category} {activity}".lower():
        kind = SignalKind.API_KEY_CREATED if _CREATE.match(activity) else None
    elif category.lower() == "account management":
        if _CREATE.match(activity):
            kind = SignalKind.ACCOUNT_CREATED
        elif _CHANGE.match(activity):
            kind, needs_admin = SignalKind.ROLE_ADMIN, True
    if kind is None:
        return None  # decided without parsing the record: most records end here
    try:
        details_value = _lowered(json.loads(record.raw)).get("details")
    except ValueError:
        return None
    details = _lowered(details_value)
    details_text = details_value if isinstance(details_value, str) else ""
    role = _first(details, _ROLE_KEYS)
    if needs_admin:
        admins = {r.lower() for r in rules.admin_roles}
        text = details_text.lower()
        if role.lower() not in admins and not (text and any(a in text for a in admins)):
            return None
    if kind is SignalKind.API_KEY_CREATED:
        return kind, _first(details, _KEY_KEYS) or "API key", role
    keys = _C1_TARGET_KEYS if category.lower().startswith("audit.") else _TARGET_KEYS
    return kind, _first(details, keys) or details_text[:200] or "account", role


_WHAT = {
    SignalKind.ACCOUNT_CREATED: "created the account",
    SignalKind.ROLE_ADMIN: "gave an administrator role to",
    SignalKind.API_KEY_CREATED: "created the API key",
}


def _privilege(record: AuditRecord, when: datetime, rules: WatchRules) -> Signal | None:
    change = privilege_change(record, rules)
    if change is None:
        return None
    kind, subject, role = change
    actor = record.principal or record.account_id or "someone"
    summary = f"{actor} {_WHAT[kind]} {subject}" + (f" (role {role})" if role else "")
    return Signal(
        id=signal_id(kind, record.key),
        kind=kind,
        subject=subject,
        occurred_at=when,
        summary=summary,
        actor=actor,
        evidence=(
            ("category", record.category),
            ("activity", record.activity),
            *((("role", role),) if role else ()),
            ("recordKey", record.key),
        ),
    )


def detect(records: Iterable[AuditRecord], history: History, rules: WatchRules) -> list[Signal]:
    """The signals that ``records`` (new to the watcher) raise; see the module docstring."""
    run = _Run(history)
    for record in records:
        when = record.when
        if when is None:
            continue
        if record.kind is RecordKind.LOGON_OK:
            signal = _reactivation(run, record, when, rules)
        elif record.kind is RecordKind.LOGON_FAILED:
            signal = _burst(run, record, when, rules)
        else:
            signal = _privilege(record, when, rules)
        if signal is not None:
            run.add(signal)
    return run.found
