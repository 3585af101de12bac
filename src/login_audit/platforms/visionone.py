"""Trend Vision One (API v3.0): IAM accounts and logon events from the audit log."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from login_audit.config import TOKEN_ENV, URL_ENV, Secret, Target, vision_one_base_url
from login_audit.errors import ConfigError, ProtocolError
from login_audit.http import BearerAuth, HttpClient
from login_audit.models import (
    Account,
    AccountStatus,
    ApiKey,
    AuditRecord,
    LoginEvent,
    RecordKind,
    RecordPage,
    TimeWindow,
)
from login_audit.platforms.fields import FieldReader, canonical, lowered, text, time_or_none
from login_audit.platforms.pagination import NextLinkPager, read_ahead
from login_audit.platforms.partitions import Partition, Term, partitioned_items
from login_audit.timeutil import Clock, format_z, parse_timestamp, utcnow

log = logging.getLogger(__name__)

RETENTION_DAYS = 180
#: A start this much later than the retention edge is sent, for requests in flight.
RETENTION_MARGIN = timedelta(minutes=1)
#: How much later a start refused at the retention edge is tried again, and how often.
OLD_START_STEP = timedelta(hours=1)
OLD_START_RETRIES = 3
PAGE_SIZE = 200
FILTER_MAX = 1024
LOGON_CATEGORY = "Logon and Logoff"
LOGON_ACTIVITY = "Log on"
PERMISSION_AUDIT = "Audit Logs: View, filter, and search"
PERMISSION_ACCOUNTS = "User Accounts: View"
PERMISSION_CONFIGURE = "User Accounts: Configure account settings"
PERMISSION_API_KEYS = "API Keys: View"
#: Only a Master Administrator may change accounts (API_NOTES.md) [doc].
ADMIN_ROLES: tuple[str, ...] = ("Master Administrator",)


def quote_value(value: str) -> str:
    """Quote ``value`` for a ``TMV1-Filter`` expression, or refuse it.

    Quote escaping is not documented; a single quote is doubled (the OData convention)
    and values that no escaping could express safely (control characters) are refused,
    so user data can never change the meaning of the filter.
    """
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ConfigError(f"cannot filter on {value!r}: it contains control characters")
    return "'" + value.replace("'", "''") + "'"


def filter_eq(field: str, value: str) -> str:
    """One ``(field eq 'value')`` term."""
    if not field.isidentifier():
        raise ConfigError(f"not a filter field name: {field!r}")
    return f"({field} eq {quote_value(value)})"


def filter_and(*terms: str) -> str:
    """Join terms with ``and``; refuse a result longer than the vendor's 1024 characters."""
    text = " and ".join(terms)
    if len(text) > FILTER_MAX:
        raise ConfigError(f"the TMV1-Filter would be {len(text)} characters; the limit is 1024")
    return text


LOGON_FILTER = filter_and(
    filter_eq("category", LOGON_CATEGORY), filter_eq("activity", LOGON_ACTIVITY)
)


def filter_none_of(field: str, values: tuple[str, ...]) -> str:
    """``not ((field eq 'a') or (field eq 'b') ...)``: every value but those named."""
    return "not (" + " or ".join(filter_eq(field, v) for v in values) + ")"


AUTH_TYPES = ("local", "saml", "samlGroup")
STATUSES = ("enabled", "disabled", "invited")
_LOCAL = Term("authType", ("local",))
#: Independent listings whose union is the whole account list, read in parallel when the
#: list is long: the documented authTypes (local ones, the most, split by status; local
#: and enabled ones split again by role, see ``partitions.py``) and, for each split, a
#: remainder for whatever value it does not name, so an account of a new kind or
#: spelling is still listed exactly once.
ACCOUNT_PARTITIONS: tuple[Partition, ...] = (
    Partition((_LOCAL, Term("status", ("enabled",))), split_by_role=True),
    *(Partition((_LOCAL, Term("status", (s,)))) for s in STATUSES[1:]),
    Partition((_LOCAL, Term("status", STATUSES, negated=True))),
    *(Partition((Term("authType", (t,)),)) for t in AUTH_TYPES[1:]),
    Partition((Term("authType", AUTH_TYPES, negated=True),)),
)
#: The fewest accounts expected for the partitions to pay: each costs a partly filled page.
PARTITION_FROM = 2000


def partition_filter(partition: Partition) -> str:
    """The ``TMV1-Filter`` of one partition of the account list."""
    terms = [
        filter_none_of(t.field, t.values) if t.negated else filter_eq(t.field, t.values[0])
        for t in partition.terms
    ]
    return filter_and(*terms)


def parse_account(item: Any) -> Account | None:
    """An :class:`Account` from one ``/iam/accounts`` item, or None if it has no id."""
    if not isinstance(item, dict):
        return None
    account_id, email, role, auth_type, status_text, description = _ACCOUNT_FIELDS.read(item)
    if not account_id:
        return None
    status = _STATUSES.get(status_text.lower(), AccountStatus.UNKNOWN)
    return Account(
        id=account_id,
        email=email,
        role=role,
        auth_type=auth_type,
        status=status,
        description=description,
    )


