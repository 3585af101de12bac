"""apply against the simulator: dry run, fresh re-check, caps, journal, idempotence."""

from __future__ import annotations

import csv
import stat
from datetime import datetime, timezone
from pathlib import Path

import pytest

from login_audit.simulator import build_cloudone_tenant, build_tenant

pytestmark = pytest.mark.e2e


def audit_then(cli, sim, tmp_path: Path, token: str | None = None, platform: str = "visionone"):
    env_name = "TMV1_TOKEN" if platform == "visionone" else "C1_API_KEY"
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
        ],
        env=dict(**{env_name: sim.token}),
    )
    assert result.code == 0, result.stderr

    def apply(*extra: str):
        return cli(
            [
                "apply",
                "--platform",
                platform,
                "--base-url",
                sim.base_url,
                "--from",
                str(tmp_path / "filtered_accounts_report.csv"),
                "--output-dir",
                str(tmp_path),
                "--backoff-base",
                "0.01",
                *extra,
            ],
            env=dict(**{env_name: token or sim.token}),
        )

    return apply


def flagged(tmp_path: Path) -> list[str]:
    with (tmp_path / "filtered_accounts_report.csv").open(newline="") as handle:
        return [row["UserId"] for row in csv.DictReader(handle)]


def journal(tmp_path: Path) -> list[dict[str, str]]:
    with (tmp_path / "apply_journal.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def small():
    return build_tenant(seed=111, accounts=60)


def test_dry_run_changes_nothing(cli, small, start_sim, tmp_path: Path) -> None:
    sim = start_sim(small)
    apply = audit_then(cli, sim, tmp_path)
    result = apply("--max-changes", "100")
    assert result.code == 0, result.stderr
    assert "dry run: nothing changed" in result.stderr
    assert sim.changes == []
    assert not (tmp_path / "apply_journal.csv").exists()


def test_a_dry_run_creates_no_output_folder(cli, small, start_sim, tmp_path: Path) -> None:
    sim = start_sim(small)
    audit_then(cli, sim, tmp_path)
    journal_dir = tmp_path / "journal"
    args = ["apply", "--base-url", sim.base_url, "--no-archive", "--max-changes", "100"]
    source = ["--from", str(tmp_path / "filtered_accounts_report.csv")]
    result = cli([*args, *source, "--output-dir", str(journal_dir)], {"TMV1_TOKEN": sim.token})
    assert result.code == 0 and "dry run: nothing changed" in result.stderr, result.stderr
    assert not journal_dir.exists()


def test_disable_then_rerun_is_idempotent(cli, small, start_sim, tmp_path: Path) -> None:
    sim = start_sim(small)
    apply = audit_then(cli, sim, tmp_path)
    users = flagged(tmp_path)
    result = apply("--yes", "--max-changes", "100")
    assert result.code == 0, result.stderr
    disabled = {a["email"] for a in sim.accounts if a["status"] == "disabled"}
    originally = {a.email for a in small.accounts if a.status == "disabled"}
    assert disabled - originally == set(users)
    assert len(sim.changes) == len(users)
    rows = journal(tmp_path)
    assert {r["UserId"] for r in rows if r["Outcome"] == "done"} == set(users)
    assert stat.S_IMODE((tmp_path / "apply_journal.csv").stat().st_mode) == 0o600
    again = apply("--yes", "--max-changes", "100")
    assert again.code == 0
    assert len(sim.changes) == len(users)  # nothing more changed
    assert "already disabled" in again.stderr


def test_an_account_that_signed_in_after_the_report_is_skipped(
    cli, small, start_sim, tmp_path
) -> None:
    sim = start_sim(small)
    apply = audit_then(cli, sim, tmp_path)
    target = flagged(tmp_path)[0]
    now = datetime.now(timezone.utc)
    sim.add_records(
        [
            (
                now,
                {
                    "loggedDateTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "loggedUser": "Display Name",
                    "loggedUserMailAddress": target,
                    "category": "Logon and Logoff",
                    "activity": "Log on",
                    "result": "Successful",
                },
            )
        ]
    )
    result = apply("--yes", "--max-changes", "100")
    assert result.code == 0, result.stderr
    assert target not in {a["email"] for a in sim.accounts if a["status"] == "disabled"}
    assert any(
        r["UserId"] == target and "within the last 90 days" in r["Reason"]
        for r in journal(tmp_path)
    )


def test_max_changes_refuses_the_whole_run(cli, small, start_sim, tmp_path: Path) -> None:
    sim = start_sim(small)
    apply = audit_then(cli, sim, tmp_path)
    result = apply("--yes", "--max-changes", "2")
    assert result.code == 2 and "more than --max-changes 2" in result.stderr
    assert sim.changes == []


def test_the_last_master_administrator_is_kept(cli, start_sim, tmp_path: Path) -> None:
    tenant = build_tenant(seed=112, accounts=40)
    dormant = next(a for a in tenant.accounts if a.klass == "inactive")
    for account in tenant.accounts:
        if account.role == "Master Administrator":
            account.role = "Operator"
    dormant.role = "Master Administrator"
    sim = start_sim(tenant)
    apply = audit_then(cli, sim, tmp_path)
    assert dormant.email in flagged(tmp_path)
    result = apply("--yes", "--max-changes", "100")
    assert result.code == 0, result.stderr
    row = next(r for r in journal(tmp_path) if r["UserId"] == dormant.email)
    assert (
        row["Outcome"] == "skipped"
        and "the last enabled administrator (Master Administrator)" in row["Reason"]
    )


def test_a_failure_stops_the_run_and_says_what_was_done(cli, small, start_sim, tmp_path) -> None:
    sim = start_sim(small, tokens={"read-only-token-123": frozenset({"audit", "accounts"})})
    apply = audit_then(cli, sim, tmp_path, token="read-only-token-123")
    result = apply("--yes", "--max-changes", "100")
    assert result.code == 4
    assert "User Accounts: Configure account settings" in result.stderr
    outcomes = [r["Outcome"] for r in journal(tmp_path) if r["Outcome"] != "skipped"]
    assert outcomes[0] == "failed" and set(outcomes[1:]) <= {"not-run"}
    assert sim.changes == []


def test_delete_needs_a_second_confirmation(cli, small, start_sim, tmp_path: Path) -> None:
    sim = start_sim(small)
    apply = audit_then(cli, sim, tmp_path)
    refused = apply("--yes", "--action", "delete", "--max-changes", "100")
    assert refused.code == 2 and "--confirm-delete" in refused.stderr
    assert sim.changes == []
    done = apply("--yes", "--action", "delete", "--confirm-delete", "--max-changes", "100")
    assert done.code == 0, done.stderr
    remaining = {a["email"] for a in sim.accounts}
    assert not remaining & set(flagged(tmp_path))


def test_cloud_one_is_refused_unless_asked(cli, start_sim, tmp_path: Path) -> None:
    c1 = build_cloudone_tenant(seed=113, users=40)
    sim = start_sim(build_tenant(seed=114, accounts=10), cloudone=c1)
    apply = audit_then(cli, sim, tmp_path, platform="cloudone")
    refused = apply("--yes", "--action", "delete", "--confirm-delete")
    assert refused.code == 2 and "--unverified-cloudone-actions" in refused.stderr
    done = apply(
        "--yes",
        "--action",
        "delete",
        "--confirm-delete",
        "--max-changes",
        "100",
        "--unverified-cloudone-actions",
    )
    assert done.code == 0, done.stderr
    rows = journal(tmp_path)
    assert any("SAML user" in r["Reason"] for r in rows if r["Outcome"] == "cannot")
    deleted = {r["UserId"] for r in rows if r["Outcome"] == "done"}
    assert deleted and not deleted & {u.email for u in c1.users}


def test_apply_the_last_audit_in_the_archive(cli, small, start_sim, tmp_path: Path) -> None:
    from login_audit.archive import open_archive
    from login_audit.archive.base import TenantKey

    sim = start_sim(small)
    archive = str(tmp_path / "archive.sqlite3")
    env = dict(TMV1_TOKEN=sim.token)
    base = ["--base-url", sim.base_url, "--archive", archive, "--output-dir", str(tmp_path)]
    assert cli(["audit", *base], env=env).code == 0
    users = flagged(tmp_path)
    result = cli(["apply", *base, "--yes", "--max-changes", "100"], env=env)
    assert result.code == 0, result.stderr
    assert "accounts in the last audit" in result.stderr
    assert {a["email"] for a in sim.accounts if a["status"] == "disabled"} >= set(users)
    store = open_archive(archive)
    tenant = store.tenant_id(TenantKey("visionone", sim.base_url.split("//")[1], "default"))
    entries = store.journal_entries(tenant)
    store.close()
    assert {user for action, user, outcome, _ in entries if outcome == "done"} == set(users)


def test_apply_without_an_audit_in_the_archive(cli, small, start_sim, tmp_path: Path) -> None:
    sim = start_sim(small)
    result = cli(
        ["apply", "--base-url", sim.base_url, "--archive", str(tmp_path / "a.sqlite3")],
        env=dict(TMV1_TOKEN=sim.token),
    )
    assert result.code == 2 and "run 'login-audit audit' first" in result.stderr
