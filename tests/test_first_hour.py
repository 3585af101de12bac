"""What a new administrator gets wrong in the first hour: each mistake is told, not hidden.

The CLI runs in this process (``main``) against the simulator over loopback HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from login_audit.simulator import Tenant

FAST = ["--backoff-base", "0.01", "--max-attempts", "2"]


def test_region_flag_beats_a_base_url_in_the_environment(cli, start_sim, tenant, tmp_path: Path):
    sim = start_sim(tenant)
    for variable in ("TMV1_URL", "LOGIN_AUDIT_BASE_URL"):
        # No token: the run stops before any request, so nothing leaves this machine.
        env = {variable: sim.base_url}
        result = cli(
            ["doctor", "--region", "eu", "--archive", str(tmp_path / "a.sqlite3"), *FAST], env
        )
        # The flag wins: the tenant named in the environment is not the one checked.
        assert "visionone eu: token found" in result.stdout, result.stdout
        assert "using --region eu" in result.stderr and variable in result.stderr
        audit = cli(["audit", "--region", "eu", "--output-dir", str(tmp_path / "o")], env)
        assert audit.code == 2 and "using --region eu" in audit.stderr
    assert sim.stats.requests == 0


def test_base_url_in_the_environment_is_used_without_a_region_flag(
    cli, start_sim, tenant, tmp_path: Path
):
    sim = start_sim(tenant)
    env = {"TMV1_TOKEN": sim.token, "TMV1_URL": sim.base_url, "LOGIN_AUDIT_REGION": "eu"}
    result = cli(["doctor", "--archive", str(tmp_path / "a.sqlite3"), *FAST], env)
    assert result.code == 0, result.stdout + result.stderr
    assert "using the base URL of TMV1_URL; ignoring LOGIN_AUDIT_REGION eu" in result.stderr


def test_region_and_base_url_flags_together_say_which_is_used(
    cli, start_sim, tenant: Tenant, tmp_path: Path
):
    sim = start_sim(tenant)
    args = ["audit", "--region", "eu", "--base-url", sim.base_url, "--no-archive", *FAST]
    result = cli([*args, "--output-dir", str(tmp_path)], {"TMV1_TOKEN": sim.token})
    assert result.code == 0, result.stderr
    assert "using the base URL of --base-url; ignoring --region eu" in result.stderr


def test_a_mistyped_exclusion_is_a_warning_in_the_summary_and_the_reports(
    cli, start_sim, tenant: Tenant, tmp_path: Path
):
    sim = start_sim(tenant)
    patterns = tmp_path / "exclude.txt"
    patterns.write_text("nobody-here@*\n")
    result = cli(
        [
            "audit",
            "--base-url",
            sim.base_url,
            "--no-archive",
            "--output-dir",
            str(tmp_path / "out"),
            "--exclude-role",
            "Master Admin",
            "--exclude-role",
            "auditor",
            "--exclude",
            "svc-typo-*",
            "--exclude-file",
            str(patterns),
            *FAST,
        ],
        {"TMV1_TOKEN": sim.token},
    )
    assert result.code == 0, result.stderr
    roles = sorted({a.role for a in tenant.accounts})
    assert "'Master Administrator'" in result.stderr
    role_line = next(line for line in result.stderr.splitlines() if "'Master Admin'" in line)
    assert all(repr(role) in role_line for role in roles)
    assert "'svc-typo-*'" in result.stderr and "'nobody-here@*'" in result.stderr
    # 'auditor' names a role of the tenant, case aside: no warning for it.
    assert "'auditor'" not in result.stderr
    report = json.loads((tmp_path / "out" / "audit_report.json").read_text())
    warnings = report["run"]["warnings"]
    assert len(warnings) == 3 and any("Master Admin" in w for w in warnings)
    html = (tmp_path / "out" / "audit_report.html").read_text()
    assert "svc-typo-*" in html and "Master Admin&#x27; matched no account" in html


@pytest.mark.parametrize("flag", ["--exclude", "--exclude-role"])
def test_an_exclusion_that_matches_gives_no_warning(
    cli, start_sim, tenant: Tenant, tmp_path: Path, flag: str
):
    sim = start_sim(tenant)
    value = tenant.accounts[0].email if flag == "--exclude" else tenant.accounts[0].role
    args = ["audit", "--base-url", sim.base_url, "--no-archive", flag, value.upper(), *FAST]
    result = cli([*args, "--output-dir", str(tmp_path)], {"TMV1_TOKEN": sim.token})
    assert result.code == 0 and "warning" not in result.stderr, result.stderr
