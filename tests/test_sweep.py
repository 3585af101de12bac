"""The sweep planner and parallel slices: every record once, no page read twice."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from login_audit.config import HttpSettings, Secret
from login_audit.http import BearerAuth, HttpClient
from login_audit.models import AuditRecord, RecordKind, RecordPage, TimeWindow
from login_audit.platforms.visionone import VisionOne, parse_record
from login_audit.simulator import FaultConfig, build_tenant
from login_audit.sweep import Sweep, plan_slices, slices_for

NOW = datetime(2026, 11, 22, 12, 0, 0, 654321, tzinfo=timezone.utc)


def test_slices_are_adjacent_whole_seconds_covering_the_window() -> None:
    window = TimeWindow(NOW - timedelta(days=180, microseconds=17), NOW)
    for count in (1, 2, 3, 7, 8):
        slices = plan_slices(window, count)
        assert len(slices) == count
        assert slices[0].start == window.start and slices[-1].end == window.end
        for left, right in itertools.pairwise(slices):
            assert left.end == right.start and right.start.microsecond == 0


def page(minutes: list[float], link: str | None) -> RecordPage:
    records = tuple(
        AuditRecord(
            str(m),
            NOW - timedelta(days=180) + timedelta(minutes=m),
            "c",
            "a",
            "r",
            RecordKind.OTHER,
            "p",
            None,
            "{}",
        )
        for m in minutes
    )
    return RecordPage(records, link)


@pytest.mark.parametrize(
    ("first_page_spans_minutes", "link", "expected"),
    [
        (180 * 24 * 60 * 2, "next", 1),  # the first page reaches past the window: 1 page
        (180 * 24 * 60 / 4, "next", 1),  # ~4 pages: one chain, no half-empty pages
        (180 * 24 * 60 / 7, "next", 2),  # ~7 pages (400 accounts): 2 chains of 4
        (180 * 24 * 60 / 14, "next", 4),  # ~14 pages: 14 // 3 chains
        (180 * 24 * 60 / 120, "next", 8),  # ~120 pages: capped
        (180 * 24 * 60 / 5000, "next", 8),  # ~5000 pages: capped
        (60, None, 1),  # the only page
    ],
)
def test_planner_choice(first_page_spans_minutes: float, link, expected: int) -> None:
    window = TimeWindow(NOW - timedelta(days=180), NOW)
    first = page([first_page_spans_minutes * i / 199 for i in range(200)], link)
    assert slices_for(window, first, max_slices=8) == expected


def test_planner_estimates_from_the_pages_own_span_not_the_window_start() -> None:
    """A tenant with no logons in the oldest 100 days still holds ~20 pages after them
    (measured from the window's start, the same page would suggest 45, capped to 8)."""
    window = TimeWindow(NOW - timedelta(days=180), NOW)
    span = 80 * 24 * 60 / 20
    first = page([100 * 24 * 60 + span * i / 199 for i in range(200)], "next")
    assert slices_for(window, first, max_slices=8) == 6


def test_one_record_out_of_order_does_not_change_the_estimate_much() -> None:
    window = TimeWindow(NOW - timedelta(days=180), NOW)
    span = 180 * 24 * 60 / 20
    minutes = [span * i / 199 for i in range(199)] + [170 * 24 * 60]  # indexed late
    assert slices_for(window, page(minutes, "next"), max_slices=8) == 6


@pytest.fixture(scope="module")
def tenant():
    return build_tenant(seed=71, accounts=1500)


@pytest.mark.parametrize("faults", [0.0, 0.25])
def test_parallel_slices_read_every_record_once(tenant, start_sim, faults: float) -> None:
    sim = start_sim(tenant, faults=FaultConfig(rate=faults, seed=12))
    http = HttpClient(
        BearerAuth(Secret(sim.token)),
        # A one-second window: 429s without Retry-After slow the pacer down (as they
        # should), and a short window keeps that from costing real minutes here.
        HttpSettings(backoff_base=0.001, retry_after_cap=0.01, max_attempts=15, rate_window=1.0),
    )
    platform = VisionOne(http, sim.base_url, "test")
    now = datetime.now(timezone.utc)
    window = TimeWindow(now - timedelta(days=180), now)
    sweep = Sweep(platform, window, logons_only=False, max_slices=8, pages_per_slice=2)
    keys: Counter[str] = Counter()
    final: list = []

    def commit(p: RecordPage, states) -> None:
        keys.update(r.key for r in p.records)
        final[:] = states

    assert sweep.run(commit) == []
    served = {
        parse_record(item).key: when
        for when, item in zip(tenant.times, tenant.records, strict=True)
        if window.start <= when < window.end
    }
    assert set(keys) == set(served)  # no gap
    assert len(final) > 4  # several parallel slices
    boundaries = {s.start.replace(microsecond=0) for s in final[1:]}
    for key, seen in keys.items():
        if seen > 1:  # only the slices' boundary seconds are read twice, never a probe page
            assert served[key].replace(microsecond=0) in boundaries
    if not faults:
        # The first page read was the tail's, which read on: no request besides the slices'.
        assert platform.requests_made() == sum(state.pages for state in final)
        assert final[-1].start > window.start + timedelta(days=150)
    # No page was read twice within a slice: each slice read the pages its records need.
    for state in final:
        inside = sum(1 for when in served.values() if state.start <= when < state.end)
        assert state.pages == max(1, math.ceil(inside / 200))
    assert final[0].start == window.start and final[-1].end == window.end
    if faults:
        assert sum(sim.stats.faults.values()) > 0


@pytest.mark.parametrize("behaviours", [("unsorted-pages",), ("unsorted-pages", "null-items")])
def test_records_out_of_order_never_open_a_gap(tenant, start_sim, behaviours) -> None:
    """A late-indexed record on the first page must not move a slice boundary."""
    sim = start_sim(tenant, behaviours=behaviours)
    http = HttpClient(BearerAuth(Secret(sim.token)), HttpSettings(backoff_base=0.001))
    platform = VisionOne(http, sim.base_url, "test")
    now = datetime.now(timezone.utc)
    window = TimeWindow(now - timedelta(days=180), now)
    pages: list[RecordPage] = []
    sweep = Sweep(platform, window, logons_only=False, max_slices=8, pages_per_slice=2)
    assert sweep.run(lambda p, states: pages.append(p)) == []
    first = next(p for p in pages if p.records)
    times = [r.when for r in first.records]
    assert times != sorted(times)  # the vendor really served the first page out of order
    read = {r.key for p in pages for r in p.records}
    served = {
        parse_record(item).key
        for when, item in zip(tenant.times, tenant.records, strict=True)
        if window.start <= when < window.end
    }
    assert read == served


def test_a_tail_without_records_leaves_the_rest_to_a_probe_of_its_own(tenant, start_sim) -> None:
    """No logon in the last month: the tail's page tells nothing about the rest, which is
    then probed and split as a window of its own; every record is read."""
    from dataclasses import replace

    now = datetime.now(timezone.utc)
    old = [(w, i) for w, i in zip(tenant.times, tenant.records, strict=True)]
    old = [(w, i) for w, i in old if w < now - timedelta(days=30)]
    quiet = replace(tenant, times=[w for w, _ in old], records=[i for _, i in old])
    sim = start_sim(quiet)
    http = HttpClient(BearerAuth(Secret(sim.token)), HttpSettings(backoff_base=0.001))
    platform = VisionOne(http, sim.base_url, "test")
    window = TimeWindow(now - timedelta(days=180), now)
    keys: Counter[str] = Counter()
    final: list = []

    def commit(p: RecordPage, states) -> None:
        keys.update(r.key for r in p.records)
        final[:] = states

    sweep = Sweep(platform, window, logons_only=False, max_slices=8, pages_per_slice=2)
    assert sweep.run(commit) == []
    assert set(keys) == {parse_record(i).key for w, i in old if w >= window.start}
    assert len(final) > 2 and final[-1].pages == 1 and final[-1].done  # the empty tail
    assert final[0].start == window.start and final[-1].end == window.end
