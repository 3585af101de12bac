"""Synthetic Trend Cloud One tenants: users, SAML users, roles and an audit log.

As for Vision One, each user is generated for a purpose (its class) and the ground truth
comes from that intent. Key names the vendor does not document follow the project's
guesses in ``API_NOTES.md`` (``id``, ``time``, ``type``, ``principalURN``, ...).
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

DEFAULT_DAYS = 90
RETENTION_DAYS = 365
SIGN_IN = "audit.user-signed-in.v1"
SIGN_OUT = "audit.user-signed-out.v1"
OTHER_TYPES = ("audit.api_key_created.v1", "audit.role_updated.v1", "audit.user_updated.v1")
ROLES = (
    {"id": "administrator", "name": "Full Access"},
    {"id": "read-only", "name": "Read Only"},
    {"id": "auditor", "name": "Auditor"},
)
FLAGGED = frozenset({"inactive", "no-login"})


def _z(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class C1User:
    """A local or SAML user and the purpose it was generated for."""

    id: str
    email: str
    role_id: str
    state: str
    urn: str
    klass: str
    saml: bool = False
    created: datetime | None = None
    last_activity: datetime | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """The user as ``/api/users`` or ``/api/saml-users`` returns it."""
        created = _z(self.created) if self.created else None
        if self.saml:
            return {
                "subject": self.email,
                "urn": self.urn,
                "roleID": self.role_id,
                "created": created,
                "lastModified": created,
            }
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.email.split("@")[0].replace(".", " ").title(),
            "email": self.email,
            "roleID": self.role_id,
            "state": self.state,
            "mfaEnabled": True,
            "created": created,
            "lastModified": created,
            "urn": self.urn,
        }
        if self.last_activity is not None:
            body["lastActivity"] = _z(self.last_activity)
        return body


@dataclass
class CloudOneTenant:
    """Users, SAML users, roles and the audit log (newest last) of one account."""

    seed: int
    region: str
    account: str
    generated_at: datetime
    roles: list[dict[str, str]] = field(default_factory=lambda: [dict(r) for r in ROLES])
    users: list[C1User] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    apikeys: list[dict[str, Any]] = field(default_factory=list)
    key_classes: dict[str, str] = field(default_factory=dict)

    def role_name(self, role_id: str) -> str:
        """A role's name, or its id when the role is unknown."""
        return next((r["name"] for r in self.roles if r["id"] == role_id), role_id)

    def truth(self) -> dict[str, Any]:
        """What the default policy (90 days, disabled excluded) must report."""
        flagged = sorted(
            (u for u in self.users if u.klass in FLAGGED), key=lambda u: u.email.lower()
        )
        return {
            "seed": self.seed,
            "platform": "cloudone",
            "generatedAt": _z(self.generated_at),
            "days": DEFAULT_DAYS,
            "users": len(self.users),
            "logs": len(self.logs),
            "classes": {u.urn: u.klass for u in self.users},
            "remove": [{"UserId": u.email, "RoleName": self.role_name(u.role_id)} for u in flagged],
            "apiKeys": dict(sorted(self.key_classes.items())),
        }

    def write_truth(self, path: Path) -> None:
        """Write :meth:`truth` as JSON."""
        path.write_text(json.dumps(self.truth(), indent=2) + "\n", encoding="utf-8")


class _Builder:
    def __init__(self, seed: int, now: datetime, region: str, account: str) -> None:
        self.rng = random.Random(seed)
        self.now = now.replace(microsecond=0)
        self.t = CloudOneTenant(seed, region, account, self.now)
        self.raw: list[tuple[datetime, dict[str, Any]]] = []

    def user(
        self,
        email: str,
        klass: str,
        *,
        saml: bool = False,
        state: str = "enabled",
        role: str | None = None,
        activity_days: float | None = None,
        note: str = "",
    ) -> C1User:
        n = len(self.t.users) + 1
        uid = str(uuid.UUID(int=self.rng.getrandbits(128)))
        kind = "saml-user/" + hashlib.sha256(email.encode()).hexdigest() if saml else f"user/{uid}"
        user = C1User(
            id=uid,
            email=email,
            role_id=role or self.rng.choice(ROLES)["id"],
            state=state,
            urn=f"urn:cloudone:identity:{self.t.region}:{self.t.account}:{kind}",
            klass=klass,
            saml=saml,
            created=self.now - timedelta(days=400 + n % 50),
            last_activity=None if saml or activity_days is None else self.ago(activity_days),
            note=note,
        )
        self.t.users.append(user)
        return user

    def ago(self, days: float) -> datetime:
        return (self.now - timedelta(days=days)).replace(microsecond=0)

    def log(self, user: C1User | None, days: float, kind: str = SIGN_IN) -> None:
        when = self.ago(days)
        principal = (
            user.urn
            if user
            else (f"urn:cloudone:identity:{self.t.region}:{self.t.account}:apikey/ci-pipeline")
        )
        entry = {
            "id": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "time": _z(when),
            "type": kind,
            "principalURN": principal,
            "accountID": self.t.account,
            "description": f"{kind.split('.')[1]} by {user.email if user else 'API key'}",
            "details": {"sourceIP": f"203.0.113.{self.rng.randint(1, 254)}"},
        }
        self.raw.append((when, entry))

    def apikeys(self, count: int) -> None:
        plan = ["active", "stale", "never-used"]
        plan += [self.rng.choice(plan) for _ in range(max(0, count - len(plan)))]
        for n, kind in enumerate(plan, 1):
            key: dict[str, Any] = {
                "id": f"c1key-{n:04d}",
                "name": f"{kind} key {n}",
                "enabled": self.rng.random() < 0.9,
                "roleID": self.rng.choice(ROLES)["id"],
                "created": _z(self.now - timedelta(days=400)),
            }
            if kind == "active":
                key["lastActivity"] = _z(self.ago(self.rng.uniform(0.1, 80)))
            elif kind == "stale":
                key["lastActivity"] = _z(self.ago(self.rng.uniform(100, 300)))
            self.t.apikeys.append(key)
            self.t.key_classes[key["id"]] = kind

    def finish(self) -> CloudOneTenant:
        self.raw.sort(key=lambda pair: pair[0])
        self.t.logs = [e for _, e in self.raw]
        self.t.times = [w for w, _ in self.raw]
        return self.t


