"""The historical ``python login_audit_report.py -t TOKEN`` interface still works."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, truth_rows

pytestmark = pytest.mark.e2e


@pytest.fixture
def run_script(process_env):
    """Run the old script as a separate process: its own start-up is what is tested."""

    def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / "login_audit_report.py"), *args],
            cwd=cwd,
            env=process_env(**env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    return run


def test_old_interface_writes_the_csv_in_the_current_directory(
    run_script, tenant, start_sim, tmp_path: Path
) -> None:
    sim = start_sim(tenant)
    result = run_script(["-t", sim.token], tmp_path, TMV1_URL=sim.base_url)
    assert result.returncode == 0, result.stderr
    assert "visible to other users" in result.stderr and "TMV1_TOKEN" in result.stderr
    with (tmp_path / "filtered_accounts_report.csv").open(newline="") as handle:
        rows = {(r["UserId"], r["RoleName"], r["RequestType"]) for r in csv.DictReader(handle)}
    assert rows == truth_rows(tenant)
    assert sim.token not in result.stdout + result.stderr


def test_old_interface_logs_errors_to_error_log(
    run_script, tenant, start_sim, tmp_path: Path
) -> None:
    sim = start_sim(tenant)
    result = run_script(["-t", "bad-token-xyz"], tmp_path, TMV1_URL=sim.base_url)
    assert result.returncode == 2
    log = (tmp_path / "error.log").read_text()
    assert "token was refused" in log
    assert "bad-token-xyz" not in log + result.stderr


def test_environment_token_needs_no_flag(run_script, tenant, start_sim, tmp_path: Path) -> None:
    sim = start_sim(tenant)
    result = run_script([], tmp_path, TMV1_URL=sim.base_url, TMV1_TOKEN=sim.token)
    assert result.returncode == 0, result.stderr
    assert "visible to other users" not in result.stderr
