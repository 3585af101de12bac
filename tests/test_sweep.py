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
        (180 * 24 * 60 / 10, "next", 1),  # ~10 pages: slicing would cost more than 2%
        (180 * 24 * 60 / 120, "next", 3),  # ~120 pages: 1 + 120 // 50
        (180 * 24 * 60 / 5000, "next", 8),  # ~5000 pages: capped
        (60, None, 1),  # the only page
    ],
)
def test_planner_choice(first_page_spans_minutes: float, link, expected: int) -> None:
    window = TimeWindow(NOW - timedelta(days=180), NOW)
    first = page([0, first_page_spans_minutes], link)
    assert slices_for(window, first, max_slices=8) == expected


@pytest.fixture(scope="module")
def tenant():
    return build_tenant(seed=71, accounts=1500)


@pytest.mark.parametrize("faults", [0.0, 0.25])
def test_parallel_slices_read_every_record_once(tenant, start_sim, faults: float) -> None:
    sim = start_sim(tenant, faults=FaultConfig(rate=faults, seed=12))
    http = HttpClient(
        BearerAuth(Secret(sim.token)),
        HttpSettings(backoff_base=0.001, retry_after_cap=0.01, max_attempts=15),
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
    assert len(final) > 4  # the probe's slice plus several parallel slices
    boundaries = {s.start.replace(microsecond=0) for s in final[1:]}
    for key, seen in keys.items():
        if seen > 1:  # only the probe page's last second may be read again
            assert served[key].replace(microsecond=0) in boundaries
    # No page was read twice: each slice read exactly the pages its records need.
    for state in final[1:]:
        inside = sum(1 for when in served.values() if state.start <= when < state.end)
        assert state.pages == max(1, math.ceil(inside / 200))
    if faults:
        assert sum(sim.stats.faults.values()) > 0