_ACCOUNT_FIELDS = FieldReader(
    ("id",), ("email",), ("role",), ("authType",), ("status",), ("description",)
)
_STATUSES = {status.value: status for status in AccountStatus}


_LOGON_CATEGORY, _LOGON_ACTIVITY = LOGON_CATEGORY.lower(), LOGON_ACTIVITY.lower()
_RECORD_FIELDS = FieldReader(
    ("category",),
    ("activity",),
    ("result",),
    ("loggedUserMailAddress", "loggedUser"),
    ("loggedUserId",),
    ("loggedDateTime",),
)


def parse_record(item: Any) -> AuditRecord | None:
    """An :class:`AuditRecord` from one audit-log item (any category), or None."""
    if not isinstance(item, dict):
        return None
    raw, key = canonical(item)
    category, activity, result, principal, account_id, raw_time = _RECORD_FIELDS.read(item)
    is_logon = category.lower() == _LOGON_CATEGORY and activity.lower() == _LOGON_ACTIVITY
    try:
        when = parse_timestamp(raw_time) if raw_time else None
    except ValueError:
        when = None
    if when is None:
        log.warning("an audit record of %s has no readable loggedDateTime", principal or "?")
    if not is_logon or not (principal or account_id):
        kind = RecordKind.OTHER
    elif result.lower() == "successful":
        kind = RecordKind.LOGON_OK
    else:
        kind = RecordKind.LOGON_FAILED
    return AuditRecord.of(
        key=key,
        when=when,
        category=category,
        activity=activity,
        result=result,
        kind=kind,
        principal=principal.lower(),
        account_id=account_id or None,
        raw=raw,
    )


def parse_logon(item: Any) -> LoginEvent | None:
    """A :class:`LoginEvent` from one audit-log item, or None if it is not a logon."""
    record = parse_record(item)
    return record.login_event() if record else None


