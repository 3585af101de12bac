"""Trend Cloud One: users, SAML users and roles, and sign-ins from the audit log.

Several details are not documented by the vendor (``API_NOTES.md`` marks them [guess]):
the audit log's order and maximum ``limit``, most entry key names, and the list key of
SAML users. The code tolerates each guess being wrong: keys are read case-insensitively
with alternatives, a refused ``limit`` falls back to 25, and an early stop on old
entries only happens when the log is seen to be newest first.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any

from login_audit.config import C1_KEY_ENV, Secret, Target, normalise_base_url
from login_audit.errors import ConfigError, UnsupportedActionError
from login_audit.http import ApiKeyAuth, HttpClient
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
from login_audit.platforms.pagination import CursorPager, read_ahead
from login_audit.timeutil import parse_timestamp

log = logging.getLogger(__name__)

RETENTION_DAYS = 365
SIGN_IN = "audit.user-signed-in.v1"
PERMISSION_AUDIT = "Audit logs: read (an API key whose role can read the audit log)"
PERMISSION_USERS = "Users and roles: read"
#: The built-in role with every permission, by name and by id (when roles cannot be named).
ADMIN_ROLES: tuple[str, ...] = ("Full Access", "administrator")
NO_DISABLE = "Cloud One documents no API to disable a user"


_REGION = re.compile(r"^[a-z]{2,8}(-[a-z0-9]{1,8})*-[0-9]{1,2}$")


def service_urls(region: str, base_url: str | None) -> dict[str, str]:
    """The origin of each Cloud One service; ``base_url`` sends all of them to one origin."""
    if base_url:
        return {"audit": base_url, "accounts": base_url, "saml": base_url}
    return {
        "audit": f"https://audit.{region}.cloudone.trendmicro.com",
        "accounts": "https://accounts.cloudone.trendmicro.com",
        "saml": "https://saml.cloudone.trendmicro.com",
    }


_RECORD_FIELDS = FieldReader(
    ("type", "eventType", "event"),
    ("principalURN", "principalUrn", "principal"),
    ("time", "timestamp", "created", "eventTime"),
    ("event", "description"),
)


def parse_record(item: Any) -> AuditRecord | None:
    """An :class:`AuditRecord` from one ``/api/logs`` entry, or None."""
    if not isinstance(item, dict):
        return None
    raw, key = canonical(item)
    kind_text, principal, raw_time, activity = _RECORD_FIELDS.read(item)
    try:
        when = parse_timestamp(raw_time) if raw_time else None
    except ValueError:
        when = None
    is_sign_in = kind_text.lower() == SIGN_IN and bool(principal)
    return AuditRecord.of(
        key=key,
        when=when,
        category=kind_text,
        activity=activity,
        result="",
        kind=RecordKind.LOGON_OK if is_sign_in else RecordKind.OTHER,
        principal=principal.lower(),
        account_id=None,
        raw=raw,
    )


class CloudOne:
    """The Cloud One platform client (see :class:`~login_audit.platforms.base.Platform`)."""

    name = "cloudone"
    retention_days = RETENTION_DAYS
    #: The audit log has no time filter: every read starts at the newest entry.
    supports_time_slices = False
    admin_roles = ADMIN_ROLES
    undocumented_actions: str | None = "Cloud One documents no API to disable or delete users"

    def __init__(self, http: HttpClient, region: str, base_url: str | None = None) -> None:
        self.http = http
        self.region = region
        self.urls = service_urls(region, base_url)
        self.base_url = base_url or self.urls["audit"]
        self.activity: list[LoginEvent] = []

    token_env = C1_KEY_ENV
    url_env: str | None = None

    @classmethod
    def resolve(cls, region: str | None, base_url: str | None, env: Mapping[str, str]) -> Target:
        """Where the account is: a base URL, or any region name of the vendor's form
        (``us-1``, ``trend-us-1``)."""
        if base_url:
            return Target(cls.name, "custom", normalise_base_url(base_url), C1_KEY_ENV)
        name = (region or "us-1").strip().lower()
        if not _REGION.match(name):
            raise ConfigError(
                f"unknown Cloud One region {region!r}: use a region such as us-1, de-1, gb-1, "
                "au-1, jp-1, sg-1, in-1, ca-1 or trend-us-1, or --base-url URL"
            )
        return Target(cls.name, name, None, C1_KEY_ENV)

    @classmethod
    def connect(cls, target: Target, http: HttpClient) -> CloudOne:
        """The client of ``target``."""
        return cls(http, target.region, target.base_url)

    @staticmethod
    def authenticate(token: Secret) -> ApiKeyAuth:
        """Cloud One takes its API key in an ``Authorization: ApiKey`` header."""
        return ApiKeyAuth(token)

    def __repr__(self) -> str:
        return f"CloudOne(region={self.region!r}, base_url={self.base_url!r})"

    def requests_made(self) -> int:
        """HTTP requests sent so far, retries included."""
        return self.http.stats.requests

    def _all(self, url: str, list_key: str) -> Iterator[Any]:
        pager = CursorPager(self.http, url, list_key, permission=PERMISSION_USERS)
        for items, _ in read_ahead(pager.pages()):
            yield from items

    def roles(self) -> dict[str, str]:
        """Role id to role name."""
        names = {}
        for item in self._all(f"{self.urls['accounts']}/api/roles", "roles"):
            if isinstance(item, dict):
                low = lowered(item)
                role_id, name = text(low, "id"), text(low, "name")
                if role_id:
                    names[role_id] = name or role_id
        return names

    def list_accounts(self, expected: int = 0) -> Iterator[Account]:
        """Local users, then SAML users; a user's ``lastActivity`` is kept as activity.

        Two short listings one after the other: ``expected`` changes nothing here.
        """
        roles = self.roles()
        self.activity = []
        seen: set[str] = set()
        for item in self._all(f"{self.urls['accounts']}/api/users", "users"):
            account = self._user(item, roles, saml=False)
            if account is not None and account.urn not in seen:
                seen.add(account.urn)
                yield account
        for item in self._all(f"{self.urls['saml']}/api/saml-users", "users"):
            account = self._user(item, roles, saml=True)
            if account is not None and account.urn not in seen:
                seen.add(account.urn)
                yield account

    def _user(self, item: Any, roles: dict[str, str], *, saml: bool) -> Account | None:
        if not isinstance(item, dict):
            return None
        low = lowered(item)
        urn = text(low, "urn")
        email = text(low, "subject", "email") if saml else text(low, "email", "subject")
        if not urn and not email:
            log.warning("skipped a user entry without urn or email")
            return None
        role_id = text(low, "roleID", "roleId", "role")
        state = text(low, "state", "status").lower() or ("enabled" if saml else "unknown")
        try:
            status = AccountStatus(state)
        except ValueError:
            status = AccountStatus.UNKNOWN
        account = Account(
            id=text(low, "id") or urn or email,
            email=email,
            role=roles.get(role_id, role_id),
            auth_type="saml" if saml else "local",
            status=status,
            description=text(low, "name"),
            urn=urn,
        )
        last_activity = text(low, "lastActivity")
        if last_activity and urn:
            try:
                when = parse_timestamp(last_activity)
            except ValueError:
                log.warning("user %s has an unreadable lastActivity", email)
            else:
                self.activity.append(LoginEvent(when, True, urn.lower(), None))
        return account

    def list_api_keys(self) -> Iterator[ApiKey]:
        """Every API key, from ``/api/apikeys`` (list key ``apikeys`` [guess])."""
        pager = CursorPager(
            self.http,
            f"{self.urls['accounts']}/api/apikeys",
            "apikeys",
            permission=PERMISSION_USERS,
        )
        for items, _ in pager.pages():
            for item in items:
                if not isinstance(item, dict):
                    continue
                low = lowered(item)
                key_id = text(low, "id")
                if not key_id:
                    continue
                enabled = low.get("enabled")
                yield ApiKey(
                    id=key_id,
                    name=text(low, "alias", "name", "description"),
                    enabled=enabled is not False,
                    last_used=time_or_none(text(low, "lastActivity")),
                    expires=time_or_none(text(low, "expiry", "expires", "expiresAt")),
                )

    def unsupported_reason(self, action: str, account: Account) -> str | None:
        """No user can be disabled; SAML users belong to the identity provider."""
        if action == "disable":
            return f"{NO_DISABLE}; use --action delete or disable it in the console"
        if account.auth_type == "saml":
            return "a SAML user: remove it in the identity provider"
        return None

    def disable_account(self, account: Account) -> None:
        """Cloud One documents no way to disable a user."""
        raise UnsupportedActionError(self.unsupported_reason("disable", account) or NO_DISABLE)

    def delete_account(self, account: Account) -> None:
        """``DELETE /api/users/{id}``: not documented by the vendor (a guess)."""
        reason = self.unsupported_reason("delete", account)
        if reason:
            raise UnsupportedActionError(reason)
        from urllib.parse import quote

        self.http.request_json(
            "DELETE",
            f"{self.urls['accounts']}/api/users/{quote(account.id, safe='')}",
            permission=PERMISSION_USERS,
        )

    def account_activity(self) -> list[LoginEvent]:
        """Activity the user list itself reports (``lastActivity``), as logon evidence."""
        return list(self.activity)

    def record_pages(
        self, window: TimeWindow, *, logons_only: bool, resume_link: str | None = None
    ) -> Iterator[RecordPage]:
        """Pages of the audit log from ``resume_link`` (a cursor) or the newest entry.

        No time filter is known, so every entry is read (``logons_only`` changes nothing)
        until a page ends before ``window.start`` on a log seen to be newest first.
        """
        oldest = window.end - timedelta(days=self.retention_days)
        start = max(window.start, oldest)
        pager = CursorPager(
            self.http, f"{self.urls['audit']}/api/logs", "logs", permission=PERMISSION_AUDIT
        )
        for items, following in pager.pages(resume_link):
            records = tuple(r for r in map(parse_record, items) if r is not None)
            times = [r.when for r in records if r.when is not None]
            # Every entry of the page in order, not only its ends: one entry out of place
            # is reason enough to read on.
            newest_first = len(times) > 1 and all(a >= b for a, b in itertools.pairwise(times))
            done = newest_first and bool(times) and times[-1] < start
            yield RecordPage(records=records, next_link=None if done else following)
            if done:
                return
