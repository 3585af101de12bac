"""apply against what a careless user or a second terminal does: concurrent applies on one
tenant from different folders, an interrupt while a change is in flight, rows the audit
would not have flagged, a ``--days`` shorter than the audit's, malformed rows.

Every scenario runs against the simulator over loopback HTTP and ends with the checks of
:class:`tests.test_apply_adversarial.Scene` (no active account changed, an enabled
administrator remains), made from the simulator's own records.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from login_audit.actions import ApplyInterrupted
from login_audit.archive import open_archive
from login_audit.cleanup import ApplyPlan, ApplyRequest, ApplyResult, prepare, run_cleanup
from login_audit.errors import ArchiveBusyError, ConfigError
from login_audit.locks import default_state_dir, file_lock, tenant_lock_path
from login_audit.models import Policy
from login_audit.simulator import build_tenant
from login_audit.simulator.tenant import Tenant
from tests.conftest import REPO
from tests.test_apply_adversarial import (
    ADMIN,
    Scene,
    add_account,
    base_tenant,
    read_rows,
    scene,
    write_csv,
)

pytestmark = pytest.mark.e2e
__all__ = ["scene"]  # the fixture, used by name

FIVE = [f"admin-{n}@corp.example.com" for n in range(1, 6)]


def five_stale_admins(seed: int) -> Tenant:
    """A tenant whose only enabled administrators are five that never signed in."""
    tenant = build_tenant(seed=seed, accounts=20, hard_cases=False)
    for account in tenant.accounts:
        if account.role == ADMIN:
            account.role = "Operator"
    for email in FIVE:
        add_account(tenant, email, role=ADMIN)
    return tenant


def part(s: Scene, folder: Path, users: list[str]) -> Path:
    """A cleanup CSV of ``users`` in ``folder``, with the audit's report beside it."""
    folder.mkdir()
    shutil.copy(s.reports / "audit_report.json", folder / "audit_report.json")
    return write_csv(folder / "f.csv", [[u, ADMIN, "Remove"] for u in users])


def request(s: Scene, source: Path, out: Path, **kw: Any) -> ApplyRequest:
    return ApplyRequest(
        tenant=s.key,
        policy=kw.pop("policy", Policy()),
        source=source,
        output_dir=out,
        max_changes=100,
        **kw,
    )


def cli_apply(s: Scene, source: Path, out: Path, *extra: str) -> Any:
    return s.cli(
        [
            "apply",
            "--base-url",
            s.sim.base_url,
            "--from",
            str(source),
            "--no-archive",
            "--output-dir",
            str(out),
            "--backoff-base",
            "0",
            *extra,
        ],
        env=s.env,
    )


def enabled_admins(s: Scene) -> list[str]:
    return [a["email"] for a in s.sim.accounts if a["role"] == ADMIN and a["status"] == "enabled"]


# -- 1. one apply at a time per tenant, whatever the folders ----------------------------


def test_two_applies_with_their_own_folders_never_disable_every_administrator(
    scene, tmp_path: Path
) -> None:
    """The reported case: ra names three of the five administrators, rb the other two,
    each with its own --output-dir and --no-archive. While the first holds its plan, the
    second is refused before it reads anything; run after it, it keeps the last one."""
    s = scene(five_stale_admins(301))
    s.audit()
    assert set(FIVE) <= set(s.flagged())
    ra = part(s, tmp_path / "ra", FIVE[:3])
    rb = part(s, tmp_path / "rb", FIVE[3:])
    with s.checked():
        with prepare(request(s, ra, tmp_path / "ra"), s.connect, dry_run=False) as first:
            assert first.plan.planned == 3
            before = s.sim.stats.requests
            refused = cli_apply(s, rb, tmp_path / "rb", "--yes")
            assert refused.code == 4, refused.stderr
            assert "another login-audit apply is changing this tenant" in refused.stderr
            assert s.sim.stats.requests == before and s.sim.changes == []
            assert len(first.carry_out().done) == 3
        second = cli_apply(s, rb, tmp_path / "rb", "--yes")
    assert second.code == 0, second.stderr
    assert "the last enabled administrator" in second.stderr
    assert len(enabled_admins(s)) == 1 and len(s.changed() & set(FIVE)) == 4


