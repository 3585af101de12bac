"""Domain values: frozen dataclasses that every layer after the platform clients shares.

Vendor JSON never leaves ``platforms/``; everything downstream sees these types.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from login_audit.timeutil import format_z_micro


class AccountStatus(str, enum.Enum):
    """An account's state as the platform reports it."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    INVITED = "invited"
    UNKNOWN = "unknown"


class FindingKind(str, enum.Enum):
    """The one verdict the audit gives each account."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    NO_LOGIN = "no-login"
    EXCLUDED = "excluded"
    UNKNOWN = "unknown"

    @property
    def removable(self) -> bool:
        """True for the verdicts that put an account on the cleanup list."""
        return self in (FindingKind.INACTIVE, FindingKind.NO_LOGIN)


class Doubt(str, enum.Enum):
    """Why an account was left ``unknown`` instead of judged."""

    #: Its newest successful logon is dated in the future: the record cannot be trusted.
    FUTURE_LOGON = "future-logon"
    #: The audit log was not read completely.
    RECORDS_INCOMPLETE = "records-incomplete"
    #: A successful logon of it has no readable time.
    UNDATED_LOGON = "undated-logon"
    #: Its records were read, but the absence of logons cannot be trusted (identities of
    #: the log that match no account, or accounts of a type whose logons the log omits).
    NOT_PROVEN_STALE = "not-proven-stale"


@dataclass(frozen=True)
class Account:
    """A user account of a platform, as listed by its IAM API."""

    id: str
    email: str
    role: str
    auth_type: str
    status: AccountStatus
    description: str = ""
    urn: str = ""

    @property
    def user_id(self) -> str:
        """The value the cleanup CSV calls ``UserId`` (the email, else the id)."""
        return self.email or self.id


@dataclass(frozen=True)
class LoginEvent:
    """One logon attempt read from an audit log.

    ``principal`` is how the event names its user (an email, a display name or a URN) and
    ``account_id`` the platform's account id when the event carries one; the analysis joins
    either to an account, case-insensitively. ``when`` is None when the record's time could
    not be read: such an event can never make an account look stale.
    """

    when: datetime | None
    successful: bool
    principal: str
    account_id: str | None = None


class RecordKind(str, enum.Enum):
    """What an audit record means to the login audit."""

    LOGON_OK = "logon-ok"
    LOGON_FAILED = "logon-failed"
    OTHER = "other"


@dataclass(frozen=True)
class AuditRecord:
    """One audit-log record as archived: the columns queries need plus the raw JSON.

    ``key`` is a stable hash of the normalised record (the vendors give no reliable id),
    so reading the same record twice stores it once.
    """

    key: str
    when: datetime | None
    category: str
    activity: str
    result: str
    kind: RecordKind
    principal: str
    account_id: str | None
    raw: str

    @classmethod
    def of(
        cls,
        key: str,
        when: datetime | None,
        category: str,
        activity: str,
        result: str,
        kind: RecordKind,
        principal: str,
        account_id: str | None,
        raw: str,
    ) -> AuditRecord:
        """The same record as the constructor makes, in a third of its time: a frozen
        dataclass sets each field through ``object.__setattr__``, and parsing and the
        archive make a record per audit-log entry, millions in a large sync or export.
        Each field is stored on its own: ``update`` with keywords builds a dict first."""
        record = object.__new__(cls)
        fields = record.__dict__
        fields["key"] = key
        fields["when"] = when
        fields["category"] = category
        fields["activity"] = activity
        fields["result"] = result
        fields["kind"] = kind
        fields["principal"] = principal
        fields["account_id"] = account_id
        fields["raw"] = raw
        return record

    def login_event(self) -> LoginEvent | None:
        """The logon attempt this record is, or None."""
        if self.kind is RecordKind.OTHER:
            return None
        return LoginEvent(
            when=self.when,
            successful=self.kind is RecordKind.LOGON_OK,
            principal=self.principal,
            account_id=self.account_id,
        )


@dataclass(frozen=True)
class RecordPage:
    """One page of records and the link that continues after it (None on the last page)."""

    records: tuple[AuditRecord, ...]
    next_link: str | None


@dataclass(frozen=True)
class TimeWindow:
    """A half-open interval of instants ``[start, end)`` that was read from a log."""

    start: datetime
    end: datetime


_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.I)


def looks_like_uuid(text: str) -> bool:
    """True for a UUID, with or without its hyphens: an id, never a name."""
    return bool(_UUID.match(text))


#: Identities the vendor logs that are no account of the tenant's list (Vision One's
#: built-in administrator), accepted unless the policy says otherwise.
DEFAULT_IGNORED_IDENTITIES = ("Root Account",)


@dataclass(frozen=True)
class Policy:
    """The rules an audit applies; every field has a command-line flag.

    ``identity_map`` pairs an identity as the log writes it with the email or id of the
    account it stands for; ``ignore_identities`` are identities accepted as nobody's
    account; ``trust_empty_evidence`` names the account types (``saml``, ``local``) whose
    lack of any logon is to be believed.
    """

    days: int = 90
    include_disabled: bool = False
    grace_days: int = 0
    exclude_patterns: tuple[str, ...] = ()
    exclude_roles: tuple[str, ...] = ()
    identity_map: tuple[tuple[str, str], ...] = ()
    ignore_identities: tuple[str, ...] = DEFAULT_IGNORED_IDENTITIES
    trust_empty_evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnmatchedIdentity:
    """An identity of the log that is no account of the list, and what it did.

    ``kind`` says what it looks like: ``email`` or ``id`` (a deleted account, an API key:
    it cannot be one of the listed accounts), ``display-name`` (it could be any of them),
    or ``ignored`` (accepted by the policy).
    """

    identity: str
    kind: str
    last_success: datetime | None
    last_failed: datetime | None
    undated_success: bool = False


@dataclass(frozen=True)
class Finding:
    """The verdict on one account, with the evidence behind it."""

    account: Account
    kind: FindingKind
    reason: str
    last_login: datetime | None = None
    last_failed_login: datetime | None = None
    days_since_login: int | None = None
    #: Why an ``unknown`` finding was not judged (None for every other kind).
    doubt: Doubt | None = None


@dataclass(frozen=True)
class ReportedAccount:
    """An account as an audit put it on the removal list, for ``apply`` to check again.

    A cleanup CSV gives only ``user_id`` and ``role``; ``audit_report.json`` and the
    archive also give the account's id, status, finding and reason. Empty (None for the
    role, which may be empty) means the source did not say.
    """

    user_id: str
    role: str | None = None
    account_id: str = ""
    status: str = ""
    finding: str = ""
    reason: str = ""

    @classmethod
    def of(cls, finding: Finding) -> ReportedAccount:
        """The entry of one finding of an audit."""
        account = finding.account
        return cls(
            account.user_id,
            account.role,
            account.id,
            account.status.value,
            finding.kind.value,
            finding.reason,
        )


@dataclass(frozen=True)
class ApiKey:
    """An API key of a platform: standing access like an account."""

    id: str
    name: str
    enabled: bool
    last_used: datetime | None
    expires: datetime | None


@dataclass(frozen=True)
class ApiKeyFinding:
    """The verdict on one API key: ``stale``, ``expired``, ``never-used`` or ``active``."""

    key: ApiKey
    kind: str
    reason: str

    @property
    def flagged(self) -> bool:
        """True for the keys that belong in ``stale_api_keys.csv``."""
        return self.kind != "active"


@dataclass(frozen=True)
class RunSummary:
    """What an audit run read, how much of it, and what it found."""

    tool_version: str
    platform: str
    region: str
    base_url: str
    started_at: datetime
    finished_at: datetime
    window: TimeWindow
    policy: Policy
    complete: bool
    problems: tuple[str, ...]
    requests: int
    events_read: int
    unmatched_events: int  # distinct identities in the log that match no account
    findings: tuple[Finding, ...] = field(default=())
    api_keys: tuple[ApiKeyFinding, ...] | None = None
    unmatched: tuple[UnmatchedIdentity, ...] = field(default=())
    #: Things the user should check that do not make the run incomplete (an exclusion
    #: that matched nothing).
    warnings: tuple[str, ...] = ()
    #: The tenant's name (``--tenant``, or its name in the tenants file), for people.
    tenant_name: str = ""
    signals: tuple[Signal, ...] | None = None  # watch's signals of the period, if it runs

    def counts(self) -> dict[str, int]:
        """Number of findings of each kind, every kind present (zero when none)."""
        result = {kind.value: 0 for kind in FindingKind}
        for finding in self.findings:
            result[finding.kind.value] += 1
        return result

    @property
    def to_remove(self) -> tuple[Finding, ...]:
        """The findings that belong on the cleanup CSV, in report order."""
        return tuple(f for f in self.findings if f.kind.removable)


class SignalKind(str, enum.Enum):
    """What ``watch`` reports: signs that someone may have taken over an account."""

    REACTIVATED = "dormant-reactivated"
    FAILED_BURST = "failed-logon-burst"
    ACCOUNT_CREATED = "account-created"
    ROLE_ADMIN = "role-changed-to-admin"
    API_KEY_CREATED = "api-key-created"

    @property
    def label(self) -> str:
        """The signal's name for people."""
        return {
            "dormant-reactivated": "Dormant account reactivated",
            "failed-logon-burst": "Failed logons on a stale account",
            "account-created": "Account created",
            "role-changed-to-admin": "Role changed to an administrator role",
            "api-key-created": "API key created",
        }[self.value]


