"""The Vision One client against the simulator over loopback HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_audit.config import HttpSettings, Secret
from login_audit.errors import ConfigError, ProtocolError
from login_audit.http import BearerAuth, HttpClient
from login_audit.models import LoginEvent, TimeWindow
from login_audit.platforms.visionone import (
    LOGON_FILTER,
    VisionOne,
    filter_and,
    filter_eq,
    parse_logon,
    quote_value,
)
from login_audit.simulator import FaultConfig, Simulator, build_tenant
from login_audit.simulator.filters import FilterSyntaxError, parse_filter


def client_for(sim: Simulator, **settings: float) -> VisionOne:
    http = HttpClient(
        BearerAuth(Secret(sim.token)),
        HttpSettings(backoff_base=0.001, retry_after_cap=0.01, **settings),
    )
    return VisionOne(http, sim.base_url, "test")


def logons(platform: VisionOne, window: TimeWindow) -> list[LoginEvent]:
    """Every logon attempt of ``window``, read the way an audit reads them."""
    return [
        event
        for page in platform.record_pages(window, logons_only=True)
        for event in (record.login_event() for record in page.records)
        if event is not None
    ]


def full_window() -> TimeWindow:
    now = datetime.now(timezone.utc)
    return TimeWindow(now - timedelta(days=365), now)


def expected_logons(tenant, window: TimeWindow) -> int:
    oldest = window.end - timedelta(days=180)
    return sum(
        1
        for when, item in zip(tenant.times, tenant.records, strict=True)
        if item["category"] == "Logon and Logoff"
        and item["activity"] == "Log on"
        and max(window.start, oldest) <= when < window.end
    )


@pytest.fixture(scope="module")
def big_tenant():
    return build_tenant(seed=21, accounts=450)


def test_reads_every_account_across_pages(big_tenant, start_sim) -> None:
    sim = start_sim(big_tenant)
    platform = client_for(sim)
    accounts = list(platform.list_accounts())
    assert len(accounts) == 450
    assert {a.id for a in accounts} == {a.id for a in big_tenant.accounts}
    assert sim.stats.by_path["/v3.0/iam/accounts"] == 3  # 200 + 200 + 50


def test_reads_every_logon_with_the_filter_resent_on_each_page(big_tenant, start_sim) -> None:
    sim = start_sim(big_tenant)
    platform = client_for(sim)
    window = full_window()
    events = logons(platform, window)
    expected = expected_logons(big_tenant, window)
    assert len(events) == expected
    # The simulator rejects a nextLink whose TMV1-Filter differs, so >1 page proves re-sending.
    assert sim.stats.by_path["/v3.0/audit/logs"] == -(-expected // 200) > 1
    assert any(not e.successful for e in events)


def test_same_result_under_faults(big_tenant, start_sim) -> None:
    clean = client_for(start_sim(big_tenant))
    faulty_sim = start_sim(big_tenant, faults=FaultConfig(rate=0.3, seed=9))
    faulty = client_for(faulty_sim, max_attempts=12)
    window = full_window()
    assert logons(faulty, window) == logons(clean, window)
    assert list(faulty.list_accounts()) == list(clean.list_accounts())
    assert sum(faulty_sim.stats.faults.values()) > 0


def test_query_is_explicit_and_clamped_to_retention() -> None:
    end = datetime(2026, 11, 22, 10, 0, 0, 123000, tzinfo=timezone.utc)
    http = HttpClient(BearerAuth(Secret("t")))
    platform = VisionOne(http, "https://h", "us", clock=lambda: end)
    query = platform.logon_query(platform.clamp(TimeWindow(end - timedelta(days=400), end)))
    assert query == {
        "startDateTime": "2026-05-26T10:01:00Z",  # a minute inside the retention
        "endDateTime": "2026-11-22T10:00:00Z",
        "dateTimeTarget": "loggedDateTime",
        "orderBy": "loggedDateTime desc",
        "top": 200,
        "labels": "all",
    }


@pytest.mark.parametrize("kind", ["repeat-link", "foreign-link"])
def test_bad_next_links_stop_the_listing(big_tenant, start_sim, kind: str) -> None:
    sim = start_sim(big_tenant, faults=FaultConfig(rate=1.0, kinds=(kind,)))
    platform = client_for(sim)
    with pytest.raises(ProtocolError) as info:
        logons(platform, full_window())
    assert "nextLink" in str(info.value) or "another origin" in str(info.value)
    assert sim.token not in str(info.value)


@pytest.mark.parametrize("kind", ["noitems", "nullitems"])
def test_pages_without_items_are_retried_not_taken_as_the_end(big_tenant, start_sim, kind) -> None:
    sim = start_sim(big_tenant, faults=FaultConfig(rate=0.3, seed=4, kinds=(kind,)))
    window = full_window()
    events = logons(client_for(sim, max_attempts=12), window)
    assert len(events) == expected_logons(big_tenant, window)
    assert sim.stats.faults[kind] > 0


def test_logon_filter_text() -> None:
    assert LOGON_FILTER == "(category eq 'Logon and Logoff') and (activity eq 'Log on')"


def test_quote_doubling_and_refusal() -> None:
    assert quote_value("o'brien@example.com") == "'o''brien@example.com'"
    with pytest.raises(ConfigError):
        quote_value("line\nbreak")
    with pytest.raises(ConfigError):
        filter_eq("bad field", "x")
    with pytest.raises(ConfigError, match="1024"):
        filter_and(*[filter_eq("loggedUser", "x" * 100)] * 10)


safe_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=0, max_size=60
)


@given(value=safe_text, other=safe_text)
def test_filter_values_cannot_change_the_expression(value: str, other: str) -> None:
    expression = filter_and(filter_eq("loggedUser", value), filter_eq("result", "Successful"))
    predicate = parse_filter(expression, ("loggedUser", "result"))
    assert predicate({"loggedUser": value, "result": "Successful"})
    if other.lower() != value.lower():
        assert not predicate({"loggedUser": other, "result": "Successful"})
    assert not predicate({"loggedUser": value, "result": "Unsuccessful"})


def test_injection_attempt_is_just_a_value() -> None:
    evil = "x') or (result eq 'Unsuccessful"
    predicate = parse_filter(filter_eq("loggedUser", evil), ("loggedUser", "result"))
    assert not predicate({"loggedUser": "someone", "result": "Unsuccessful"})
    assert predicate({"loggedUser": evil})


def test_simulator_filter_syntax() -> None:
    fields = ("a", "b")
    p = parse_filter("not (a eq '1') and ((b eq '2') or (b eq '3'))", fields)
    assert p({"a": "0", "b": "3"}) and not p({"a": "1", "b": "3"}) and not p({"a": "0", "b": "4"})
    for bad in ("a eq", "a ne '1'", "(a eq '1'", "c eq '1'", "a eq 1", "a eq '1' b"):
        with pytest.raises(FilterSyntaxError):
            parse_filter(bad, fields)


def test_parse_logon_tolerates_other_casing_and_missing_keys() -> None:
    event = parse_logon(
        {
            "LoggedDateTime": "2026-11-01 10:00:00",
            "Category": "logon and logoff",
            "Activity": "LOG ON",
            "Result": "successful",
            "loggedUser": "Root Account",
            "loggedUserMailAddress": "Ann@Example.com",
            "extra": {"x": 1},
        }
    )
    assert event is not None and event.successful and event.principal == "ann@example.com"
    assert parse_logon({"category": "Logon and Logoff", "activity": "Log off"}) is None
    assert parse_logon({"category": "Logon and Logoff", "activity": "Log on"}) is None
    assert parse_logon(["not", "a", "dict"]) is None
    undated = parse_logon(
        {
            "category": "Logon and Logoff",
            "activity": "Log on",
            "loggedUser": "a@b",
            "loggedDateTime": "garbage",
            "result": "Successful",
        }
    )
    assert undated is not None and undated.when is None


def test_a_window_read_later_is_clamped_to_the_retention_of_the_moment_it_is_sent() -> None:
    """A slice resumed a week later must not ask for records the vendor no longer keeps."""
    now = datetime(2026, 11, 22, 10, 0, 0, tzinfo=timezone.utc)
    http = HttpClient(BearerAuth(Secret("t")))
    platform = VisionOne(http, "https://h", "us", clock=lambda: now)
    old_end = now - timedelta(days=7)
    clamped = platform.clamp(TimeWindow(old_end - timedelta(days=180), old_end))
    assert clamped.start == now - timedelta(days=180) + timedelta(minutes=1)
    assert clamped.end == old_end
