"""audit --api-keys: stale, expired and never-used keys on both platforms."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from login_audit.simulator import build_cloudone_tenant, build_tenant

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("platform", ["visionone", "cloudone"])
def test_stale_keys_match_the_truth(cli, start_sim, tmp_path: Path, platform: str) -> None:
    v1 = build_tenant(seed=131, accounts=400)
    c1 = build_cloudone_tenant(seed=132, users=200)
    sim = start_sim(v1, cloudone=c1)
    truth = (v1 if platform == "visionone" else c1).truth()["apiKeys"]
    result = cli(
        [
            "audit",
            "--platform",
            platform,
            "--base-url",
            sim.base_url,
            "--output-dir",
            str(tmp_path),
            "--no-archive",
            "--api-keys",
        ],
        env=dict(TMV1_TOKEN=sim.token, C1_API_KEY=sim.token),
    )
    assert result.code == 0, result.stderr
    with (tmp_path / "stale_api_keys.csv").open(newline="") as handle:
        rows = {r["KeyId"]: r["Finding"] for r in csv.DictReader(handle)}
    assert rows == {k: v for k, v in truth.items() if v != "active"}
    assert set(rows.values()) >= {"stale", "never-used"}
    report = json.loads((tmp_path / "audit_report.json").read_text())
    assert {k["id"]: k["finding"] for k in report["apiKeys"]} == truth
    assert 'id="api-keys"' in (tmp_path / "audit_report.html").read_text()


def test_without_the_flag_no_key_report(cli, start_sim, tmp_path: Path) -> None:
    sim = start_sim(build_tenant(seed=133, accounts=40))
    result = cli(
        ["audit", "--base-url", sim.base_url, "--output-dir", str(tmp_path), "--no-archive"],
        env=dict(TMV1_TOKEN=sim.token),
    )
    assert result.code == 0
    assert not (tmp_path / "stale_api_keys.csv").exists()
    assert sim.stats.by_path["/v3.0/iam/apiKeys"] == 0
