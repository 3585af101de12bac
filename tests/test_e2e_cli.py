"""The real CLI against the simulator over loopback HTTP, checked against ground truth."""

from __future__ import annotations

import csv
import json
import stat
from pathlib import Path

import pytest

from login_audit.simulator import FaultConfig, Tenant, build_tenant
from tests.conftest import truth_rows

pytestmark = pytest.mark.e2e
FAST_RETRY = ["--backoff-base", "0.01"]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def cleanup_rows(out: Path) -> set[tuple[str, str, str]]:
    return {
        (r["UserId"], r["RoleName"], r["RequestType"])
        for r in read_csv(out / "filtered_accounts_report.csv")
    }


def audit(cli, sim_url: str, token: str, out: Path, *extra: str, **env: str):
    archive = ["--archive", str(out / "archive.sqlite3")] if "--archive" not in extra else []
    return cli(
        ["audit", "--base-url", sim_url, "--output-dir", str(out), *archive, *FAST_RETRY, *extra],
        env=dict(TMV1_TOKEN=token, **env),
    )


def test_clean_run_matches_ground_truth(cli, tenant: Tenant, start_sim, tmp_path: Path) -> None:
    sim = start_sim(tenant)
    result = audit(cli, sim.base_url, sim.token, tmp_path)
    assert result.code == 0, result.stderr
    assert cleanup_rows(tmp_path) == truth_rows(tenant)
    header = (tmp_path / "filtered_accounts_report.csv").read_text().splitlines()[0]
    assert header == "UserId,RoleName,RequestType"
    report = json.loads((tmp_path / "audit_report.json").read_text())
    assert report["run"]["complete"] is True
    assert len(report["accounts"]) == len(tenant.accounts)
    classes = tenant.truth()["classes"]
    for account in report["accounts"]:
        expected = classes[account["accountId"]]
        assert account["finding"] == expected, account
    for name in ("filtered_accounts_report.csv", "accounts_report.csv", "audit_report.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
    assert "to remove: " in result.stderr


def test_detailed_report_shows_failed_logons_of_dormant_accounts(
    cli, tenant: Tenant, start_sim, tmp_path: Path
) -> None:
    sim = start_sim(tenant)
    assert audit(cli, sim.base_url, sim.token, tmp_path).code == 0
    rows = {r["UserId"]: r for r in read_csv(tmp_path / "accounts_report.csv")}
    frank = rows["frank.failed@example.com"]
    assert frank["Finding"] == "inactive"
    assert frank["LastFailedLogin"] > frank["LastLogin"]
    grace = rows["grace.logoff@example.com"]
    assert grace["Finding"] == "no-login" and grace["LastLogin"] == ""
    assert grace["LastFailedLogin"] != ""
    assert rows["laura.disabled@example.com"]["Finding"] == "excluded"


def test_faults_at_20_percent_give_the_same_result(
    cli, tenant: Tenant, start_sim, tmp_path: Path
) -> None:
    sim = start_sim(tenant, faults=FaultConfig(rate=0.2, seed=5))
    result = audit(cli, sim.base_url, sim.token, tmp_path, "--max-attempts", "10")
    assert result.code == 0, result.stderr
    assert sum(sim.stats.faults.values()) >= 2, sim.stats
    assert cleanup_rows(tmp_path) == truth_rows(tenant)


def test_persistent_audit_log_outage_flags_nobody(
    cli, tenant: Tenant, start_sim, tmp_path: Path
) -> None:
    sim = start_sim(tenant, faults=FaultConfig(outages=("/v3.0/audit/logs",)))
    result = audit(cli, sim.base_url, sim.token, tmp_path, "--max-attempts", "2")
    assert result.code == 4, result.stderr
    assert cleanup_rows(tmp_path / "incomplete") == set()
    assert "INCOMPLETE" in result.stderr and "logon records incomplete" in result.stderr
    report = json.loads((tmp_path / "incomplete" / "audit_report.json").read_text())
    assert report["run"]["complete"] is False
    findings = {a["finding"] for a in report["accounts"]}
    assert findings <= {"unknown", "excluded"}


def test_accounts_outage_exits_incomplete(cli, tenant: Tenant, start_sim, tmp_path: Path) -> None:
    sim = start_sim(tenant, faults=FaultConfig(outages=("/v3.0/iam/accounts",)))
    result = audit(cli, sim.base_url, sim.token, tmp_path, "--max-attempts", "2")
    assert result.code == 4
    assert cleanup_rows(tmp_path / "incomplete") == set()
    assert "account list incomplete" in result.stderr


def test_fail_on_findings_exit_code(cli, tenant: Tenant, start_sim, tmp_path: Path) -> None:
    sim = start_sim(tenant)
    assert audit(cli, sim.base_url, sim.token, tmp_path, "--fail-on-findings").code == 3


def test_policy_flags_change_the_list(cli, tenant: Tenant, start_sim, tmp_path: Path) -> None:
    sim = start_sim(tenant)
    excludes = tmp_path / "excludes.txt"
    excludes.write_text("# service accounts\nfrank.*@example.com\n\n")
    result = audit(
        cli,
        sim.base_url,
        sim.token,
        tmp_path,
        "--exclude-file",
        str(excludes),
        "--exclude",
        "judy.*",
        "--include-disabled",
    )
    assert result.code == 0, result.stderr
    users = {row[0] for row in cleanup_rows(tmp_path)}
    assert "frank.failed@example.com" not in users
    assert "judy.never@example.com" not in users
    assert "laura.disabled@example.com" in users  # disabled and dormant, now included


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--days", "0"], "--days must be at least 1"),
        (["--days", "-5"], "--days must be at least 1"),
        (["--days", "abc"], "'abc' is not a valid integer"),
        (["--days", "181", "--no-archive"], "beyond the 180 days"),
        (["--days", "400"], "the archive holds no logons yet and the vendor keeps 180 days"),
        (["--days", "99999"], "beyond the 3650 days"),
        (["--region", "mars"], "unknown Vision One region 'mars'"),
        (["--base-url", "http://example.com"], "refusing plain http://"),
        (["--exclude-file", "/nonexistent/x"], "cannot read exclusion file"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(cli, args: list[str], needle: str, tmp_path) -> None:
    base = (
        [] if "--region" in args or "--base-url" in args else ["--base-url", "http://127.0.0.1:9"]
    )
    result = cli(
        ["audit", *base, "--output-dir", str(tmp_path), *args],
        env=dict(TMV1_TOKEN="t0k3n-not-used"),
    )
    assert result.code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert not (tmp_path / "filtered_accounts_report.csv").exists()


def test_wrong_token_is_one_line_exit_2(cli, tenant: Tenant, start_sim, tmp_path: Path) -> None:
    sim = start_sim(tenant)
    result = audit(cli, sim.base_url, "wrong-token-123456", tmp_path)
    assert result.code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "token was refused" in lines[0] and "401" in lines[0]
    assert "wrong-token-123456" not in result.stderr


@pytest.mark.parametrize("archive", ["--no-archive", "--archive"])
def test_a_refused_token_leaves_no_output_folder(cli, tenant, start_sim, tmp_path, archive):
    """Output folders are created when something is written into them, not before."""
    sim = start_sim(tenant)
    out = tmp_path / "reports" / "2026-11-22"
    where = [archive] if archive == "--no-archive" else [archive, str(tmp_path / "a.sqlite3")]
    result = audit(cli, sim.base_url, "wrong-token-123456", out, *where)
    assert result.code == 2 and "token was refused" in result.stderr
    assert not (tmp_path / "reports").exists()


def test_an_output_folder_that_cannot_be_created_is_refused_before_any_request(
    cli, tenant, start_sim, tmp_path
) -> None:
    sim = start_sim(tenant)
    (tmp_path / "file").write_text("not a folder")
    result = audit(cli, sim.base_url, sim.token, tmp_path / "file" / "out", "--no-archive")
    assert result.code == 2 and "cannot create output directory" in result.stderr
    assert sim.stats.requests == 0


def test_missing_permission_names_it(cli, tenant: Tenant, start_sim, tmp_path: Path) -> None:
    sim = start_sim(tenant, tokens={"accounts-only-token": frozenset({"accounts"})})
    result = audit(cli, sim.base_url, "accounts-only-token", tmp_path)
    assert result.code == 2
    assert "Audit Logs: View, filter, and search" in result.stderr


def test_missing_token_says_where_to_put_it(cli, tmp_path: Path) -> None:
    result = cli(["audit", "--base-url", "http://127.0.0.1:9", "--output-dir", str(tmp_path)])
    assert result.code == 2
    assert "set TMV1_TOKEN or pass --token-file" in result.stderr


def test_token_from_stdin_and_file(cli, tenant: Tenant, start_sim, tmp_path: Path) -> None:
    sim = start_sim(tenant)
    out = tmp_path / "stdin"
    result = cli(
        ["audit", "--base-url", sim.base_url, "--token-file", "-", "--output-dir", str(out)],
        stdin=sim.token + "\n",
    )
    assert result.code == 0, result.stderr
    token_file = tmp_path / "token"
    token_file.write_text(sim.token + "\n")
    token_file.chmod(0o644)
    out2 = tmp_path / "file"
    result = cli(
        [
            "audit",
            "--base-url",
            sim.base_url,
            "--token-file",
            str(token_file),
            "--output-dir",
            str(out2),
        ]
    )
    assert result.code == 0, result.stderr
    assert "can be read by other users" in result.stderr
    assert cleanup_rows(out) == cleanup_rows(out2) == truth_rows(tenant)


def all_bytes_written(*paths: Path) -> bytes:
    blob = b""
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for path in files:
            blob += path.read_bytes()
    return blob


def test_token_never_written_even_at_debug_and_on_errors(cli, start_sim, tmp_path: Path) -> None:
    secret = "S3cr3t-T0ken-" + "x" * 20
    small = build_tenant(seed=3, accounts=30)
    # A fault-heavy run at DEBUG, then a run that ends in an error.
    sim = start_sim(small, token=secret, faults=FaultConfig(rate=0.3, seed=2))
    log_file = tmp_path / "run.log"
    for name in ("out", "out2"):
        (tmp_path / name).mkdir()  # the archives' folders, which are not created for them
    first = audit(
        cli,
        sim.base_url,
        secret,
        tmp_path / "out",
        "--log-level",
        "DEBUG",
        "--log-file",
        str(log_file),
    )
    assert first.code in (0, 4)
    outage = start_sim(small, token=secret, faults=FaultConfig(outages=("/v3.0",)))
    second = audit(
        cli,
        outage.base_url,
        secret,
        tmp_path / "out2",
        "--log-level",
        "DEBUG",
        "--log-file",
        str(log_file),
        "--max-attempts",
        "2",
    )
    assert second.code == 4
    assert log_file.stat().st_size > 0
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    for result in (first, second):
        assert secret not in result.stdout + result.stderr
    assert secret.encode() not in all_bytes_written(tmp_path)


def test_help_of_every_command_answers(
    cli,
) -> None:
    for command in ([], ["audit"], ["simulate"], ["demo"]):
        result = cli([*command, "--help"])
        assert result.code == 0
        assert "Usage:" in result.stdout
    assert "--days" in cli(["audit", "--help"]).stdout


def test_log_options_after_the_command_name(cli, tenant: Tenant, start_sim, tmp_path: Path) -> None:
    sim = start_sim(tenant)
    log_file = tmp_path / "run.log"
    result = audit(
        cli, sim.base_url, sim.token, tmp_path, "--log-level", "INFO", "--log-file", str(log_file)
    )
    assert result.code == 0, result.stderr
    assert log_file.exists()


def test_demo_command_matches_truth(cli, tmp_path: Path) -> None:
    result = cli(["demo", "--output-dir", str(tmp_path), "--accounts", "120"])
    assert result.code == 0, result.stderr
    assert "matches the simulator's ground truth" in result.stderr
    assert (tmp_path / "filtered_accounts_report.csv").exists()
    # Only the reports: the demo's throw-away archive and its lock files live elsewhere.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "accounts_report.csv",
        "audit_report.html",
        "audit_report.json",
        "filtered_accounts_report.csv",
    ]


def test_a_dangling_symlink_as_output_folder_is_refused_before_any_request(
    cli, tenant, start_sim, tmp_path
) -> None:
    """A link to a folder that was removed (or not mounted yet) fails before the audit,
    not after it with the audit's work lost."""
    sim = start_sim(tenant)
    link = tmp_path / "reports"
    link.symlink_to(tmp_path / "unmounted" / "reports")
    result = audit(cli, sim.base_url, sim.token, link, "--no-archive")
    assert result.code == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"cannot create output directory {link}" in line and "symbolic link" in line, line
    assert sim.stats.requests == 0


def test_a_symlinked_output_folder_receives_the_reports(cli, tenant, start_sim, tmp_path) -> None:
    sim = start_sim(tenant)
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "reports"
    link.symlink_to(real)
    result = audit(cli, sim.base_url, sim.token, link, "--no-archive")
    assert result.code == 0, result.stderr
    assert cleanup_rows(real) == truth_rows(tenant)


def test_a_log_file_that_is_a_symbolic_link_is_refused(cli, tmp_path: Path) -> None:
    """A link planted where a scheduled run logs (/tmp/login-audit.log) must not make it
    append to, and chmod, the file the link points to."""
    victim = tmp_path / "victim.conf"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    link = tmp_path / "login-audit.log"
    link.symlink_to(victim)
    args = ["audit", "--base-url", "http://127.0.0.1:9", "--log-file", str(link)]
    result = cli([*args, "--output-dir", str(tmp_path / "out")], {"TMV1_TOKEN": "x" * 24})
    assert result.code == 2
    assert "symbolic link" in result.stderr, result.stderr
    assert victim.read_text() == "precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
