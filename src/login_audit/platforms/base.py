"""The small interface every platform client offers to the rest of login-audit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from login_audit.http import HttpClient
from login_audit.models import Account, ApiKey, LoginEvent, RecordPage, TimeWindow, looks_like_uuid


class Platform(Protocol):
    """A vendor platform seen as accounts plus a log of logon attempts."""

    name: str
    region: str
    base_url: str
    retention_days: int
    supports_time_slices: bool
    #: The roles (names, or ids where the platform names roles by id) that administer the
    #: tenant: ``apply`` never leaves a tenant without one of them enabled.
    admin_roles: tuple[str, ...]
    #: Why disabling and deleting accounts rest on endpoints the vendor does not document
    #: (None when it documents them): ``apply`` then acts only when asked to explicitly.
    undocumented_actions: str | None
    http: HttpClient

    def list_accounts(self, expected: int = 0) -> Iterator[Account]:
        """Yield every account of the tenant, each once when ``expected`` is 0.

        ``expected`` is how many accounts the caller expects (0: unknown); a platform may
        read a long list in several parallel listings, and then yield an account again
        when it read it again: the later version replaces the earlier.
        """
        ...

    def account_activity(self) -> list[LoginEvent]:
        """Activity the account list itself reports (after ``list_accounts``), if any."""
        ...

    def record_pages(
        self, window: TimeWindow, *, logons_only: bool, resume_link: str | None = None
    ) -> Iterator[RecordPage]:
        """Pages of audit records of ``window``, oldest first, each with its continuation."""
        ...

    def list_api_keys(self) -> Iterator[ApiKey]:
        """Every API key of the tenant."""
        ...

    def unsupported_reason(self, action: str, account: Account) -> str | None:
        """Why this platform cannot ``action`` (disable, delete) ``account``, or None."""
        ...

    def disable_account(self, account: Account) -> None:
        """Disable one account."""
        ...

    def delete_account(self, account: Account) -> None:
        """Delete one account."""
        ...

    def requests_made(self) -> int:
        """HTTP requests sent so far, retries included."""
        ...


def _spelling(text: str) -> str:
    """A role name without case, spaces or punctuation: ``Master_Administrator`` and
    ``master administrator`` are one role."""
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def is_administrator(platform: Platform, role: str) -> bool:
    """True when ``role`` administers the tenant on ``platform``, however it is spelt."""
    wanted = _spelling(role)
    return any(wanted == _spelling(admin) for admin in platform.admin_roles)


def role_is_opaque(platform: Platform, role: str) -> bool:
    """True when ``role`` is an id rather than a name (empty, a UUID, or a word that is
    mostly digits such as ``role-0001``), so whether it administers the tenant cannot be
    told: such an account is never treated as a plain user."""
    text = role.strip()
    if is_administrator(platform, text):
        return False
    if not text or looks_like_uuid(text):
        return True
    digits = sum(ch.isdigit() for ch in text)
    return not any(ch.isspace() for ch in text) and digits * 5 >= len(text) * 2
