"""doctor against the simulator; OCSF export; the --json summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from login_audit.export import OCSF_CLASS
from login_audit.simulator import build_cloudone_tenant, build_tenant

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim(start_sim):
    return start_sim(
        build_tenant(seed=121, accounts=60),
        cloudone=build_cloudone_tenant(seed=122, users=30),
        tokens={"no-audit-permission-token": frozenset({"accounts"})},
    )


def doctor(cli, sim, tmp_path: Path, token: str, *extra: str):
    return cli(
        [
            "doctor",
            "--base-url",
            sim.base_url,
            "--archive",
            str(tmp_path / "a.sqlite3"),
            "--backoff-base",
            "0.01",
            *extra,
        ],
        env=dict(TMV1_TOKEN=token, C1_API_KEY=token),
    )


def test_doctor_all_good(cli, sim, tmp_path: Path) -> None:
    result = doctor(cli, sim, tmp_path, sim.token)
    assert result.code == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5 and all(line.strip().startswith("ok") for line in lines)
    assert "clock within 60 s" in result.stdout
    cloud = doctor(cli, sim, tmp_path, sim.token, "--platform", "cloudone")
    assert cloud.code == 0, cloud.stdout + cloud.stderr


def test_doctor_wrong_token(cli, sim, tmp_path: Path) -> None:
    result = doctor(cli, sim, tmp_path, "a-wrong-token-0123456789")
    assert result.code == 2
    fail = [line for line in result.stdout.splitlines() if "FAIL" in line]
    assert fail and "token was refused" in fail[0]
    assert "a-wrong-token-0123456789" not in result.stdout + result.stderr


def test_doctor_missing_permission(cli, sim, tmp_path: Path) -> None:
    result = doctor(cli, sim, tmp_path, "no-audit-permission-token")
    assert result.code == 2
    line = next(line for line in result.stdout.splitlines() if "audit log readable" in line)
    assert "FAIL" in line and "Audit Logs: View, filter, and search" in line
    assert "grant it to the API key's role" in line
    accounts = next(line for line in result.stdout.splitlines() if "accounts readable" in line)
    assert accounts.strip().startswith("ok")


def test_doctor_corrupt_archive(cli, sim, tmp_path: Path) -> None:
    (tmp_path / "a.sqlite3").write_bytes(b"\x00nope" * 1000)
    result = doctor(cli, sim, tmp_path, sim.token)
    assert result.code == 2 and "FAIL  archive readable" in result.stdout


def test_ocsf_export_and_json_summary(cli, sim, tmp_path: Path) -> None:
    archive = str(tmp_path / "a.sqlite3")
    env = dict(TMV1_TOKEN=sim.token)
    audit = cli(
        [
            "audit",
            "--base-url",
            sim.base_url,
            "--archive",
            archive,
            "--output-dir",
            str(tmp_path / "out"),
            "--json",
            "--quiet",
        ],
        env=env,
    )
    assert audit.code == 0, audit.stderr
    summary = json.loads(audit.stdout)
    assert summary["complete"] is True and summary["exitCode"] == 0
    assert summary["toRemove"] == len(sim.tenant.truth()["remove"])
    assert any(p.endswith("audit_report.html") for p in summary["reports"])
    out = tmp_path / "logons.ocsf.jsonl"
    export = cli(
        [
            "export",
            "--base-url",
            sim.base_url,
            "--archive",
            archive,
            "--format",
            "ocsf",
            "--output",
            str(out),
        ],
        env=env,
    )
    assert export.code == 0, export.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert events and all(e["class_uid"] == OCSF_CLASS for e in events)
    assert {e["activity_id"] for e in events} <= {1, 2}
    assert {e["status"] for e in events} == {"Success", "Failure"}
    assert all(e["type_uid"] == OCSF_CLASS * 100 + e["activity_id"] for e in events)