def test_the_tenant_lock_is_held_whatever_the_journal_folder(scene, tmp_path: Path) -> None:
    s = scene(five_stale_admins(302))
    s.audit()
    source = part(s, tmp_path / "ra", FIVE[:1])
    state = default_state_dir()
    # The same origin written differently (case, a trailing slash) is the same tenant.
    credential = "sha256:" + hashlib.sha256(s.sim.token.encode()).hexdigest()
    lock = tenant_lock_path(state, "visionone", s.sim.base_url.upper() + "/", credential)
    state.mkdir(parents=True)
    before = s.sim.stats.requests
    with file_lock(lock, "held by the test"), pytest.raises(ArchiveBusyError, match="changing"):
        run_cleanup(request(s, source, tmp_path / "elsewhere"), s.connect)
    assert s.sim.stats.requests == before and s.sim.changes == []
    # A dry run takes no lock: the plan can be looked at while another apply acts.
    with (
        file_lock(lock, "held by the test"),
        prepare(request(s, source, tmp_path / "x"), s.connect) as looked,
    ):
        assert looked.plan.planned == 1
    assert len(run_cleanup(request(s, source, tmp_path / "ra"), s.connect).done) == 1
    assert state.stat().st_mode & 0o777 == 0o700
    assert lock.stat().st_mode & 0o777 == 0o600


def test_tenant_locks_are_per_platform_origin_and_credential(tmp_path: Path) -> None:
    def key(platform: str, url: str, credential: str) -> Path:
        return tenant_lock_path(tmp_path, platform, url, credential)

    same = key("visionone", "https://api.eu.xdr.trendmicro.com", "sha256:aa")
    assert same == key("visionone", "https://API.eu.xdr.trendmicro.com:443/", "sha256:aa")
    others = {
        key("visionone", "https://api.xdr.trendmicro.com", "sha256:aa"),
        key("visionone", "https://api.eu.xdr.trendmicro.com", "sha256:bb"),
        key("cloudone", "https://api.eu.xdr.trendmicro.com", "sha256:aa"),
        key("visionone", "http://api.eu.xdr.trendmicro.com", "sha256:aa"),
    }
    assert same not in others and len(others) == 4
    assert same.parent == tmp_path and "trendmicro" not in same.name


def test_two_tenant_names_for_one_tenant_meet_at_one_lock(scene, tmp_path: Path) -> None:
    """--tenant is a local label: two applies that give one tenant two names (and their
    own folders, no archive) still never run at once; the lock is the credential's."""
    s = scene(five_stale_admins(308))
    s.audit()
    ra = part(s, tmp_path / "ra", FIVE[:3])
    rb = part(s, tmp_path / "rb", FIVE[3:])
    (tmp_path / "rb" / "audit_report.json").unlink()  # no report to name its tenant
    renamed = replace(request(s, rb, tmp_path / "rb"), tenant=replace(s.key, name="other"))
    with prepare(request(s, ra, tmp_path / "ra"), s.connect, dry_run=False) as first:
        with pytest.raises(ArchiveBusyError, match="changing this tenant"):
            run_cleanup(renamed, s.connect)
        assert s.sim.changes == []
        assert len(first.carry_out().done) == 3


def test_a_report_made_for_another_tenant_is_refused(scene, tmp_path: Path) -> None:
    s = scene(five_stale_admins(309))
    s.audit()
    source = part(s, tmp_path / "ra", FIVE[:1])
    report_path = tmp_path / "ra" / "audit_report.json"
    report = json.loads(report_path.read_text())
    for change, says in (
        ({"tenant": "someone-else"}, "named 'someone-else'"),
        ({"tenant": None, "baseUrl": "https://api.eu.xdr.trendmicro.com"}, "at https://api.eu"),
        ({"tenant": None, "platform": "cloudone"}, "for a cloudone tenant"),
    ):
        report_path.write_text(json.dumps({**report, "run": {**report["run"], **change}}))
        with pytest.raises(ConfigError, match="does not belong to this tenant") as caught:
            run_cleanup(request(s, source, tmp_path / "out"), s.connect)
        assert says in str(caught.value)
    assert s.sim.changes == []
    report_path.write_text(json.dumps(report))
    assert len(run_cleanup(request(s, source, tmp_path / "out"), s.connect).done) == 1


