"""Clocks, time zones and secrets: the result never depends on where or when it runs,
and the token never appears in anything written."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from login_audit.archive import open_archive
from login_audit.audit import run_audit
from login_audit.config import HttpSettings, Secret
from login_audit.http import BearerAuth, HttpClient
from login_audit.models import Policy
from login_audit.platforms.visionone import VisionOne
from login_audit.simulator import FaultConfig, Simulator, build_tenant


def frozen_run(moment: datetime) -> tuple[set[str], set[str]]:
    """Audit a tenant generated at ``moment`` with the client's clock at ``moment``."""
    tenant = build_tenant(seed=91, accounts=120, now=moment)
    started = time.monotonic()

    def sim_clock() -> datetime:
        from datetime import timedelta

        return moment + timedelta(seconds=time.monotonic() - started)

    with (
        Simulator(tenant, clock=sim_clock) as sim,
        HttpClient(BearerAuth(Secret(sim.token)), HttpSettings(backoff_base=0.001)) as http,
    ):
        platform = VisionOne(http, sim.base_url, "t", clock=lambda: moment)
        summary = run_audit(platform, Policy(), clock=lambda: moment)
    return {f.account.user_id for f in summary.to_remove}, {
        r["UserId"] for r in tenant.truth()["remove"]
    }


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc),  # new year's midnight
        datetime(2027, 1, 1, 0, 0, 0, tzinfo=timezone.utc),
        datetime(2026, 3, 29, 0, 59, 59, tzinfo=timezone.utc),  # EU summer time starts
        datetime(2026, 3, 29, 1, 0, 1, tzinfo=timezone.utc),
        datetime(2026, 11, 1, 5, 59, 59, tzinfo=timezone.utc),  # US summer time ends
        datetime(2026, 11, 1, 6, 30, 0, tzinfo=timezone.utc),
    ],
)
@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/New_York", "Pacific/Kiritimati"])
def test_same_result_at_any_instant_in_any_zone(monkeypatch, moment: datetime, zone: str) -> None:
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        flagged, truth = frozen_run(moment)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert flagged == truth


@pytest.mark.e2e
@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "America/Adak", "Asia/Kathmandu"])
def test_cli_in_far_time_zones(cli, start_sim, tmp_path: Path, zone: str) -> None:
    tenant = build_tenant(seed=92, accounts=80)
    sim = start_sim(tenant)
    result = cli(
        ["audit", "--base-url", sim.base_url, "--output-dir", str(tmp_path), "--no-archive"],
        env=dict(TMV1_TOKEN=sim.token, TZ=zone),
    )
    assert result.code == 0, result.stderr
    rows = (tmp_path / "filtered_accounts_report.csv").read_text().splitlines()[1:]
    assert {r.split(",")[0] for r in rows} == {r["UserId"] for r in tenant.truth()["remove"]}


def audit_at_debug_level(cli, sim, tmp_path: Path, env: dict[str, str], *platform: str):
    """An audit that logs everything to ``tmp_path/debug.log`` and archives its records."""
    return cli(
        [
            "audit",
            *platform,
            "--base-url",
            sim.base_url,
            "--output-dir",
            str(tmp_path / "out"),
            "--archive",
            str(tmp_path / "archive.sqlite3"),
            "--log-level",
            "DEBUG",
            "--log-file",
            str(tmp_path / "debug.log"),
            "--backoff-base",
            "0.01",
            "--max-attempts",
            "10",
        ],
        env,
    )


def assert_never_written(secret: str, result, tmp_path: Path) -> None:
    """Not on stdout or stderr, nor in any file the run wrote (logs, reports, archive)."""
    assert secret not in result.stdout + result.stderr
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert secret.encode() not in written
    assert (tmp_path / "debug.log").stat().st_size > 0
    archive = tmp_path / "archive.sqlite3"
    assert archive.stat().st_size > 0
    store = open_archive(str(archive))
    store.close()
    assert secret not in repr(store)


@pytest.mark.e2e
def test_echoed_token_never_reaches_any_output(cli, start_sim, tmp_path: Path) -> None:
    secret = "Echo-Me-Token-" + "z" * 24
    tenant = build_tenant(seed=93, accounts=450)
    sim = start_sim(
        tenant,
        token=secret,
        faults=FaultConfig(rate=0.4, seed=5, kinds=("echo-token", "echo-link")),
    )
    result = audit_at_debug_level(cli, sim, tmp_path, {"TMV1_TOKEN": secret})
    assert sim.stats.faults["echo-token"] > 0 and sim.stats.faults["echo-link"] > 0
    assert result.code == 0, result.stderr
    assert_never_written(secret, result, tmp_path)


def test_repr_of_every_object_holding_the_token() -> None:
    secret = "Repr-Token-" + "q" * 24
    http = HttpClient(BearerAuth(Secret(secret)))
    platform = VisionOne(http, "https://api.xdr.trendmicro.com", "us")
    for obj in (http, platform, http._auth, Secret(secret), [Secret(secret)]):
        assert secret not in repr(obj) and secret not in str(obj)
    http.close()


@pytest.mark.e2e
def test_a_cloud_one_key_echoed_in_cursors_and_errors_never_reaches_any_output(
    cli, start_sim, tmp_path: Path
) -> None:
    from login_audit.simulator import build_cloudone_tenant

    secret = "Echo-Me-Key-" + "k" * 24
    sim = start_sim(
        build_tenant(seed=94, accounts=20),
        cloudone=build_cloudone_tenant(seed=95, users=250),
        token=secret,
        faults=FaultConfig(rate=0.4, seed=6, kinds=("echo-token", "echo-link")),
    )
    env = {"C1_API_KEY": secret}
    result = audit_at_debug_level(cli, sim, tmp_path, env, "--platform", "cloudone")
    assert sim.stats.faults["echo-token"] > 0 and sim.stats.faults["echo-link"] > 0
    assert result.code in (0, 4), result.stderr
    assert_never_written(secret, result, tmp_path)
