"""The watch rules as tables: records and a remembered past in, signals out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from login_audit.models import AuditRecord, RecordKind, SignalKind
from login_audit.platforms import cloudone, visionone
from login_audit.watch import Identity, WatchRules, detect, privilege_change

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
RULES = WatchRules(dormant_days=90, failed_threshold=3, failed_window=timedelta(hours=1))


def ago(days: float = 0, **kw: float) -> datetime:
    return NOW - timedelta(days=days, **kw)


def v1(when: datetime, user: str = "ann@example.com", **fields: object) -> AuditRecord:
    item = {
        "loggedDateTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "loggedUser": user,
        "category": "Logon and Logoff",
        "activity": "Log on",
        "result": "Successful",
        **fields,
    }
    record = visionone.parse_record(item)
    assert record is not None
    return record


@dataclass
class Past:
    """An in-memory History: the archive's records and signals as lists."""

    records: list[AuditRecord] = field(default_factory=list)
    covered_from: datetime | None = NOW - timedelta(days=180)
    accounts: tuple[str, ...] = ("ann@example.com",)
    stored: list[tuple[SignalKind, str, datetime]] = field(default_factory=list)

    def identity(self, record: AuditRecord) -> Identity:
        return Identity(
            record.principal, (record.principal,), (), record.principal in self.accounts
        )

    def last_logon_before(self, identity: Identity, before: datetime) -> datetime | None:
        times = [
            r.when
            for r in self.records
            if r.kind is RecordKind.LOGON_OK
            and r.principal in identity.principals
            and r.when is not None
            and r.when < before
        ]
        return max(times, default=None)

    def failed_logons(self, identity: Identity, after: datetime, until: datetime) -> int:
        return sum(
            1
            for r in self.records
            if r.kind is RecordKind.LOGON_FAILED
            and r.principal in identity.principals
            and r.when is not None
            and after < r.when <= until
        )

    def signalled(self, kind: SignalKind, subject: str, since: datetime, until: datetime) -> bool:
        return any(k is kind and s == subject and since <= t <= until for k, s, t in self.stored)


def run(new: list[AuditRecord], past: Past, rules: WatchRules = RULES):
    # As in production, the archive already holds the new records when the rules run.
    past.records += new
    return [(s.kind, s.subject) for s in detect(new, past, rules)]


REACTIVATED = (SignalKind.REACTIVATED, "ann@example.com")
BURST = (SignalKind.FAILED_BURST, "ann@example.com")


@pytest.mark.parametrize(
    ("previous", "covered_days", "expected"),
    [
        (91, 180, [REACTIVATED]),  # slept longer than 90 days
        (90, 180, []),  # exactly 90 days is still active, as in the audit
        (89, 180, []),
        (None, 180, [REACTIVATED]),  # none in all the archive holds, and it holds 180 days
        (None, 90, [REACTIVATED]),
        (None, 60, []),  # the archive is too young to say
        (None, None, []),
    ],
)
def test_reactivation_needs_a_sleep_longer_than_the_threshold(
    previous: float | None, covered_days: float | None, expected: list
) -> None:
    past = Past(covered_from=ago(covered_days) if covered_days is not None else None)
    if previous is not None:
        past.records.append(v1(ago(previous)))
    assert run([v1(ago(0))], past) == expected


def test_reactivation_says_how_long_it_slept_and_the_evidence() -> None:
    past = Past(records=[v1(ago(120))])
    (signal,) = detect([v1(ago(0))], past, RULES)
    assert "after 120 days" in signal.summary
    evidence = dict(signal.evidence)
    assert evidence["daysDormant"] == "120"
    assert evidence["previousLogon"] == ago(120).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_the_second_logon_after_waking_up_is_not_a_new_signal() -> None:
    past = Past(records=[v1(ago(120))])
    assert run([v1(ago(1)), v1(ago(1, hours=-1))], past) == [REACTIVATED]
    # Two records at the same instant (two sessions) are one awakening too.
    past = Past(records=[v1(ago(120))])
    same = [v1(ago(1)), v1(ago(1), accessType="API")]
    assert run(same, past) == [REACTIVATED]


def failed(when: datetime, user: str = "ann@example.com") -> AuditRecord:
    return v1(when, user, result="Unsuccessful")


def burst(count: int, start: datetime, user: str = "ann@example.com") -> list[AuditRecord]:
    return [failed(start + timedelta(minutes=5 * n), user) for n in range(count)]


@pytest.mark.parametrize(
    ("last_logon", "count", "user", "expected"),
    [
        (120, 3, "ann@example.com", [BURST]),  # inactive account, threshold reached
        (120, 2, "ann@example.com", []),  # below the threshold
        (None, 4, "ann@example.com", [BURST]),  # no-login account
        (10, 6, "ann@example.com", []),  # active account: people mistype passwords
        (120, 6, "nobody@example.com", []),  # not an account of the tenant
    ],
)
def test_failed_logon_bursts_on_stale_accounts(
    last_logon: float | None, count: int, user: str, expected: list
) -> None:
    past = Past()
    if last_logon is not None:
        past.records.append(v1(ago(last_logon), user))
    assert run(burst(count, ago(2), user), past) == expected


