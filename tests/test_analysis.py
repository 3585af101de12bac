"""The audit rules, one case per rule, with plain values and a fixed 'now'."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from login_audit.analysis import ActivityIndex, analyse, decide, exclusion_reason
from login_audit.models import Account, AccountStatus, Doubt, FindingKind, LoginEvent, Policy

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
START = NOW - timedelta(days=180)


def account(email: str = "a@example.com", **kw: object) -> Account:
    fields: dict[str, object] = {
        "id": "id-" + email,
        "email": email,
        "role": "Operator",
        "auth_type": "local",
        "status": AccountStatus.ENABLED,
    }
    fields.update(kw)
    return Account(**fields)  # type: ignore[arg-type]


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def verdict(acc: Account, events: list[LoginEvent], policy: Policy | None = None, **kw: bool):
    index = ActivityIndex([acc])
    index.add_all(events)
    return decide(
        acc,
        index.get(acc.id),
        policy or Policy(),
        NOW,
        START,
        logins_complete=kw.get("complete", True),
    )


def logon(days: float, who: str = "a@example.com", ok: bool = True) -> LoginEvent:
    return LoginEvent(when=ago(days), successful=ok, principal=who)


@pytest.mark.parametrize(
    ("events", "kind"),
    [
        ([logon(3)], FindingKind.ACTIVE),
        ([logon(89.99)], FindingKind.ACTIVE),
        ([logon(90.01)], FindingKind.INACTIVE),
        ([logon(150), logon(2, ok=False)], FindingKind.INACTIVE),
        ([], FindingKind.NO_LOGIN),
        ([logon(1, ok=False), logon(5, ok=False)], FindingKind.NO_LOGIN),
        ([logon(120), logon(10)], FindingKind.ACTIVE),
    ],
)
def test_threshold_and_failed_logons(events: list[LoginEvent], kind: FindingKind) -> None:
    assert verdict(account(), events).kind is kind


def test_failed_logons_are_shown_but_never_count() -> None:
    finding = verdict(account(), [logon(150), logon(2, ok=False)])
    assert finding.last_login == ago(150)
    assert finding.last_failed_login == ago(2)
    assert finding.days_since_login == 150
    assert "last failed logon" in finding.reason


def test_case_insensitive_email_and_id_join() -> None:
    acc = account("Alice.Mixed@Example.com")
    assert verdict(acc, [logon(1, who="alice.mixed@example.com")]).kind is FindingKind.ACTIVE
    by_id = LoginEvent(when=ago(1), successful=True, principal="Alice Display", account_id=acc.id)
    assert verdict(acc, [by_id]).kind is FindingKind.ACTIVE


def test_unmatched_events_are_counted_not_used() -> None:
    index = ActivityIndex([account()])
    index.add_all([logon(1, who="root account"), logon(1)])
    assert index.unmatched == 1 and index.events == 2


@pytest.mark.parametrize(
    ("acc", "policy", "reason"),
    [
        (account(status=AccountStatus.DISABLED), Policy(), "disabled"),
        (account(status=AccountStatus.INVITED), Policy(), "invited"),
        (account(auth_type="samlGroup"), Policy(), "SAML group"),
        (account("svc-backup@example.com"), Policy(exclude_patterns=("SVC-*",)), "svc-*"),
        (account(), Policy(exclude_patterns=("id-a@*",)), "id-a@*"),
        (
            account(role="Master Administrator"),
            Policy(exclude_roles=("master administrator",)),
            "Master Administrator",
        ),
    ],
)
def test_exclusions(acc: Account, policy: Policy, reason: str) -> None:
    finding = verdict(acc, [], policy)
    assert finding.kind is FindingKind.EXCLUDED
    assert reason.lower() in finding.reason.lower()


def test_include_disabled_audits_disabled_accounts() -> None:
    acc = account(status=AccountStatus.DISABLED)
    assert exclusion_reason(acc, Policy(include_disabled=True)) is None
    assert verdict(acc, [], Policy(include_disabled=True)).kind is FindingKind.NO_LOGIN


def test_incomplete_logons_never_flag_but_still_prove_activity() -> None:
    assert verdict(account(), [logon(150)], complete=False).kind is FindingKind.UNKNOWN
    assert verdict(account(), [], complete=False).kind is FindingKind.UNKNOWN
    assert verdict(account(), [logon(3)], complete=False).kind is FindingKind.ACTIVE


def test_undated_successful_logon_is_never_a_reason_to_remove() -> None:
    undated = LoginEvent(when=None, successful=True, principal="a@example.com")
    assert verdict(account(), [undated]).kind is FindingKind.UNKNOWN
    assert verdict(account(), [undated, logon(2)]).kind is FindingKind.ACTIVE


@pytest.mark.parametrize(
    ("events", "complete", "doubt", "expected"),
    [
        ([logon(-3)], True, None, Doubt.FUTURE_LOGON),
        ([logon(150)], False, None, Doubt.RECORDS_INCOMPLETE),
        (
            [LoginEvent(when=None, successful=True, principal="a@example.com")],
            True,
            None,
            Doubt.UNDATED_LOGON,
        ),
        ([logon(150)], True, "an identity matches no account", Doubt.NOT_PROVEN_STALE),
        ([], True, "an identity matches no account", Doubt.NOT_PROVEN_STALE),
        ([logon(3)], True, "an identity matches no account", None),
        ([logon(150)], True, None, None),
        ([], True, None, None),
    ],
)
def test_an_unknown_finding_names_its_doubt_and_no_other_finding_has_one(
    events: list[LoginEvent], complete: bool, doubt: str | None, expected: Doubt | None
) -> None:
    acc = account()
    index = ActivityIndex([acc])
    index.add_all(events)
    found = decide(
        acc, index.get(acc.id), Policy(), NOW, START, logins_complete=complete, doubt=doubt
    )
    assert found.doubt is expected
    assert (found.kind is FindingKind.UNKNOWN) == (expected is not None)


def test_custom_days() -> None:
    assert verdict(account(), [logon(40)], Policy(days=30)).kind is FindingKind.INACTIVE
    assert verdict(account(), [logon(40)], Policy(days=45)).kind is FindingKind.ACTIVE


def test_findings_order_puts_removals_first() -> None:
    accounts = [account("z@example.com"), account("b@example.com"), account("c@example.com")]
    index = ActivityIndex(accounts)
    index.add_all([logon(1, who="z@example.com"), logon(100, who="c@example.com")])
    findings = analyse(accounts, index, Policy(), NOW, START, logins_complete=True)
    assert [f.account.email for f in findings] == [
        "c@example.com",
        "b@example.com",
        "z@example.com",
    ]


def test_the_logon_fold_keeps_the_newest_logon_per_identity_and_outcome() -> None:
    from login_audit.analysis import LogonFold
    from login_audit.models import AuditRecord, LoginEvent, RecordKind, TimeWindow

    start = datetime(2026, 1, 1, tzinfo=timezone.utc)

    def record(day: int | None, kind: RecordKind, who: str = "ann@x.example") -> AuditRecord:
        when = None if day is None else start + timedelta(days=day)
        return AuditRecord(f"k{day}{kind}{who}", when, "c", "a", "r", kind, who, None, "{}")

    fold = LogonFold(TimeWindow(start, start + timedelta(days=90)))
    fold.add([record(5, RecordKind.LOGON_OK), record(-1, RecordKind.LOGON_OK)])  # -1: too old
    fold.add([record(9, RecordKind.LOGON_OK), record(7, RecordKind.LOGON_FAILED)])
    fold.add([record(3, RecordKind.LOGON_OK), record(None, RecordKind.LOGON_OK, "bob")])
    fold.add([record(200, RecordKind.LOGON_OK, "cy"), record(8, RecordKind.OTHER)])  # future kept
    assert fold.events == 6
    assert set(fold.events_for_index()) == {
        LoginEvent(start + timedelta(days=9), True, "ann@x.example", None),
        LoginEvent(start + timedelta(days=7), False, "ann@x.example", None),
        LoginEvent(None, True, "bob", None),
        LoginEvent(start + timedelta(days=200), True, "cy", None),
    }
