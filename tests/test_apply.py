"""apply against the simulator: dry run, fresh re-check, caps, journal, idempotence.

The workflow is driven through the library (:mod:`login_audit.cleanup`); the command
line is run where its flags, exit codes, prompt and output are the point.
"""

from __future__ import annotations

import csv
import functools
import io
import stat
import sys
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from login_audit.archive import Archive
from login_audit.cleanup import ApplyRequest, ApplyResult, PlanRefused, prepare, run_cleanup
from login_audit.config import HttpSettings, Secret, resolve_target
from login_audit.errors import ConfigError
from login_audit.locks import file_lock
from login_audit.models import Policy
from login_audit.platforms import open_client
from login_audit.service import tenant_key
from login_audit.simulator import Simulator, build_cloudone_tenant, build_tenant

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


def cleanup_request(
    sim: Simulator, tmp_path: Path, *, token: str | None = None, **request: Any
) -> tuple[ApplyRequest, functools.partial[Any]]:
    """The library's request to act on the audit's CSV in ``tmp_path``, and its connection."""
    platform = request.pop("platform", "visionone")
    target = resolve_target(platform, None, sim.base_url, env={})
    wanted = ApplyRequest(
        tenant=tenant_key(target, "default"),
        policy=request.pop("policy", Policy()),
        source=request.pop("source", tmp_path / "filtered_accounts_report.csv"),
        output_dir=tmp_path,
        max_changes=request.pop("max_changes", 100),
        **request,
    )
    settings = HttpSettings(backoff_base=0.01)
    return wanted, functools.partial(open_client, target, Secret(token or sim.token), settings)


def run_apply(
    sim: Simulator, tmp_path: Path, archive: Archive | None = None, **request: Any
) -> ApplyResult:
    """Plan and carry out through the library, as ``apply --yes`` does."""
    return run_cleanup(*cleanup_request(sim, tmp_path, **request), archive)


def flagged(tmp_path: Path) -> list[str]:
    with (tmp_path / "filtered_accounts_report.csv").open(newline="") as handle:
        return [row["UserId"] for row in csv.DictReader(handle)]


def journal(tmp_path: Path) -> list[dict[str, str]]:
    """Each row's final outcome in the journal (the ``started`` lines before them left out)."""
    with (tmp_path / "apply_journal.csv").open(newline="") as handle:
        return [r for r in csv.DictReader(handle) if r["Outcome"] != "started"]


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
    audit_then(cli, sim, tmp_path)
    users = flagged(tmp_path)
    result = run_apply(sim, tmp_path)
    assert result.complete and {c.user_id for c in result.done} == set(users)
    disabled = {a["email"] for a in sim.accounts if a["status"] == "disabled"}
    originally = {a.email for a in small.accounts if a.status == "disabled"}
    assert disabled - originally == set(users)
    assert len(sim.changes) == len(users)
    rows = journal(tmp_path)
    assert {r["UserId"] for r in rows if r["Outcome"] == "done"} == set(users)
    assert stat.S_IMODE((tmp_path / "apply_journal.csv").stat().st_mode) == 0o600
    again = run_apply(sim, tmp_path)
    assert again.complete and not again.done
    assert len(sim.changes) == len(users)  # nothing more changed
    assert {c.reason for c in again.changes if c.user_id in users} == {"already disabled"}


def test_an_account_that_signed_in_after_the_report_is_skipped(
    cli, small, start_sim, tmp_path
) -> None:
    sim = start_sim(small)
    audit_then(cli, sim, tmp_path)
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
    assert run_apply(sim, tmp_path).complete
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
    audit_then(cli, sim, tmp_path)
    assert dormant.email in flagged(tmp_path)
    assert run_apply(sim, tmp_path).complete
    row = next(r for r in journal(tmp_path) if r["UserId"] == dormant.email)
    assert (
        row["Outcome"] == "skipped"
        and "the last enabled administrator (Master Administrator)" in row["Reason"]
    )


def test_a_failure_stops_the_run_and_says_what_was_done(cli, small, start_sim, tmp_path) -> None:
    sim = start_sim(small, tokens={"read-only-token-123": frozenset({"audit", "accounts"})})
    audit_then(cli, sim, tmp_path)
    result = run_apply(sim, tmp_path, token="read-only-token-123")
    assert not result.complete and len(result.failed) == 1
    assert "User Accounts: Configure account settings" in result.failed[0].reason
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
    store = open_archive(archive)
    result = run_apply(sim, tmp_path, store, source=None)
    assert result.complete and result.plan.requests.source.startswith("the last audit")
    assert {a["email"] for a in sim.accounts if a["status"] == "disabled"} >= set(users)
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