class VisionOne:
    """The Vision One platform client (see :class:`~login_audit.platforms.base.Platform`)."""

    name = "visionone"
    retention_days = RETENTION_DAYS
    supports_time_slices = True
    admin_roles = ADMIN_ROLES
    undocumented_actions: str | None = None

    def __init__(
        self, http: HttpClient, base_url: str, region: str, *, clock: Clock = utcnow
    ) -> None:
        self.http = http
        self.base_url = base_url
        self.region = region
        self.clock = clock

    #: Where the token is read from, and the variable naming the API's origin (as in the
    #: vendor's samples).
    token_env = TOKEN_ENV
    url_env: str | None = URL_ENV

    @classmethod
    def resolve(cls, region: str | None, base_url: str | None, env: Mapping[str, str]) -> Target:
        """Where the tenant is: a region or a base URL, else ``$TMV1_URL``, else ``us``."""
        label, url = vision_one_base_url(region, base_url or env.get(URL_ENV) or None)
        return Target(cls.name, label, url, TOKEN_ENV)

    @classmethod
    def connect(cls, target: Target, http: HttpClient) -> VisionOne:
        """The client of ``target`` (whose base URL is always resolved for Vision One)."""
        if target.base_url is None:
            raise ValueError("a Vision One target always has a base URL")
        return cls(http, target.base_url, target.region)

    @staticmethod
    def authenticate(token: Secret) -> BearerAuth:
        """Vision One takes its API token as a bearer token."""
        return BearerAuth(token)

    def __repr__(self) -> str:
        return f"VisionOne(region={self.region!r}, base_url={self.base_url!r})"

    def requests_made(self) -> int:
        """HTTP requests sent so far, retries included."""
        return self.http.stats.requests

    def list_accounts(self, expected: int = 0) -> Iterator[Account]:
        """Yield every IAM account, each once unless a newer version replaces it.

        With ``expected`` (the accounts of the last snapshot) of ``PARTITION_FROM`` or
        more, the list is read as the independent ``ACCOUNT_PARTITIONS`` in parallel,
        their answers checked; if one is refused or does not hold together, the list is
        read again in one listing, whose versions of the accounts replace those yielded
        before (see ``partitions.py``).
        """
        if expected < PARTITION_FROM:
            yield from self._accounts(self._items(None), newer_replaces=False)
            return
        items = partitioned_items(
            ACCOUNT_PARTITIONS,
            lambda partition: self._pages(partition_filter(partition)),
            lambda: self._items(None),
        )
        yield from self._accounts(items, newer_replaces=True)

    @staticmethod
    def _accounts(items: Iterator[Any], *, newer_replaces: bool) -> Iterator[Account]:
        """Parsed accounts; an id seen before is dropped unless it may be a newer version
        (a partition read again); an entry without an id is skipped."""
        seen: set[str] = set()
        for item in items:
            account = parse_account(item)
            if account is None:
                log.warning("skipped an account entry without an id")
                continue
            if account.id in seen and not newer_replaces:
                continue
            seen.add(account.id)
            yield account

    def _pages(self, filter_text: str | None) -> Iterator[list[Any]]:
        pager = NextLinkPager(
            self.http,
            f"{self.base_url}/v3.0/iam/accounts",
            self.base_url,
            params={"top": PAGE_SIZE},
            headers={"TMV1-Filter": filter_text} if filter_text else None,
            permission=PERMISSION_ACCOUNTS,
        )
        return read_ahead(pager.pages())

    def _items(self, filter_text: str | None) -> Iterator[Any]:
        for page in self._pages(filter_text):
            yield from page

    def account_activity(self) -> list[LoginEvent]:
        """Vision One's account list carries no activity: the audit log decides alone."""
        return []

    def _account_url(self, account_id: str) -> str:
        from urllib.parse import quote

        return f"{self.base_url}/v3.0/iam/accounts/{quote(account_id, safe='')}"

    def unsupported_reason(self, action: str, account: Account) -> str | None:
        """Vision One can disable and delete every account the IAM API lists."""
        return None

    def disable_account(self, account: Account) -> None:
        """``PATCH`` the account's status to ``disabled`` (204 on success)."""
        self.http.request_json(
            "PATCH",
            self._account_url(account.id),
            json_body={"status": "disabled"},
            permission=PERMISSION_CONFIGURE,
        )

    def delete_account(self, account: Account) -> None:
        """``DELETE`` the account (204 on success)."""
        self.http.request_json(
            "DELETE", self._account_url(account.id), permission=PERMISSION_CONFIGURE
        )

    def list_api_keys(self) -> Iterator[ApiKey]:
        """Every API key, from ``/v3.0/iam/apiKeys``."""
        pager = NextLinkPager(
            self.http,
            f"{self.base_url}/v3.0/iam/apiKeys",
            self.base_url,
            params={"top": PAGE_SIZE},
            permission=PERMISSION_API_KEYS,
        )
        for page in pager.pages():
            for item in page:
                if not isinstance(item, dict):
                    continue
                low = lowered(item)
                key_id = text(low, "id")
                if not key_id:
                    continue
                yield ApiKey(
                    id=key_id,
                    name=text(low, "name"),
                    enabled=text(low, "status").lower() != "disabled",
                    last_used=time_or_none(text(low, "lastUsedDateTime")),
                    expires=time_or_none(text(low, "expiredDateTime")),
                )

    def clamp(self, window: TimeWindow) -> TimeWindow:
        """``window`` with its start moved inside the retention the vendor serves now.

        Measured from the moment of the request, not from the window's end: a slice read
        again, or resumed days later, must not ask for what the vendor no longer keeps.
        A minute of margin absorbs the time the request takes to arrive.
        """
        oldest = self.clock() - timedelta(days=self.retention_days) + RETENTION_MARGIN
        start = min(max(window.start, oldest), window.end)
        return TimeWindow(start=start, end=window.end)

    def logon_query(self, window: TimeWindow, order: str = "desc") -> dict[str, str | int]:
        """The query string of a sweep over ``window``."""
        return {
            "startDateTime": format_z(window.start),
            "endDateTime": format_z(window.end),
            "dateTimeTarget": "loggedDateTime",
            "orderBy": f"loggedDateTime {order}",
            "top": PAGE_SIZE,
            "labels": "all",
        }

    def record_pages(
        self, window: TimeWindow, *, logons_only: bool, resume_link: str | None = None
    ) -> Iterator[RecordPage]:
        """Yield pages of records of ``window``, oldest first, each with its continuation.

        ``resume_link`` continues an interrupted sweep from a stored ``nextLink``.
        """
        headers = {"TMV1-Filter": LOGON_FILTER} if logons_only else None
        clamped = self.clamp(window)
        for retry in range(OLD_START_RETRIES + 1):
            if resume_link:
                url, params = resume_link, None
            else:
                url = f"{self.base_url}/v3.0/audit/logs"
                params = self.logon_query(clamped, order="asc")
            pager = NextLinkPager(
                self.http,
                url,
                self.base_url,
                params=params,
                headers=headers,
                permission=PERMISSION_AUDIT,
            )
            pages = read_ahead(pager.pages_with_links())
            try:
                first = next(pages, None)
            except ProtocolError as exc:
                edge = self.clock() - timedelta(days=self.retention_days) + OLD_START_STEP
                if resume_link or exc.status != 400 or clamped.start > edge:
                    raise
                if retry == OLD_START_RETRIES:
                    raise
                # The vendor refused a start at the edge of its retention (its clock runs
                # ahead of ours, or it counts the days otherwise): start a little later.
                log.info("the vendor refused the oldest start; reading from an hour later")
                clamped = TimeWindow(min(clamped.start + OLD_START_STEP, window.end), window.end)
                continue
            if first is None:
                return
            for items, link in itertools.chain([first], pages):
                records = tuple(r for r in map(parse_record, items) if r is not None)
                yield RecordPage(records=records, next_link=link)
            return
