"""Synthetic Vision One tenants with a known ground truth.

Each account is generated for a purpose (its *class*) and its audit records are drawn to
fit that purpose, so the truth ("which accounts the default policy must flag") comes from
the generator's intent, not from login-audit's own analysis. The first accounts of every
tenant are the hard cases the analysis must get right.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

DEFAULT_DAYS = 90
RETENTION_DAYS = 180
ROLES = (
    "Master Administrator",
    "Operator",
    "Auditor",
    "Senior Analyst",
    "Investigator",
    "Threat Hunter",
)
OTHER_ACTIVITIES = (
    ("Account Management", "Edit account"),
    ("Detection Model Management", "Update detection model"),
    ("Workbench", "Update alert status"),
    ("Response Management", "Isolate endpoint"),
    ("Search", "Run search query"),
)

# Classes: flagged by the default policy or not.
FLAGGED = frozenset({"inactive", "no-login"})


@dataclass
class SimAccount:
    """An account of the simulated tenant and the purpose it was generated for."""

    id: str
    email: str
    role: str
    auth_type: str
    status: str
    klass: str
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """The account as ``/v3.0/iam/accounts`` returns it."""
        return {
            "id": self.id,
            "email": self.email,
            "role": self.role,
            "authType": self.auth_type,
            "status": self.status,
            "description": self.note,
        }


@dataclass
class Tenant:
    """Accounts, audit records (newest last) and the truth of one simulated tenant."""

    seed: int
    generated_at: datetime
    accounts: list[SimAccount] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    api_keys: list[dict[str, Any]] = field(default_factory=list)
    key_classes: dict[str, str] = field(default_factory=dict)

    def truth(self) -> dict[str, Any]:
        """What the default policy (90 days, disabled excluded) must report."""
        flagged = sorted(
            (a for a in self.accounts if a.klass in FLAGGED), key=lambda a: a.email.lower()
        )
        return {
            "seed": self.seed,
            "generatedAt": self.generated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "days": DEFAULT_DAYS,
            "accounts": len(self.accounts),
            "records": len(self.records),
            "classes": {a.id: a.klass for a in self.accounts},
            "remove": [{"UserId": a.email, "RoleName": a.role} for a in flagged],
            "apiKeys": dict(sorted(self.key_classes.items())),
        }

    def write_truth(self, path: Path) -> None:
        """Write :meth:`truth` as JSON."""
        path.write_text(json.dumps(self.truth(), indent=2) + "\n", encoding="utf-8")


def _stamp(moment: datetime, style: int) -> str:
    """A timestamp in one of the forms the vendor is seen to use."""
    if style == 1:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}Z"
    if style == 2:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Builder:
    def __init__(self, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now.replace(microsecond=0)
        self.tenant = Tenant(seed=seed, generated_at=self.now)
        self.raw: list[tuple[datetime, dict[str, Any]]] = []

    def account(
        self,
        email: str,
        klass: str,
        *,
        role: str | None = None,
        auth_type: str = "local",
        status: str = "enabled",
        note: str = "",
    ) -> SimAccount:
        number = len(self.tenant.accounts) + 1
        account = SimAccount(
            id=f"{self.rng.getrandbits(64):016x}-{number:06d}",
            email=email,
            role=role or self.rng.choice(ROLES),
            auth_type=auth_type,
            status=status,
            klass=klass,
            note=note,
        )
        self.tenant.accounts.append(account)
        return account

    def event(
        self,
        account: SimAccount | None,
        when: datetime,
        *,
        category: str = "Logon and Logoff",
        activity: str = "Log on",
        result: str = "Successful",
        logged_user: str | None = None,
        mail: str | None = None,
        user_id: str | None = None,
        style: int | None = None,
    ) -> None:
        if style is None:
            style = self.rng.choice((0, 0, 0, 1, 2))
        item: dict[str, Any] = {
            "loggedDateTime": _stamp(when, style),
            "ingestedDateTime": _stamp(when + timedelta(seconds=self.rng.randint(5, 300)), 0),
            "loggedUser": logged_user or (account.email if account else "Root Account"),
            "loggedRole": account.role if account else "Master Administrator",
            "accessType": self.rng.choice(("Console", "Console", "API")),
            "category": category,
            "activity": activity,
            "result": result,
            "details": {"sourceIp": f"198.51.100.{self.rng.randint(1, 254)}"},
        }
        if mail:
            item["loggedUserMailAddress"] = mail
        if user_id:
            item["loggedUserId"] = user_id
        self.raw.append((when, item))

    def ago(self, days: float, jitter_hours: float = 0.0) -> datetime:
        hours = self.rng.uniform(-jitter_hours, jitter_hours) if jitter_hours else 0.0
        moment = self.now - timedelta(days=days, hours=hours)
        return moment.replace(microsecond=self.rng.randint(0, 999_999))

    def noise(self, account: SimAccount, newest_days: float, oldest_days: float) -> None:
        """Log-offs and other activity: none of it is a login."""
        for _ in range(self.rng.randint(0, 2)):
            when = self.ago(self.rng.uniform(newest_days, oldest_days))
            self.event(account, when, activity="Log off")
        for _ in range(self.rng.randint(0, 2)):
            category, activity = self.rng.choice(OTHER_ACTIVITIES)
            self.event(
                account, self.ago(self.rng.uniform(1, 170)), category=category, activity=activity
            )

    def logons(self, account: SimAccount, newest: float, oldest: float, count: int) -> None:
        days = sorted(self.rng.uniform(newest, oldest) for _ in range(count))
        for day in days:
            self.event(account, self.ago(day))

    def api_keys(self, count: int) -> None:
        """Keys of every kind: active, stale, never used, expired but still present."""
        plan = ["active", "stale", "never-used", "expired"]
        plan += [self.rng.choice(plan) for _ in range(max(0, count - len(plan)))]
        for n, kind in enumerate(plan, 1):
            key: dict[str, Any] = {
                "id": f"key-{n:04d}-{self.rng.getrandbits(32):08x}",
                "name": f"{kind} key {n}",
                "status": "enabled" if self.rng.random() < 0.9 else "disabled",
                "role": self.rng.choice(ROLES),
            }
            if kind == "active":
                key["lastUsedDateTime"] = _stamp(self.ago(self.rng.uniform(0.1, 80)), 0)
            elif kind == "stale":
                key["lastUsedDateTime"] = _stamp(self.ago(self.rng.uniform(100, 170)), 0)
            elif kind == "expired":
                key["lastUsedDateTime"] = _stamp(self.ago(self.rng.uniform(20, 40)), 0)
                key["expiredDateTime"] = _stamp(self.ago(self.rng.uniform(1, 15)), 0)
            if kind != "expired" and self.rng.random() < 0.5:
                key["expiredDateTime"] = _stamp(self.now + timedelta(days=200), 0)
            self.tenant.api_keys.append(key)
            self.tenant.key_classes[key["id"]] = kind

    def finish(self) -> Tenant:
        self.raw.sort(key=lambda pair: pair[0])
        self.tenant.records = [item for _, item in self.raw]
        self.tenant.times = [when for when, _ in self.raw]
        return self.tenant


def _hard_cases(b: _Builder, domain: str) -> None:
    """Accounts that only a correct audit classifies right."""
    days = DEFAULT_DAYS
    a = b.account(f"Alice.Mixed@{domain}", "active", note="mixed-case email")
    b.event(a, b.ago(3), logged_user=a.email.lower())

    a = b.account(f"bob.display@{domain}", "active", note="loggedUser is a display name")
    b.event(a, b.ago(10), logged_user="Bob Display", mail=a.email.upper())

    a = b.account(f"carol.id@{domain}", "active", note="event names the account by id only")
    b.event(a, b.ago(20), logged_user="Carol Display", user_id=a.id)

    a = b.account(f"dave.fractions@{domain}", "active", note="timestamp with fractions")
    b.event(a, b.ago(5), style=1)

    a = b.account(f"erin.spaced@{domain}", "active", note="space-separated timestamp")
    b.event(a, b.ago(6), style=2)

    a = b.account(f"frank.failed@{domain}", "inactive", note="dormant, recent failed logons")
    b.event(a, b.ago(days + 40))
    for d in (1, 2, 4):
        b.event(a, b.ago(d), result="Unsuccessful")

    a = b.account(f"grace.logoff@{domain}", "no-login", note="only log-offs and failures")
    b.event(a, b.ago(2), activity="Log off")
    b.event(a, b.ago(3), result="Unsuccessful")
    b.event(a, b.ago(30), category="Account Management", activity="Edit account")

    a = b.account(f"heidi.inside@{domain}", "active", note="logon 2 hours inside the threshold")
    b.event(a, b.now - timedelta(days=days) + timedelta(hours=2), style=0)

    a = b.account(f"ivan.outside@{domain}", "inactive", note="logon 2 hours past the threshold")
    b.event(a, b.now - timedelta(days=days) - timedelta(hours=2), style=0)

    a = b.account(f"judy.never@{domain}", "no-login", note="never logged on")

    a = b.account(f"ken.ancient@{domain}", "no-login", note="last logon beyond retention")
    b.event(a, b.ago(RETENTION_DAYS + 20))

    a = b.account(
        f"laura.disabled@{domain}", "excluded", status="disabled", note="disabled, dormant"
    )
    b.event(a, b.ago(150))

    b.account(f"mallory.invited@{domain}", "excluded", status="invited", note="invited")

    b.account(f"saml-admins@{domain}", "excluded", auth_type="samlGroup", note="SAML group")

    a = b.account(f"niaj.saml@{domain}", "inactive", auth_type="saml", note="SAML user, dormant")
    b.event(a, b.ago(120))

    # Events of the built-in root identity match no account.
    for d in (1, 50, 100):
        b.event(None, b.ago(d))


def build_tenant(
    seed: int,
    accounts: int,
    now: datetime | None = None,
    *,
    domain: str = "example.com",
    hard_cases: bool = True,
) -> Tenant:
    """Generate a tenant of ``accounts`` accounts whose records end at ``now``."""
    b = _Builder(seed, now or datetime.now(timezone.utc))
    if hard_cases:
        _hard_cases(b, domain)
    classes = (
        ("active", 60),
        ("inactive", 18),
        ("no-login", 10),
        ("disabled", 6),
        ("invited", 3),
        ("saml-group", 3),
    )
    names, weights = zip(*classes, strict=True)
    while len(b.tenant.accounts) < accounts:
        n = len(b.tenant.accounts) + 1
        klass = b.rng.choices(names, weights)[0]
        email = f"user{n:06d}@{domain}"
        if klass == "active":
            a = b.account(email, "active")
            b.logons(a, 0.1, DEFAULT_DAYS - 1, b.rng.randint(1, 6))
            if b.rng.random() < 0.5:
                b.logons(a, DEFAULT_DAYS + 1, RETENTION_DAYS - 1, b.rng.randint(1, 3))
            b.noise(a, 0.1, 170)
        elif klass == "inactive":
            a = b.account(email, "inactive")
            b.logons(a, DEFAULT_DAYS + 1, RETENTION_DAYS - 1, b.rng.randint(1, 4))
            if b.rng.random() < 0.3:
                b.event(a, b.ago(b.rng.uniform(1, 60)), result="Unsuccessful")
            b.noise(a, DEFAULT_DAYS + 1, 170)
        elif klass == "no-login":
            a = b.account(email, "no-login")
            if b.rng.random() < 0.3:
                b.event(a, b.ago(b.rng.uniform(1, 170)), result="Unsuccessful")
        elif klass == "disabled":
            a = b.account(email, "excluded", status="disabled")
            b.logons(a, 100, RETENTION_DAYS - 1, b.rng.randint(0, 2))
        elif klass == "invited":
            b.account(email, "excluded", status="invited")
        else:
            b.account(f"group{n:06d}@{domain}", "excluded", auth_type="samlGroup")
    b.api_keys(max(4, accounts // 50))
    return b.finish()