def test_a_dry_run_takes_no_lock_and_cannot_carry_out(cli, small, start_sim, tmp_path) -> None:
    sim = start_sim(small)
    audit_then(cli, sim, tmp_path)
    request, connect = cleanup_request(sim, tmp_path)
    lock = tmp_path / "apply_journal.csv.lock"
    with file_lock(lock, "held by the test"), prepare(request, connect, dry_run=True) as cleanup:
        assert cleanup.plan.planned == len(flagged(tmp_path))
        with pytest.raises(ConfigError, match="a dry run cannot carry out its plan"):
            cleanup.carry_out()
    assert sim.changes == [] and not (tmp_path / "apply_journal.csv").exists()


def test_a_plan_over_max_changes_is_refused_with_the_plan(cli, small, start_sim, tmp_path) -> None:
    sim = start_sim(small)
    audit_then(cli, sim, tmp_path)
    with pytest.raises(PlanRefused, match="more than --max-changes 2") as refused:
        run_apply(sim, tmp_path, max_changes=2)
    assert refused.value.plan.planned == len(flagged(tmp_path)) > 2
    assert sim.changes == [] and not (tmp_path / "apply_journal.csv").exists()


def test_cloud_one_needs_undocumented_actions_allowed_before_any_request(
    cli, start_sim, tmp_path: Path
) -> None:
    sim = start_sim(
        build_tenant(seed=114, accounts=10), cloudone=build_cloudone_tenant(seed=113, users=20)
    )
    audit_then(cli, sim, tmp_path, platform="cloudone")
    requests = sim.stats.requests
    with pytest.raises(ConfigError, match="documents no API to disable or delete users"):
        run_apply(sim, tmp_path, platform="cloudone", action="delete")
    assert sim.stats.requests == requests and sim.changes == []


class Terminal(io.StringIO):
    """Standard input that is a terminal: someone who can answer the prompt."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("word", "code"), [("delete 1", 2), ("yes", 2), ("", 2), (None, 0)])
def test_delete_on_a_terminal_asks_for_the_count_typed_back(
    cli, small, start_sim, tmp_path: Path, monkeypatch, word: str | None, code: int
) -> None:
    sim = start_sim(small)
    apply = audit_then(cli, sim, tmp_path)
    count = len(flagged(tmp_path))
    assert count > 1
    typed = f"delete {count}" if word is None else word
    monkeypatch.setattr(sys, "stdin", Terminal(typed + "\n"))
    result = apply("--yes", "--action", "delete", "--max-changes", "100")
    assert f"Type 'delete {count}' to delete these accounts" in result.stderr
    assert result.code == code, result.stderr
    if code:
        assert "not confirmed; nothing changed" in result.stderr and sim.changes == []
    else:
        assert len(sim.changes) == count


def test_a_plan_is_carried_out_once_and_only_while_its_locks_are_held(
    cli, small, start_sim, tmp_path: Path
) -> None:
    sim = start_sim(small)
    audit_then(cli, sim, tmp_path)
    request, connect = cleanup_request(sim, tmp_path)
    with prepare(request, connect, dry_run=False) as cleanup:
        assert cleanup.carry_out().complete
        with pytest.raises(ConfigError, match="carried out already"):
            cleanup.carry_out()
    changed = len(sim.changes)
    with prepare(request, connect, dry_run=False) as stale:
        pass
    with pytest.raises(ConfigError, match="locks were released"):
        stale.carry_out()
    assert len(sim.changes) == changed == len(flagged(tmp_path))


def test_a_connection_to_another_platform_than_the_request_names_is_refused(
    cli, small, start_sim, tmp_path: Path
) -> None:
    sim = start_sim(small)
    audit_then(cli, sim, tmp_path)
    request, connect = cleanup_request(sim, tmp_path)
    cloud_one = replace(
        request,
        tenant=replace(request.tenant, platform="cloudone"),
        action="delete",
        allow_undocumented=True,
    )
    with pytest.raises(ConfigError, match="connection is to visionone"):
        run_cleanup(cloud_one, connect)
    assert sim.changes == [] and not (tmp_path / "apply_journal.csv").exists()
