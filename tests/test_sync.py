"""Incremental sync against the simulator, on both archive backends."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from login_audit.archive import open_archive
from login_audit.archive.base import TenantKey
from login_audit.audit import run_archived_audit
from login_audit.config import HttpSettings, Secret
from login_audit.errors import ConfigError
from login_audit.http import BearerAuth, HttpClient
from login_audit.models import FindingKind, Policy
from login_audit.platforms.visionone import VisionOne, parse_record
from login_audit.simulator import FaultConfig, build_tenant
from login_audit.sync import ALL, LOGONS, sync_stream

KEY = TenantKey("visionone", "sim", "default")


def platform_for(sim, **settings) -> VisionOne:
    http = HttpClient(
        BearerAuth(Secret(sim.token)),
        HttpSettings(backoff_base=0.001, retry_after_cap=0.01, **settings),
    )
    return VisionOne(http, sim.base_url, "sim")


def served_keys(sim) -> set[str]:
    """Keys of every record the simulator serves (the ground truth of a full sync)."""
    oldest = datetime.now(timezone.utc) - timedelta(days=180)
    return {
        parse_record(item).key
        for when, item in zip(sim.tenant.times, sim.tenant.records, strict=True)
        if when >= oldest
    }


def archived_keys(archive, tenant) -> set[str]:
    return {r.key for r in archive.iter_records(tenant)}


def new_logon(email: str, when: datetime) -> tuple[datetime, dict]:
    return when, {
        "loggedDateTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "loggedUser": email,
        "category": "Logon and Logoff",
        "activity": "Log on",
        "result": "Successful",
        "details": {"new": True},
    }


def test_incremental_sync_reads_only_new_pages(archive_url, start_sim, tenant) -> None:
    sim = start_sim(build_tenant(seed=31, accounts=400))
    archive = open_archive(archive_url)
    platform = platform_for(sim)
    tenant_id = archive.tenant_id(KEY)
    first = sync_stream(archive, platform, tenant_id, ALL)
    assert first.complete and first.inserted == len(served_keys(sim))
    # No page is read twice: each slice costs at most its partly filled last page.
    pages = -(-first.fetched // 200)
    assert pages > 3 and pages <= first.requests <= pages + first.slices - 1
    assert archived_keys(archive, tenant_id) == served_keys(sim)

    now = datetime.now(timezone.utc)
    sim.add_records(
        [new_logon("user000100@example.com", now + timedelta(seconds=i)) for i in range(3)]
    )
    second = sync_stream(
        archive, platform, tenant_id, ALL, clock=lambda: now + timedelta(minutes=1)
    )
    assert second.complete and second.inserted == 3
    assert second.requests == 1  # only the overlap window, one page
    assert archived_keys(archive, tenant_id) == served_keys(sim)
    archive.close()


def test_sync_under_faults_equals_the_simulator(archive_url, start_sim) -> None:
    sim = start_sim(build_tenant(seed=32, accounts=300), faults=FaultConfig(rate=0.25, seed=3))
    archive = open_archive(archive_url)
    tenant_id = archive.tenant_id(KEY)
    result = sync_stream(archive, platform_for(sim, max_attempts=12), tenant_id, ALL)
    assert result.complete
    assert sum(sim.stats.faults.values()) > 0
    assert archived_keys(archive, tenant_id) == served_keys(sim)
    archive.close()


def settle_read_ahead() -> None:
    """Let a stopped reader's next page, already on its way (pages are read one ahead),
    arrive: its request belongs to the stopped run, not to the one counted next."""
    for thread in threading.enumerate():
        if thread.name == "read-ahead":
            thread.join(timeout=30)


def test_interrupted_sync_resumes_from_its_checkpoint(archive_url, start_sim) -> None:
    sim = start_sim(build_tenant(seed=33, accounts=300))
    archive = open_archive(archive_url)
    tenant_id = archive.tenant_id(KEY)
    # Every audit-log request fails after the third: the sync stops part-way.
    platform = platform_for(sim, max_attempts=1)
    logs = "/v3.0/audit/logs"
    seen = itertools.count(1)

    def outage_after_the_third(path: str) -> None:
        if path == logs and next(seen) == 4:
            sim.faults = FaultConfig(outages=(logs,))

    sim.on_request = outage_after_the_third
    partial = sync_stream(archive, platform, tenant_id, ALL)
    assert not partial.complete and partial.pages == 3
    state = archive.state(tenant_id, ALL)
    assert state.checkpoint is not None and state.checkpoint.pages == 3
    assert state.watermark is None
    settle_read_ahead()
    sim.on_request, sim.faults = None, FaultConfig()
    before = sim.stats.by_path["/v3.0/audit/logs"]
    resumed = sync_stream(archive, platform, tenant_id, ALL)
    assert resumed.complete and resumed.resumed
    # It continued from page 4: no page was read twice.
    assert sim.stats.by_path["/v3.0/audit/logs"] - before == resumed.pages
    assert archived_keys(archive, tenant_id) == served_keys(sim)
    assert archive.state(tenant_id, ALL).checkpoint is None
    archive.close()


def test_pages_are_stored_in_batches_with_the_checkpoint_of_the_last(
    archive_url, start_sim, monkeypatch
) -> None:
    sim = start_sim(build_tenant(seed=35, accounts=600))
    archive = open_archive(archive_url)
    tenant_id = archive.tenant_id(KEY)
    stored: list[tuple[int, int]] = []  # (records, pages the checkpoint says were read)
    original = archive.commit_page

    def counting(tenant, stream, records, checkpoint):
        stored.append((len(list(records)), checkpoint.pages))
        return original(tenant, stream, records, checkpoint)

    monkeypatch.setattr(archive, "commit_page", counting)

    def interrupt(stage: str, count: int) -> None:
        if count >= 7 * 200:  # Ctrl-C after the seventh page
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sync_stream(
            archive, platform_for(sim), tenant_id, ALL, slices=1, commit_pages=3, progress=interrupt
        )
    settle_read_ahead()
    # Pages 1-3 and 4-6 in two transactions; page 7, read before the interruption, kept.
    assert [pages for _, pages in stored] == [3, 6, 7]
    state = archive.state(tenant_id, ALL)
    assert state.checkpoint is not None and state.checkpoint.pages == 7
    assert len(archived_keys(archive, tenant_id)) == sum(n for n, _ in stored)
    before = sim.stats.by_path["/v3.0/audit/logs"]
    resumed = sync_stream(archive, platform_for(sim), tenant_id, ALL, commit_pages=3)
    assert resumed.complete and resumed.resumed
    assert sim.stats.by_path["/v3.0/audit/logs"] - before == resumed.pages  # none twice
    assert archived_keys(archive, tenant_id) == served_keys(sim)
    archive.close()


def test_audit_from_archive_matches_truth_and_second_run_is_cheap(archive_url, start_sim) -> None:
    tenant = build_tenant(seed=34, accounts=400)
    sim = start_sim(tenant)
    archive = open_archive(archive_url)
    platform = platform_for(sim)
    first = run_archived_audit(platform, archive, KEY, Policy(grace_days=90))
    truth = {r["UserId"] for r in tenant.truth()["remove"]}
    assert first.complete
    assert {f.account.user_id for f in first.to_remove} == truth
    first_requests = first.requests
    platform2 = platform_for(sim)
    second = run_archived_audit(platform2, archive, KEY, Policy(grace_days=90))
    assert {f.account.user_id for f in second.to_remove} == truth
    # Accounts (2 pages) plus one page of new logons.
    assert second.requests == 3 < first_requests
    archive.close()


def test_grace_days_protect_accounts_the_archive_saw_appear(archive_url, start_sim) -> None:
    tenant = build_tenant(seed=35, accounts=60)
    sim = start_sim(tenant)
    archive = open_archive(archive_url)
    run_archived_audit(platform_for(sim), archive, KEY, Policy(grace_days=30))
    sim.add_account(
        {
            "id": "new-1",
            "email": "newbie@example.com",
            "role": "Operator",
            "authType": "local",
            "status": "enabled",
            "description": "",
        }
    )
    summary = run_archived_audit(platform_for(sim), archive, KEY, Policy(grace_days=30))
    newbie = next(f for f in summary.findings if f.account.id == "new-1")
    assert newbie.kind is FindingKind.EXCLUDED and "grace period" in newbie.reason
    # Accounts present at the first snapshot get no grace: their age is unknown.
    judy = next(f for f in summary.findings if f.account.email.startswith("judy."))
    assert judy.kind is FindingKind.NO_LOGIN
    without = run_archived_audit(platform_for(sim), archive, KEY, Policy(grace_days=0))
    assert next(f for f in without.findings if f.account.id == "new-1").kind is (
        FindingKind.NO_LOGIN
    )
    archive.close()


def test_days_beyond_the_history_refuse_or_say_none_since(archive_url, start_sim) -> None:
    sim = start_sim(build_tenant(seed=36, accounts=60))
    archive = open_archive(archive_url)
    with pytest.raises(ConfigError, match="--days 365 needs logons since"):
        run_archived_audit(platform_for(sim), archive, KEY, Policy(days=365))
    summary = run_archived_audit(
        platform_for(sim), archive, KEY, Policy(days=365), allow_short_history=True
    )
    judy = next(f for f in summary.findings if f.account.email.startswith("judy."))
    assert judy.kind is FindingKind.NO_LOGIN and "no successful logon since" in judy.reason
    archive.close()


def test_archive_history_lets_days_exceed_retention(archive_url, start_sim) -> None:
    tenant = build_tenant(seed=37, accounts=60)
    sim = start_sim(tenant)
    archive = open_archive(archive_url)
    tenant_id = archive.tenant_id(KEY)
    # Pretend an earlier sync, 300 days ago, stored a logon of Ken (whose only logon the
    # vendor no longer serves) and covered everything since.
    now = datetime.now(timezone.utc)
    ken = next(a for a in tenant.accounts if a.email.startswith("ken."))
    old = now - timedelta(days=250)
    from login_audit.syncstate import Checkpoint

    archive.commit_page(
        tenant_id,
        LOGONS,
        [parse_record(new_logon(ken.email, old)[1])],
        Checkpoint.single(old, now, None, 1),
    )
    archive.finish_window(
        tenant_id, LOGONS, now - timedelta(days=300), now - timedelta(days=170), now
    )
    summary = run_archived_audit(platform_for(sim), archive, KEY, Policy(days=290))
    assert summary.complete
    assert summary.window.start <= now - timedelta(days=299)
    finding = next(f for f in summary.findings if f.account.id == ken.id)
    assert finding.kind is FindingKind.ACTIVE  # within 290 days, thanks to the archive
    archive.close()


def _sync_cmd(sim, archive_path: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "login_audit",
        "sync",
        "--base-url",
        sim.base_url,
        "--archive",
        str(archive_path),
        "--backoff-base",
        "0.01",
    ]


@pytest.mark.e2e
def test_sigkill_at_random_points_then_rerun_gives_exactly_the_records(
    start_sim, process_env, tmp_path: Path
) -> None:
    """Each run is killed by the simulator itself while it waits for a chosen request's
    answer, so where it dies is chosen by the seed, not by how fast the machine is."""
    sim = start_sim(build_tenant(seed=38, accounts=1200))
    path = tmp_path / "archive.sqlite3"
    env = process_env(TMV1_TOKEN=sim.token)
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        seen = itertools.count(1)
        doomed = rng.randint(1, 4)
        proc = subprocess.Popen(
            _sync_cmd(sim, path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def kill_at_the_chosen_request(path: str, proc=proc, doomed=doomed, seen=seen) -> None:
            if next(seen) == doomed:
                os.kill(proc.pid, signal.SIGKILL)

        sim.on_request = kill_at_the_chosen_request
        proc.wait(timeout=120)
        sim.on_request = None
        kills += proc.returncode == -signal.SIGKILL
    final = subprocess.run(
        _sync_cmd(sim, path), env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert final.returncode == 0, final.stderr
    assert kills == 4
    archive = open_archive(str(path))
    tenant_id = archive.tenant_id(TenantKey("visionone", sim.base_url.split("//")[1], "default"))
    keys = [r.key for r in archive.iter_records(tenant_id)]
    assert len(keys) == len(set(keys))
    assert set(keys) == served_keys(sim)
    archive.close()


@pytest.mark.e2e
def test_two_syncs_at_once_one_refuses_clearly(start_sim, process_env, tmp_path: Path) -> None:
    """The first sync is played by this process holding the tenant's lock, so the outcome
    does not depend on how fast two processes run."""
    sim = start_sim(build_tenant(seed=39, accounts=120))
    path = tmp_path / "archive.sqlite3"
    env = process_env(TMV1_TOKEN=sim.token)
    first = open_archive(str(path))
    try:
        tenant = first.tenant_id(TenantKey("visionone", sim.base_url.split("//")[1], "default"))
        with first.lock(tenant):
            second = subprocess.run(
                _sync_cmd(sim, path), env=env, capture_output=True, text=True, timeout=120
            )
    finally:
        first.close()
    assert second.returncode == 4
    assert "another login-audit process is syncing this tenant" in second.stderr
    after = subprocess.run(_sync_cmd(sim, path), env=env, capture_output=True, timeout=120)
    assert after.returncode == 0  # the lock is gone with its holder


@pytest.mark.e2e
def test_export_streams_the_archive_in_every_format(cli, start_sim, tmp_path: Path) -> None:
    sim = start_sim(build_tenant(seed=40, accounts=200))
    path = tmp_path / "archive.sqlite3"
    env = {"TMV1_TOKEN": sim.token}
    base = ["export", "--base-url", sim.base_url, "--archive", str(path)]
    out = tmp_path / "all.json"
    run = cli([*base, "--output", str(out)], env)
    assert run.code == 0, run.stderr
    exported = json.loads(out.read_text())
    assert {parse_record(i).key for i in exported} == served_keys(sim)
    assert len(exported) == len(served_keys(sim))
    requests_after_first = sim.stats.requests
    jsonl = tmp_path / "logons.jsonl"
    run = cli([*base, "--output", str(jsonl), "--category", "Logon and Logoff"], env)
    assert run.code == 0, run.stderr
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert lines and all(i["category"] == "Logon and Logoff" for i in lines)
    # The second export only asked for what is new: accounts plus one page of records.
    assert sim.stats.requests - requests_after_first <= 2 + 1
    csv_out = tmp_path / "x.csv"
    run = cli([*base, "--no-sync", "--output", str(csv_out)])
    assert run.code == 0, run.stderr
    assert csv_out.read_text().count("\n") == len(exported) + 1
    info = cli(["archive", "info", "--archive", str(path), "--json"])
    data = json.loads(info.stdout)
    assert data["tenants"][0]["records"] == len(exported)
    assert data["tenants"][0]["streams"]["all"]["interrupted"] is False
