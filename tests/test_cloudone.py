"""Cloud One end to end: the client, the audit and the export against the simulator."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from login_audit.config import HttpSettings, Secret
from login_audit.http import ApiKeyAuth, HttpClient
from login_audit.models import AccountStatus
from login_audit.platforms.cloudone import CloudOne, parse_record
from login_audit.simulator import FaultConfig, build_cloudone_tenant, build_tenant

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def c1():
    return build_cloudone_tenant(seed=51, users=320)


@pytest.fixture(scope="module")
def v1_small():
    return build_tenant(seed=52, accounts=20)


def client_for(sim, **settings) -> CloudOne:
    http = HttpClient(
        ApiKeyAuth(Secret(sim.token)),
        HttpSettings(backoff_base=0.001, retry_after_cap=0.01, **settings),
    )
    return CloudOne(http, "us-1", sim.base_url)


def truth_rows(tenant) -> set[tuple[str, str, str]]:
    return {(r["UserId"], r["RoleName"], "Remove") for r in tenant.truth()["remove"]}


def read_rows(out: Path) -> set[tuple[str, str, str]]:
    with (out / "filtered_accounts_report.csv").open(newline="") as handle:
        return {(r["UserId"], r["RoleName"], r["RequestType"]) for r in csv.DictReader(handle)}


def test_client_lists_local_and_saml_users_with_role_names(c1, v1_small, start_sim) -> None:
    sim = start_sim(v1_small, cloudone=c1)
    platform = client_for(sim)
    accounts = {a.email: a for a in platform.list_accounts()}
    assert len(accounts) == len(c1.users)
    walter = accounts["walter.saml@example.org"]
    assert walter.auth_type == "saml" and walter.status is AccountStatus.ENABLED
    assert accounts["victor.orphanrole@example.org"].role == "deleted-custom-role"
    assert accounts["olivia.active@example.org"].role in {"Full Access", "Read Only", "Auditor"}
    assert accounts["ursula.disabled@example.org"].status is AccountStatus.DISABLED
    activity = {e.principal for e in platform.account_activity()}
    assert accounts["peggy.lastactivity@example.org"].urn.lower() in activity
    local = sum(1 for u in c1.users if not u.saml)
    saml = len(c1.users) - local
    assert sim.stats.by_path["/api/users"] == -(-local // 100) > 1  # every page, limit 100
    assert sim.stats.by_path["/api/saml-users"] == -(-saml // 100)


@pytest.mark.parametrize("faults", [0.0, 0.2])
def test_audit_matches_ground_truth(cli, c1, v1_small, start_sim, tmp_path: Path, faults) -> None:
    sim = start_sim(v1_small, cloudone=c1, faults=FaultConfig(rate=faults, seed=8))
    result = cli(
        [
            "audit",
            "--platform",
            "cloudone",
            "--base-url",
            sim.base_url,
            "--output-dir",
            str(tmp_path),
            "--archive",
            str(tmp_path / "a.sqlite3"),
            "--backoff-base",
            "0.01",
            "--max-attempts",
            "10",
        ],
        env=dict(C1_API_KEY=sim.token),
    )
    assert result.code == 0, result.stderr
    assert read_rows(tmp_path) == truth_rows(c1)
    if faults:
        assert sum(sim.stats.faults.values()) > 0
    report = json.loads((tmp_path / "audit_report.json").read_text())
    assert report["run"]["platform"] == "cloudone"
    findings = {a["email"]: a["finding"] for a in report["accounts"]}
    assert findings["peggy.lastactivity@example.org"] == "active"
    assert findings["rupert.signout@example.org"] == "no-login"
    assert findings["ursula.disabled@example.org"] == "excluded"


def test_stateless_audit_also_matches(cli, c1, v1_small, start_sim, tmp_path: Path) -> None:
    sim = start_sim(v1_small, cloudone=c1)
    result = cli(
        [
            "audit",
            "--platform",
            "cloudone",
            "--base-url",
            sim.base_url,
            "--output-dir",
            str(tmp_path),
            "--no-archive",
        ],
        env=dict(C1_API_KEY=sim.token),
    )
    assert result.code == 0, result.stderr
    assert read_rows(tmp_path) == truth_rows(c1)


def served_ids(c1) -> list[str]:
    from datetime import datetime, timedelta, timezone

    oldest = datetime.now(timezone.utc) - timedelta(days=365)
    return [e["id"] for when, e in zip(c1.times, c1.logs, strict=True) if when >= oldest]


@pytest.mark.parametrize("faults", [0.0, 0.2])
def test_export_equals_the_audit_log(cli, c1, v1_small, start_sim, tmp_path: Path, faults) -> None:
    sim = start_sim(v1_small, cloudone=c1, faults=FaultConfig(rate=faults, seed=4))
    out = tmp_path / "AuditLogs.json"
    args = [
        "export",
        "--platform",
        "cloudone",
        "--base-url",
        sim.base_url,
        "--output",
        str(out),
        "--archive",
        str(tmp_path / "a.sqlite3"),
        "--backoff-base",
        "0.01",
        "--max-attempts",
        "10",
    ]
    result = cli(args, env=dict(C1_API_KEY=sim.token))
    assert result.code == 0, result.stderr
    exported = json.loads(out.read_text())
    expected = served_ids(c1)
    assert len(exported) == len(expected)
    assert sorted(e["id"] for e in exported) == sorted(expected)
    by_id = {e["id"]: e for e in c1.logs}
    assert all(e == by_id[e["id"]] for e in exported)  # as the API returned it
    # A second export reads only the newest page of the log, plus the user lists.
    before = sim.stats.by_path["/api/logs"]
    result = cli([*args, "--force"], env=dict(C1_API_KEY=sim.token))
    assert result.code == 0, result.stderr
    if not faults:
        assert sim.stats.by_path["/api/logs"] - before == 1


def test_limit_falls_back_when_refused(c1, v1_small, start_sim) -> None:
    sim = start_sim(v1_small, cloudone=c1, c1_max_limit=25)
    platform = client_for(sim)
    assert len(list(platform.list_accounts())) == len(c1.users)


def test_parse_record_tolerates_other_casing() -> None:
    record = parse_record(
        {
            "Time": "2026-11-01T10:00:00.5Z",
            "Type": "audit.user-signed-in.v1",
            "PrincipalURN": "URN:X",
        }
    )
    assert record is not None and record.login_event() is not None
    assert record.principal == "urn:x"
    assert parse_record({"type": "audit.user-signed-in.v1"}).login_event() is None


def test_wrong_key_exit_2_and_unknown_region(cli, c1, v1_small, start_sim, tmp_path: Path) -> None:
    sim = start_sim(v1_small, cloudone=c1)
    result = cli(
        [
            "audit",
            "--platform",
            "cloudone",
            "--base-url",
            sim.base_url,
            "--output-dir",
            str(tmp_path),
            "--no-archive",
        ],
        env=dict(C1_API_KEY="not-the-key"),
    )
    assert result.code == 2 and "401" in result.stderr and "not-the-key" not in result.stderr
    result = cli(
        ["audit", "--platform", "cloudone", "--region", "mars", "--output-dir", str(tmp_path)],
        env=dict(C1_API_KEY="k"),
    )
    assert result.code == 2 and "unknown Cloud One region 'mars'" in result.stderr


def test_a_sign_in_whose_time_cannot_be_read_makes_its_user_unknown(
    c1, v1_small, start_sim
) -> None:
    """Cloud One's time key is a guess: if it is not there, the user is not judged."""
    from dataclasses import replace

    from login_audit.audit import run_audit
    from login_audit.models import FindingKind, Policy

    dormant = next(u for u in c1.users if u.klass == "inactive" and not u.saml)
    logs = [
        {**entry, "time": "sometime last spring"}
        if entry.get("principalURN") == dormant.urn
        else entry
        for entry in c1.logs
    ]
    sim = start_sim(v1_small, cloudone=replace(c1, logs=logs))
    summary = run_audit(client_for(sim), Policy())
    verdict = next(f for f in summary.findings if f.account.urn == dormant.urn)
    assert verdict.kind is FindingKind.UNKNOWN, verdict.reason
    assert dormant.email not in {f.account.email for f in summary.to_remove}
    assert not summary.complete  # and the run says so (exit 4)


def test_cursor_pager_refuses_a_cursor_handed_back(c1, v1_small, start_sim) -> None:
    """A page that answers with the cursor it was asked for would loop: the pager stops,
    whether the cursor came from an earlier page or is the one a resumed read starts at."""
    from login_audit.errors import ProtocolError
    from login_audit.platforms.pagination import CursorPager

    sim = start_sim(v1_small, cloudone=c1)
    platform = client_for(sim)
    pager = CursorPager(platform.http, f"{sim.base_url}/api/logs", "logs")
    first_items, cursor = next(pager.pages())
    assert first_items and cursor
    sim.faults = FaultConfig(rate=1.0, kinds=("repeat-link",), paths=("/api/logs",))
    before = sim.stats.by_path["/api/logs"]
    with pytest.raises(ProtocolError, match="repeats an earlier cursor"):
        list(CursorPager(platform.http, f"{sim.base_url}/api/logs", "logs").pages(cursor))
    assert sim.stats.by_path["/api/logs"] - before == 1