def test_a_state_folder_that_is_a_link_is_refused(scene, tmp_path: Path) -> None:
    s = scene(five_stale_admins(303))
    s.audit()
    source = part(s, tmp_path / "ra", FIVE[:1])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link = tmp_path / "state"
    link.symlink_to(elsewhere)
    with pytest.raises(ConfigError, match="symbolic link"):
        run_cleanup(request(s, source, tmp_path / "ra", state_dir=link), s.connect)
    assert s.sim.changes == [] and list(elsewhere.iterdir()) == []


# -- 2. the journal is written ahead --------------------------------------------------------


def interrupt_at_change(s: Scene, number: int, deliver: Callable[[], None]) -> list[Any]:
    """Call ``deliver`` when the ``number``-th change request arrives, before it is
    answered; the list receives the thread serving it (join it to see the change made)."""
    seen: list[str] = []
    serving: list[Any] = []

    def hook(path: str) -> None:
        if path.startswith("/v3.0/iam/accounts/"):
            seen.append(path)
            if len(seen) == number:
                serving.append(threading.current_thread())
                deliver()

    s.sim.on_request = hook
    return serving


@contextlib.contextmanager
def ctrl_c_at_change(s: Scene, number: int) -> Iterator[list[Any]]:
    """Ctrl-C in this (the main) thread when the ``number``-th change request arrives: the
    request is then in flight, and the vendor makes the change all the same."""
    main = threading.get_ident()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield interrupt_at_change(s, number, lambda: signal.pthread_kill(main, signal.SIGINT))
    finally:
        signal.signal(signal.SIGINT, previous)


def changed_ids(s: Scene, serving: list[Any]) -> set[str]:
    for thread in serving:
        thread.join(timeout=30)  # the change in flight, made once its client is gone
    return {account_id for _, account_id in s.sim.changes}


def test_ctrl_c_while_a_change_is_in_flight_leaves_it_started_in_the_journal(
    scene, tmp_path: Path
) -> None:
    s = scene(base_tenant(304))
    s.audit()
    flagged = s.flagged()
    assert len(flagged) >= 3
    with ctrl_c_at_change(s, 2) as serving, pytest.raises(ApplyInterrupted) as caught:
        s.run()
    rows = s.journal(started=True)
    by_outcome: dict[str, list[str]] = {}
    for row in rows:
        by_outcome.setdefault(row["Outcome"], []).append(row["UserId"])
    first, second, rest = flagged[0], flagged[1], flagged[2:]
    assert [r["Outcome"] for r in rows[:3]] == ["started", "done", "started"]
    assert by_outcome["done"] == [first] and by_outcome["started"] == [first, second]
    assert by_outcome["not-run"] == rest
    assert second in str(caught.value) and caught.value.exit_code == 130
    # Every account the vendor changed is in the journal.
    journalled = {r["AccountId"] for r in rows}
    assert changed_ids(s, serving) <= journalled


def test_ctrl_c_with_json_names_the_account_to_check(scene, tmp_path: Path) -> None:
    s = scene(base_tenant(305))
    s.audit()
    flagged = s.flagged()
    with ctrl_c_at_change(s, 1):
        result = s.apply("--yes", "--json")
    assert result.code == 130, result.stderr
    doc = json.loads(result.stdout)
    assert doc["exitCode"] == 130 and flagged[0] in doc["error"]
    assert doc["checkAccounts"] == [flagged[0]] and doc["carriedOut"] is True
    assert doc["counts"] == {"started": 1, "not-run": len(flagged) - 1}
    assert f"check {flagged[0]}" in result.stderr and "Traceback" not in result.stderr


def test_sigterm_kills_the_process_and_the_journal_still_names_the_change(
    scene, tmp_path: Path, process_env
) -> None:
    """A real process stopped by SIGTERM mid-request unwinds as Ctrl-C does: exit 143, the
    change in flight stays started, the rows not reached are journalled as not run."""
    s = scene(base_tenant(306))
    s.audit()
    flagged = s.flagged()
    out = tmp_path / "proc"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "login_audit",
            "apply",
            "--base-url",
            s.sim.base_url,
            "--from",
            str(s.csv),
            "--no-archive",
            "--output-dir",
            str(out),
            "--yes",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=process_env(TMV1_TOKEN=s.sim.token),
        cwd=REPO,
    )
    serving = interrupt_at_change(s, 2, lambda: proc.send_signal(signal.SIGTERM))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert b"login-audit: error: terminated (SIGTERM) while carrying out the plan" in err
    rows = read_rows(out / "apply_journal.csv")
    last = {r["UserId"]: r["Outcome"] for r in rows}
    assert last[flagged[1]] == "started" and f"check {flagged[1]}".encode() in err
    assert all(last[user] == "not-run" for user in flagged[2:])
    assert changed_ids(s, serving) <= {r["AccountId"] for r in rows}


