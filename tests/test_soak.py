"""A bounded soak in every test run; bench/soak.py runs the long one."""

from __future__ import annotations

import os

import pytest
from bench.soak import soak

pytestmark = pytest.mark.soak


def test_random_fault_mixes_never_give_a_wrong_result() -> None:
    runs = int(os.environ.get("LOGIN_AUDIT_SOAK_RUNS", "16"))
    report = soak(runs, seed=int(os.environ.get("LOGIN_AUDIT_SOAK_SEED", "2026")))
    assert report.runs == runs
    assert sum(report.faults.values()) > runs  # faults were really injected
    assert report.wrong == []
    assert report.complete > 0
