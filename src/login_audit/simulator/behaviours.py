"""Vendor behaviours the simulator can switch on: what the real API might do instead.

The simulator's default answers follow the facts of ``API_NOTES.md`` and one consistent
answer for each guess. Each behaviour here is another answer the vendor might give, so
that login-audit's defence against it is tested, and users can try it with
``login-audit simulate --behave NAME``. A behaviour never changes the tenant's ground
truth: the accounts are as active or as dormant as before; only the evidence changes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from login_audit.simulator.cloudone import SIGN_IN, CloudOneTenant
from login_audit.simulator.tenant import Tenant

#: Every behaviour, with what it does (shown by ``simulate --help``).
BEHAVIOURS: dict[str, str] = {
    "unsorted-pages": "some audit records are served out of time order (indexed late)",
    "display-names": "logons name people by display name only (no mail address, no id)",
    "sso-elsewhere": "SAML users' logons are not recorded as 'Log on' events",
    "null-items": 'an empty page is answered with "items": null',
    "reject-old-start": "a startDateTime older than the retention is refused with 400",
    "future-times": "a few logons of dormant accounts carry a time far in the future",
    "bare-429": "the rate limit answers 429 without Retry-After",
    "account-filters-refused": "a TMV1-Filter on the account list is refused with 400",
    "empty-next": (
        'the last page of a listing carries an empty link ("nextLink": "" on Vision One, '
        '"next": "" on Cloud One) instead of none'
    ),
    "account-filter-ignored": "an account-list filter on role (undocumented) matches everyone",
}

LOGON_CATEGORY = "Logon and Logoff"
#: How far back an out-of-order record is moved, in records.
UNSORTED_SHIFT = 250


def display_name(email: str) -> str:
    """The display name the ``display-names`` behaviour shows for ``email``."""
    local = email.split("@", 1)[0]
    return " ".join(part.capitalize() for part in local.replace("_", ".").split(".") if part)


def identity_map(tenant: Tenant) -> list[tuple[str, str]]:
    """``(display name, email)`` for every account, as an ``--identity-map`` file holds them."""
    return sorted((display_name(a.email), a.email) for a in tenant.accounts if "@" in a.email)


def _is_logon(item: dict[str, Any]) -> bool:
    return item.get("category") == LOGON_CATEGORY and item.get("activity") == "Log on"


def apply_to_tenant(tenant: Tenant, behaviours: frozenset[str]) -> Tenant:
    """A copy of ``tenant`` whose records show the behaviours that change content."""
    if not behaviours & {"display-names", "sso-elsewhere", "future-times"}:
        return tenant
    by_email = {a.email.lower(): a for a in tenant.accounts}
    by_id = {a.id: a for a in tenant.accounts}
    pairs: list[tuple[datetime, dict[str, Any]]] = []
    for when, item in zip(tenant.times, tenant.records, strict=True):
        item = dict(item)
        user = str(item.get("loggedUserMailAddress") or item.get("loggedUser") or "").lower()
        account = by_email.get(user) or by_id.get(str(item.get("loggedUserId", "")))
        if account is not None and item.get("category") == LOGON_CATEGORY:
            if "sso-elsewhere" in behaviours and account.auth_type == "saml" and _is_logon(item):
                item["activity"] = "Single sign-on"
            if "display-names" in behaviours:
                item["loggedUser"] = display_name(account.email)
                item.pop("loggedUserMailAddress", None)
                item.pop("loggedUserId", None)
        pairs.append((when, item))
    if "future-times" in behaviours:
        dormant = [a for a in tenant.accounts if a.klass == "inactive"][:3]
        for n, account in enumerate(dormant):
            # Served among recent records (ingested two days ago) but dated a year ahead,
            # as a client with a wrong clock would report it.
            served = tenant.generated_at - timedelta(days=2, minutes=n)
            logged = tenant.generated_at + timedelta(days=400 + n)
            item = {
                "loggedDateTime": logged.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "ingestedDateTime": served.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "loggedUser": account.email,
                "loggedRole": account.role,
                "accessType": "Console",
                "category": LOGON_CATEGORY,
                "activity": "Log on",
                "result": "Successful",
                "details": {},
            }
            if "display-names" in behaviours:
                item["loggedUser"] = display_name(account.email)
            pairs.append((served, item))
        pairs.sort(key=lambda pair: pair[0])
    return replace(tenant, times=[w for w, _ in pairs], records=[i for _, i in pairs])


def _moved(position: int) -> bool:
    """Whether the record at ``position`` of a listing is one served out of order.

    One record in 61 from position 250 on, so every listing of more than 261 records has
    one on its first page of 200 (deterministic: a test can count on it).
    """
    return position >= UNSORTED_SHIFT and position % 61 == 17


def unsort(indices: list[int]) -> list[int]:
    """Move a few records of a listing ``UNSORTED_SHIFT`` places ahead of their time.

    The listing is still complete and every record still belongs to the window asked
    for; only the order within the chain of pages is off, as with late-indexed records.
    """
    result = list(indices)
    for position in range(len(indices) - 1, UNSORTED_SHIFT - 1, -1):
        if _moved(position):
            result.insert(position - UNSORTED_SHIFT, result.pop(position))
    return result


def apply_to_cloudone(tenant: CloudOneTenant, behaviours: frozenset[str]) -> CloudOneTenant:
    """A copy of a Cloud One ``tenant`` whose log shows the behaviours that apply to it.

    ``sso-elsewhere``: SAML users' sign-ins are logged under another event type.
    """
    if "sso-elsewhere" not in behaviours:
        return tenant
    saml = {u.urn for u in tenant.users if u.saml}
    logs = [
        {**entry, "type": "audit.saml-assertion-accepted.v1"}
        if entry.get("type") == SIGN_IN and entry.get("principalURN") in saml
        else entry
        for entry in tenant.logs
    ]
    return replace(tenant, logs=logs)