# -- 3. the audit's own rules ---------------------------------------------------------------


def test_a_hand_added_row_of_a_new_account_is_given_the_audit_grace(scene, tmp_path: Path) -> None:
    s = scene(base_tenant(307))
    archive = str(tmp_path / "a.sqlite3")
    base = ["--base-url", s.sim.base_url, "--archive", archive, "--output-dir", str(s.reports)]
    assert s.cli(["audit", *base], env=s.env).code == 0

    def create(number: int) -> str:
        email = f"new.{number}@corp.example.com"
        s.sim.add_account({**s.sim.accounts[-1], "id": f"acct-new-{number}", "email": email})
        return email

    # Created between two audits: the second sees it appear and gives it the grace.
    between = create(1)
    assert s.cli(["audit", *base], env=s.env).code == 0
    assert between not in s.flagged()
    # Created after the last audit: in no snapshot of the archive.
    after = create(2)
    roles = {a["email"]: a["role"] for a in s.sim.accounts}
    rows = [[u, roles[u], "Remove"] for u in [*s.flagged(), between, after]]
    hand = write_csv(tmp_path / "hand.csv", rows)
    store = open_archive(archive)
    try:
        # The grace of the command line's default (--days); a library Policy has none.
        result = s.run(source=hand, archive=store, policy=Policy(grace_days=90))
    finally:
        store.close()
    assert isinstance(result, ApplyResult)
    reasons = {c.user_id: (c.outcome, c.reason) for c in result.changes}
    assert reasons[between][0] == "skipped" and "grace period" in reasons[between][1]
    assert reasons[after][0] == "skipped" and "never seen it" in reasons[after][1]
    assert not {between, after} & s.changed() and s.changed()


def test_without_archive_or_report_no_row_is_acted_on(scene, tmp_path: Path) -> None:
    s = scene(base_tenant(308))
    s.audit()
    bare = tmp_path / "bare"
    bare.mkdir()
    source = shutil.copy(s.csv, bare / "f.csv")
    result = s.run(source=Path(source), dry_run=True, policy=Policy(grace_days=90))
    assert isinstance(result, ApplyPlan) and result.planned == 0
    assert all("no archive has seen this tenant" in c.reason for c in result.changes)
    # The command line gives --days of grace, as the audit does.
    shown = s.apply("--json", source=Path(source))
    assert shown.code == 0 and json.loads(shown.stdout)["counts"] == {"skipped": len(s.flagged())}


def test_saml_accounts_the_audit_calls_unknown_are_not_changed(scene, tmp_path: Path) -> None:
    tenant = base_tenant(309)
    saml = add_account(tenant, "saml.user@corp.example.com", auth_type="saml")
    s = scene(tenant, behaviours=("sso-elsewhere",))
    where = ["--base-url", s.sim.base_url, "--no-archive", "--output-dir", str(s.reports)]
    audit = s.cli(["audit", *where], env=s.env)
    assert audit.code == 4 and "saml accounts not judged" in audit.stderr
    hand = write_csv(tmp_path / "hand.csv", [[saml.email, "Operator", "Remove"]])
    result = s.run(source=hand, dry_run=True, policy=Policy(grace_days=0))
    assert isinstance(result, ApplyPlan) and result.planned == 0
    (change,) = result.changes
    assert "would call it unknown" in change.reason and "saml sign-ins" in change.reason
    # Told to trust the empty evidence, as the audit can be, apply may act on it.
    trusting = Policy(grace_days=0, trust_empty_evidence=("saml",))
    assert s.run(source=hand, dry_run=True, policy=trusting).planned == 1  # type: ignore[union-attr]