def test_failures_spread_wider_than_the_window_are_no_burst() -> None:
    past = Past(records=[v1(ago(120))])
    spread = [failed(ago(2, minutes=-40 * n)) for n in range(4)]
    assert run(spread, past) == []


def test_one_burst_is_one_signal_and_a_later_one_another() -> None:
    past = Past(records=[v1(ago(120))])
    assert run(burst(8, ago(5)), past) == [BURST]
    past.stored.append((SignalKind.FAILED_BURST, "ann@example.com", ago(5, minutes=-10)))
    assert run(burst(3, ago(5, minutes=-40)), past) == []  # same episode, reported already
    assert run(burst(3, ago(1)), past) == [BURST]


def test_undated_records_are_skipped() -> None:
    record = visionone.parse_record({"loggedUser": "ann@example.com", "category": "x"})
    assert record is not None and record.when is None
    assert run([record], Past()) == []


def mgmt(category: str, activity: str, details: object) -> AuditRecord:
    return v1(ago(1), "admin@example.com", category=category, activity=activity, details=details)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            mgmt("Account Management", "Add account", {"account": "new@x.com", "role": "Auditor"}),
            (SignalKind.ACCOUNT_CREATED, "new@x.com", "Auditor"),
        ),
        (
            mgmt("Account Management", "Edit account", {"account": "b@x.com", "role": "Operator"}),
            None,
        ),
        (
            mgmt(
                "Account Management",
                "Edit account",
                {"Account": "b@x.com", "Role": "master administrator"},
            ),
            (SignalKind.ROLE_ADMIN, "b@x.com", "master administrator"),
        ),
        (
            mgmt(
                "Account Management",
                "Edit account",
                "Changed role of b@x.com to Master Administrator",
            ),
            (SignalKind.ROLE_ADMIN, "Changed role of b@x.com to Master Administrator", ""),
        ),
        (mgmt("Account Management", "Edit account", None), None),
        (mgmt("Account Management", "Delete account", {"account": "b@x.com"}), None),
        (
            mgmt("API Keys", "Add API key", {"name": "ci"}),
            (SignalKind.API_KEY_CREATED, "ci", ""),
        ),
        (mgmt("API Keys", "Delete API key", {"name": "ci"}), None),
        (mgmt("Workbench", "Add note", {"name": "x"}), None),
    ],
)
def test_privilege_changes_of_vision_one(record: AuditRecord, expected: tuple | None) -> None:
    assert privilege_change(record, RULES) == expected


def c1(kind: str, details: dict) -> AuditRecord:
    item = {
        "id": "e1",
        "time": "2026-11-20T10:00:00Z",
        "type": kind,
        "principalURN": "urn:cloudone:identity:us-1:1:user/admin",
        "details": details,
    }
    record = cloudone.parse_record(item)
    assert record is not None
    return record


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            c1("audit.user_created.v1", {"email": "n@x.org"}),
            (SignalKind.ACCOUNT_CREATED, "n@x.org", ""),
        ),
        (
            c1("audit.user_updated.v1", {"email": "n@x.org", "roleID": "administrator"}),
            (SignalKind.ROLE_ADMIN, "n@x.org", "administrator"),
        ),
        (c1("audit.user_updated.v1", {"email": "n@x.org", "roleID": "read-only"}), None),
        (c1("audit.api_key_created.v1", {"name": "k"}), (SignalKind.API_KEY_CREATED, "k", "")),
        (c1("audit.role_updated.v1", {"roleID": "administrator"}), None),
        (c1("audit.user-signed-in.v1", {}), None),
    ],
)
def test_privilege_changes_of_cloud_one(record: AuditRecord, expected: tuple | None) -> None:
    assert privilege_change(record, RULES) == expected


def test_the_same_input_gives_the_same_signal_ids() -> None:
    records = [v1(ago(1)), mgmt("API Keys", "Add API key", {"name": "ci"})]
    first = detect(records, Past(records=[v1(ago(120)), *records]), RULES)
    again = detect(records, Past(records=[v1(ago(120)), *records]), RULES)
    assert [s.id for s in first] == [s.id for s in again]
    assert len({s.id for s in first}) == 2


def test_a_signal_is_plain_json() -> None:
    (signal,) = detect([v1(ago(0))], Past(records=[v1(ago(100))]), RULES)
    body = json.loads(json.dumps(signal.to_json()))
    assert body["kind"] == "dormant-reactivated"
    assert body["subject"] == "ann@example.com"
