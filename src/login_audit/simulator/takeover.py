"""The ``takeover`` scenario: normal traffic with planted takeover signals, and their truth.

Normal traffic is what a quiet tenant shows: active accounts logging on every few days
through the whole retention, dormant accounts that stay dormant, the odd mistyped
password, accounts edited without becoming administrators. Into it the scenario plants
what ``watch`` must report, each exactly once: dormant accounts logging on again, bursts
of failed logons on stale accounts, role changes to an administrator role, accounts and
API keys created. The records of account and API-key management follow the shapes the
vendors show publicly; where a key name is not documented it is marked inferred in the
README.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

from login_audit.simulator import cloudone as c1
from login_audit.simulator.tenant import RETENTION_DAYS, SimAccount, Tenant, _Builder

FAILED_THRESHOLD = 5
ADMIN_ROLE = "Master Administrator"

Planted = dict[str, str]


def _planted(kind: str, subject: str, when: datetime) -> Planted:
    return {"kind": kind, "subject": subject.lower(), "at": when.strftime("%Y-%m-%dT%H:%M:%SZ")}


def _active(b: _Builder, account: SimAccount, oldest: float = RETENTION_DAYS - 2) -> None:
    day = oldest
    while day > 0.5:
        b.event(account, b.ago(day))
        if b.rng.random() < 0.3:
            b.event(account, b.ago(day - 0.01), activity="Log off")
        if b.rng.random() < 0.05:  # a mistyped password, then the right one
            b.event(account, b.ago(day + 0.001), result="Unsuccessful")
        day -= b.rng.uniform(1, 10)


def _burst(b: _Builder, account: SimAccount, days: float, count: int) -> datetime:
    start = b.ago(days)
    last = start
    for n in range(count):
        last = start + timedelta(seconds=40 * n + b.rng.randint(0, 30))
        b.event(account, last, result="Unsuccessful")
    return last


def _management(
    b: _Builder,
    actor: SimAccount,
    when: datetime,
    category: str,
    activity: str,
    details: dict[str, Any],
) -> None:
    b.event(actor, when, category=category, activity=activity)
    b.raw[-1][1]["details"] = details


def build_takeover_tenant(
    seed: int, accounts: int = 120, now: datetime | None = None, *, domain: str = "example.com"
) -> tuple[Tenant, list[Planted]]:
    """A Vision One tenant of normal traffic with planted signals, and the planted list."""
    b = _Builder(seed, now or datetime.now(timezone.utc))
    planted: list[Planted] = []
    admin = b.account(f"admin@{domain}", "active", role=ADMIN_ROLE)
    _active(b, admin)
    active: list[SimAccount] = []
    dormant: list[SimAccount] = []
    never: list[SimAccount] = []
    while len(b.tenant.accounts) < max(accounts, 30):
        n = len(b.tenant.accounts) + 1
        klass = b.rng.choices(("active", "dormant", "never"), (70, 20, 10))[0]
        role = b.rng.choice(("Operator", "Auditor", "Senior Analyst", "Investigator"))
        email = f"user{n:05d}@{domain}"
        if klass == "active":
            a = b.account(email, "active", role=role)
            _active(b, a)
            active.append(a)
        elif klass == "dormant":
            a = b.account(email, "inactive", role=role)
            b.logons(a, 125, RETENTION_DAYS - 2, b.rng.randint(1, 3))
            for _ in range(b.rng.randint(0, 2)):  # a stray failure now and then: no burst
                b.event(a, b.ago(b.rng.uniform(1, 100)), result="Unsuccessful")
            dormant.append(a)
        else:
            a = b.account(email, "no-login", role=role)
            if b.rng.random() < 0.3:
                b.event(a, b.ago(b.rng.uniform(1, 170)), result="Unsuccessful")
            never.append(a)
    for _ in range(len(active) // 3):  # edits that do not make anyone an administrator
        target = b.rng.choice(active)
        _management(
            b,
            admin,
            b.ago(b.rng.uniform(1, 170)),
            "Account Management",
            "Edit account",
            {"account": target.email, "role": target.role},
        )
    # Planted: dormant accounts wake up (two of them log on again an hour later).
    for i, a in enumerate(dormant[:4]):
        when = b.ago(b.rng.uniform(1, 20))
        b.event(a, when)
        if i < 2:
            b.event(a, when + timedelta(hours=1))
        a.klass = "active"  # awake now: the truth of an audit must not list it
        planted.append(_planted("dormant-reactivated", a.email, when))
    for a in never[:1]:
        when = b.ago(b.rng.uniform(1, 20))
        b.event(a, when)
        a.klass = "active"
        planted.append(_planted("dormant-reactivated", a.email, when))
    # Planted: bursts of failed logons on stale accounts; one account is tried twice.
    for a in dormant[4:7]:
        last = _burst(b, a, b.rng.uniform(1, 15), FAILED_THRESHOLD + 2)
        planted.append(_planted("failed-logon-burst", a.email, last))
    for a in dormant[7:8]:
        for days in (12.0, 9.0):
            last = _burst(b, a, days, FAILED_THRESHOLD)
            planted.append(_planted("failed-logon-burst", a.email, last))
    for a in never[1:2]:
        last = _burst(b, a, b.rng.uniform(1, 15), FAILED_THRESHOLD + 1)
        planted.append(_planted("failed-logon-burst", a.email, last))
    # Planted: privilege changes.
    for a in active[:2]:
        when = b.ago(b.rng.uniform(1, 30))
        _management(
            b,
            admin,
            when,
            "Account Management",
            "Edit account",
            {"account": a.email, "role": ADMIN_ROLE, "previousRole": a.role},
        )
        planted.append(_planted("role-changed-to-admin", a.email, when))
    for n in range(2):
        when = b.ago(b.rng.uniform(1, 30))
        email = f"new.person{n + 1}@{domain}"
        b.account(email, "no-login", role="Operator")
        _management(
            b,
            admin,
            when,
            "Account Management",
            "Add account",
            {"account": email, "role": "Operator"},
        )
        planted.append(_planted("account-created", email, when))
    for n in range(2):
        when = b.ago(b.rng.uniform(1, 30))
        name = f"automation-{n + 1}"
        _management(b, admin, when, "API Keys", "Add API key", {"name": name, "role": ADMIN_ROLE})
        planted.append(_planted("api-key-created", name, when))
    return b.finish(), sorted(planted, key=lambda p: (p["at"], p["kind"], p["subject"]))


def build_takeover_cloudone(
    seed: int, users: int = 60, now: datetime | None = None, *, domain: str = "example.org"
) -> tuple[c1.CloudOneTenant, list[Planted]]:
    """A Cloud One account of normal traffic with planted signals, and the planted list."""
    b = c1._Builder(seed, now or datetime.now(timezone.utc), "us-1", "123456789012")
    planted: list[Planted] = []
    retention = c1.RETENTION_DAYS
    admin = b.user(f"admin@{domain}", "active", role="administrator")
    active: list[c1.C1User] = [admin]
    dormant: list[c1.C1User] = []
    while len(b.t.users) < max(users, 12):
        n = len(b.t.users) + 1
        if b.rng.random() < 0.75:
            u = b.user(f"c1user{n:05d}@{domain}", "active", role="read-only")
            active.append(u)
        else:
            u = b.user(f"c1user{n:05d}@{domain}", "inactive", role="auditor")
            for _ in range(b.rng.randint(1, 2)):
                b.log(u, b.rng.uniform(290, retention - 2))  # too early to judge
            dormant.append(u)
    for u in active:
        day = retention - 2.0
        while day > 0.5:
            b.log(u, day)
            day -= b.rng.uniform(1, 10)

    def entry(kind: str, days: float, details: dict[str, Any]) -> datetime:
        when = b.ago(days)
        b.raw.append(
            (
                when,
                {
                    "id": str(uuid.UUID(int=b.rng.getrandbits(128))),
                    "time": c1._z(when),
                    "type": kind,
                    "principalURN": admin.urn,
                    "accountID": b.t.account,
                    "description": kind,
                    "details": details,
                },
            )
        )
        return when

    for u in active[1 : len(active) // 4]:  # role edits that grant no administrator role
        entry(
            "audit.user_updated.v1",
            b.rng.uniform(1, 300),
            {"email": u.email, "roleID": "read-only"},
        )
    for u in dormant[:3]:
        days = b.rng.uniform(1, 20)
        b.log(u, days)
        u.klass = "active"  # awake now: the truth of an audit must not list it
        planted.append(_planted("dormant-reactivated", u.urn, b.ago(days)))
    for u in active[1:2]:
        when = entry(
            "audit.user_updated.v1",
            b.rng.uniform(1, 30),
            {"email": u.email, "roleID": "administrator"},
        )
        planted.append(_planted("role-changed-to-admin", u.email, when))
    when = entry("audit.user_created.v1", b.rng.uniform(1, 30), {"email": f"new.person@{domain}"})
    planted.append(_planted("account-created", f"new.person@{domain}", when))
    when = entry("audit.api_key_created.v1", b.rng.uniform(1, 30), {"name": "c1-automation"})
    planted.append(_planted("api-key-created", "c1-automation", when))
    b.apikeys(3)
    return b.finish(), sorted(planted, key=lambda p: (p["at"], p["kind"], p["subject"]))