def test_days_shorter_than_the_audit_are_refused(scene, tmp_path: Path) -> None:
    tenant = base_tenant(310)
    admin = add_account(tenant, "recent.admin@corp.example.com", role=ADMIN)
    s = scene(tenant)
    s.audit()
    s.logon(admin.email, datetime.now(timezone.utc) - timedelta(days=3))
    before = s.sim.stats.requests
    result = s.apply("--days", "1", "--yes")
    assert (
        result.code == 2
        and "--days 1" in result.stderr
        and "90 days of the audit" in (result.stderr)
    )
    assert "Traceback" not in result.stderr and s.sim.stats.requests == before
    assert (
        s.cli(
            ["apply", "--from", str(s.csv), "--no-archive"],
            env={
                **s.env,
                "LOGIN_AUDIT_DAYS": "30",
                "LOGIN_AUDIT_BASE_URL": s.sim.base_url,
            },
        ).code
        == 2
    )
    # A bare CSV: the audit's days are unknown, so below the default is refused.
    bare = tmp_path / "bare"
    bare.mkdir()
    lone = Path(shutil.copy(s.csv, bare / "f.csv"))
    result = s.apply("--days", "30", source=lone)
    assert result.code == 2 and "unknown" in result.stderr and "--days 90" in result.stderr
    assert s.changed() == set()


# -- 4. smaller refusals ------------------------------------------------------------------


def test_a_missing_csv_creates_no_archive(cli, tmp_path: Path) -> None:
    archive = tmp_path / "a.sqlite3"
    result = cli(["apply", "--from", str(tmp_path / "missing.csv"), "--archive", str(archive)])
    assert result.code == 2 and "missing.csv" in result.stderr
    assert not archive.exists()
    default = tmp_path / "xdg-data"
    result = cli(["apply", "--from", str(tmp_path / "missing.csv")])
    assert result.code == 2 and not default.exists()
    # A named pipe with no writer would block the run forever: refused at once.
    os.mkfifo(tmp_path / "pipe.csv")
    result = cli(["apply", "--from", str(tmp_path / "pipe.csv"), "--no-archive"])
    assert result.code == 2 and "not a regular file" in result.stderr


def test_every_json_exit_of_apply_is_one_document_with_exit_code(scene) -> None:
    s = scene(base_tenant(311))
    s.audit()
    dry = s.apply("--json")
    assert dry.code == 0 and json.loads(dry.stdout)["exitCode"] == 0
    refused = s.apply("--json", "--yes", "--max-changes", "1")
    doc = json.loads(refused.stdout)
    assert refused.code == 2 and doc["exitCode"] == 2 and "--max-changes" in doc["error"]
    done = s.apply("--json", "--yes")
    doc = json.loads(done.stdout)
    assert done.code == 0 and doc["exitCode"] == 0 and doc["error"] is None
    mixed = s.apply("--json", "--confirm-delete")
    doc = json.loads(mixed.stdout)
    assert mixed.code == 2 and doc["exitCode"] == 2 and "--confirm-delete" in doc["error"]


def test_rows_by_id_or_not_exactly_remove_are_refused_with_the_reason(
    scene, tmp_path: Path
) -> None:
    s = scene(base_tenant(312))
    s.audit()
    flagged = s.flagged()
    by_email = {a["email"]: a["id"] for a in s.sim.accounts}
    with (s.csv).open("w", newline="") as handle:
        handle.write("UserId,RoleName,RequestType\r\n")
        handle.write(f"{by_email[flagged[0]]},,Remove\r\n")
        handle.write(f"{flagged[1]},,Remove \r\n")
        handle.write(f"{flagged[2]},,Remove,extra\r\n")
        handle.write(f"{flagged[3]},,remove\r\n")
    result = s.run(dry_run=True)
    assert isinstance(result, ApplyPlan) and result.planned == 0
    reasons = {c.user_id: c.reason for c in result.changes}
    assert "matched by email only" in reasons[by_email[flagged[0]]]
    assert "is not 'Remove'" in reasons[flagged[1]] and "'Remove '" in reasons[flagged[1]]
    assert "4 cells, not 3" in reasons[flagged[2]]
    assert "is not 'Remove'" in reasons[flagged[3]]
    assert os.listdir(s.root) and s.sim.changes == []