def _hard_cases(b: _Builder, domain: str) -> None:
    u = b.user(f"olivia.active@{domain}", "active", note="signed in recently")
    b.log(u, 2)
    b.log(u, 2, SIGN_OUT)
    b.user(
        f"peggy.lastactivity@{domain}",
        "active",
        activity_days=5,
        note="no sign-in event, recent lastActivity",
    )
    u = b.user(
        f"quentin.dormant@{domain}", "inactive", activity_days=200, note="sign-in 200 days ago"
    )
    b.log(u, 200)
    u = b.user(f"rupert.signout@{domain}", "no-login", note="sign-outs only")
    b.log(u, 3, SIGN_OUT)
    b.user(f"sybil.never@{domain}", "no-login", note="never signed in")
    u = b.user(f"trent.ancient@{domain}", "no-login", note="sign-in beyond the retention")
    b.log(u, RETENTION_DAYS + 30)
    u = b.user(f"ursula.disabled@{domain}", "excluded", state="disabled", note="disabled")
    b.log(u, 250)
    u = b.user(
        f"victor.orphanrole@{domain}",
        "inactive",
        role="deleted-custom-role",
        note="role no longer exists",
    )
    b.log(u, 120)
    u = b.user(f"walter.saml@{domain}", "active", saml=True, note="SAML, signed in")
    b.log(u, 1)
    b.user(f"xena.saml@{domain}", "no-login", saml=True, note="SAML, never signed in")
    u = b.user(f"yves.saml@{domain}", "inactive", saml=True, note="SAML, dormant")
    b.log(u, 100)
    u = b.user(f"zoe.inside@{domain}", "active", note="sign-in 2 hours inside the threshold")
    b.raw.append(
        (
            b.now - timedelta(days=DEFAULT_DAYS) + timedelta(hours=2),
            {
                "id": "inside-1",
                "time": _z(b.now - timedelta(days=DEFAULT_DAYS) + timedelta(hours=2)),
                "type": SIGN_IN,
                "principalURN": u.urn,
                "accountID": b.t.account,
                "description": "user-signed-in",
                "details": {},
            },
        )
    )
    for days in (1, 40, 300):
        b.log(None, days, "audit.api_key_created.v1")


def build_cloudone_tenant(
    seed: int,
    users: int,
    now: datetime | None = None,
    *,
    region: str = "us-1",
    account: str = "123456789012",
    domain: str = "example.org",
) -> CloudOneTenant:
    """Generate a Cloud One account with ``users`` users (local and SAML)."""
    b = _Builder(seed, now or datetime.now(timezone.utc), region, account)
    _hard_cases(b, domain)
    while len(b.t.users) < users:
        n = len(b.t.users) + 1
        saml = b.rng.random() < 0.3
        email = f"c1user{n:05d}@{domain}"
        klass = b.rng.choices(("active", "inactive", "no-login", "disabled"), (60, 20, 12, 8))[0]
        if klass == "disabled" and saml:
            klass = "no-login"
        if klass == "active":
            u = b.user(email, "active", saml=saml, activity_days=b.rng.uniform(0, 30))
            for _ in range(b.rng.randint(1, 4)):
                b.log(u, b.rng.uniform(0.1, DEFAULT_DAYS - 1))
        elif klass == "inactive":
            u = b.user(email, "inactive", saml=saml, activity_days=b.rng.uniform(100, 300))
            for _ in range(b.rng.randint(1, 3)):
                b.log(u, b.rng.uniform(DEFAULT_DAYS + 1, RETENTION_DAYS - 1))
            if b.rng.random() < 0.5:
                b.log(u, b.rng.uniform(1, 60), SIGN_OUT)
        elif klass == "no-login":
            b.user(email, "no-login", saml=saml)
        else:
            u = b.user(email, "excluded", state="disabled")
            b.log(u, b.rng.uniform(100, 300))
        if b.rng.random() < 0.3:
            b.log(b.t.users[-1], b.rng.uniform(1, 300), b.rng.choice(OTHER_TYPES))
    b.apikeys(max(3, users // 40))
    return b.finish()