@dataclass(frozen=True)
class Signal:
    """One takeover signal: what happened, to whom, when, and the records that show it.

    ``id`` is a hash of the kind and the evidence, so the same signal found twice (after
    a crash, or by a second watcher) is the same value.
    """

    id: str
    kind: SignalKind
    subject: str
    occurred_at: datetime
    summary: str
    actor: str = ""
    evidence: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Signal:
        """The inverse of :meth:`to_json`."""
        when = datetime.strptime(str(data["occurredAt"]), "%Y-%m-%dT%H:%M:%S.%fZ")
        return cls(
            id=str(data["id"]),
            kind=SignalKind(data["kind"]),
            subject=str(data["subject"]),
            occurred_at=when.replace(tzinfo=timezone.utc),
            summary=str(data["summary"]),
            actor=str(data.get("actor") or ""),
            evidence=tuple((str(k), str(v)) for k, v in (data.get("evidence") or {}).items()),
        )

    def to_json(self) -> dict[str, object]:
        """The signal as the JSON Lines output and the webhook carry it."""
        return {
            "id": self.id,
            "kind": self.kind.value,
            "subject": self.subject,
            "occurredAt": format_z_micro(self.occurred_at),
            "summary": self.summary,
            "actor": self.actor or None,
            "evidence": dict(self.evidence),
        }
