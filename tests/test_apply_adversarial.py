"""apply attacked: tampered CSVs, concurrent runs, late logons, vendor refusals, links.

Every test runs the apply workflow (the library, or the real CLI in-process where its
output is the point) against the simulator over loopback HTTP and ends with the same two
checks, made from the simulator's own records rather than from login-audit's analysis: no
account that logged on successfully within the threshold was changed, and an enabled
administrator remains.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from login_audit.archive import open_archive
from login_audit.archive.base import Archive, TenantKey
from login_audit.cleanup import ApplyPlan, ApplyRequest, ApplyResult, prepare
from login_audit.config import HttpSettings, Secret, resolve_target
from login_audit.errors import ArchiveBusyError, ConfigError, IncompleteDataError
from login_audit.locks import file_lock
from login_audit.models import Policy
from login_audit.platforms import open_client
from login_audit.platforms.base import Platform
from login_audit.simulator import FaultConfig, Simulator, build_cloudone_tenant, build_tenant
from login_audit.simulator.tenant import SimAccount, Tenant
from tests.conftest import CliResult

pytestmark = pytest.mark.e2e

ADMIN = "Master Administrator"
CONTROL = {chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]}


Cli = Callable[..., CliResult]


def successful_logons(sim: Simulator, since: datetime) -> set[str]:
    """Lower-case emails and ids with a successful logon at or after ``since``: the oracle."""
    active: set[str] = set()
    for when, item in zip(sim.tenant.times, sim.tenant.records, strict=True):
        if when < since or item.get("activity") != "Log on":
            continue
        if item.get("category") != "Logon and Logoff" or item.get("result") != "Successful":
            continue
        for key in ("loggedUserMailAddress", "loggedUser", "loggedUserId"):
            if item.get(key):
                active.add(str(item[key]).lower())
    return active


class Scene:
    """One simulated Vision One tenant, its audit's reports, and apply runs against it."""

    def __init__(self, cli: Cli, sim: Simulator, root: Path) -> None:
        self.cli, self.sim, self.root = cli, sim, root
        self.reports = root / "reports"
        self.out = root / "out"
        self.csv = self.reports / "filtered_accounts_report.csv"
        self.env = {"TMV1_TOKEN": sim.token}
        self.platform = "visionone"

    @property
    def key(self) -> TenantKey:
        return TenantKey(self.platform, self.sim.base_url.split("//")[1], "default")

    @contextlib.contextmanager
    def connect(self, max_attempts: int = 3) -> Iterator[Platform]:
        target = resolve_target(self.platform, None, self.sim.base_url, env={})
        settings = HttpSettings(max_attempts=max_attempts, backoff_base=0)
        with open_client(target, Secret(self.sim.token), settings) as platform:
            yield platform

    def run(
        self,
        *,
        dry_run: bool = False,
        source: Path | None = None,
        archive: Archive | None = None,
        policy: Policy | None = None,
        max_attempts: int = 3,
        **request: Any,
    ) -> ApplyResult | ApplyPlan:
        """apply through the library: the plan (``dry_run``) or what carrying it out did."""
        wanted = ApplyRequest(
            tenant=self.key,
            policy=policy or Policy(),
            source=None if archive is not None and source is None else source or self.csv,
            output_dir=self.out,
            max_changes=request.pop("max_changes", 100),
            **request,
        )
        opener = functools.partial(self.connect, max_attempts)
        # The oracle reads the Vision One tenant of the simulator; Cloud One has its own.
        checked = self.checked() if self.platform == "visionone" else contextlib.nullcontext()
        with checked, prepare(wanted, opener, archive, dry_run=dry_run) as cleanup:
            return cleanup.plan if dry_run else cleanup.carry_out()

    def audit(self) -> CliResult:
        result = self.cli(
            [
                "audit",
                "--base-url",
                self.sim.base_url,
                "--output-dir",
                str(self.reports),
                "--no-archive",
            ],
            env=self.env,
        )
        assert result.code == 0, result.stderr
        return result

    def apply(self, *extra: str, source: Path | None = None) -> CliResult:
        """apply through the command line, with ``extra`` flags."""
        with self.checked():
            return self.cli(
                [
                    "apply",
                    "--base-url",
                    self.sim.base_url,
                    "--from",
                    str(source or self.csv),
                    "--output-dir",
                    str(self.out),
                    "--no-archive",
                    "--backoff-base",
                    "0",
                    "--max-changes",
                    "100",
                    *extra,
                ],
                env=self.env,
            )

    @contextlib.contextmanager
    def checked(self) -> Iterator[None]:
        """Check the invariants after the block, whatever it raised."""
        now = datetime.now(timezone.utc)
        before = {a["id"]: dict(a) for a in self.sim.accounts}
        active = successful_logons(self.sim, now - timedelta(days=90))
        changes = len(self.sim.changes)
        try:
            yield
        finally:
            self.check_invariants(before, active, changes)

    def check_invariants(
        self, before: dict[str, dict[str, Any]], active: set[str], changes: int
    ) -> None:
        """No account with a recent logon changed; an enabled administrator remains."""
        for _, account_id in self.sim.changes[changes:]:
            account = before[account_id]
            assert account["email"].lower() not in active, f"active {account['email']} changed"
            assert account_id.lower() not in active, f"active {account_id} changed"
        admins = [a for a in self.sim.accounts if a["role"] == ADMIN and a["status"] == "enabled"]
        assert admins, "no enabled administrator is left"

    def changed(self) -> set[str]:
        """Emails of the accounts changed so far."""
        ids = {account_id for _, account_id in self.sim.changes}
        return {a.email for a in self.sim.tenant.accounts if a.id in ids} | {
            a["email"] for a in self.sim.accounts if a["id"] in ids
        }

    def flagged(self) -> list[str]:
        return [r["UserId"] for r in read_rows(self.csv)]

    def journal(self, *, started: bool = False) -> list[dict[str, str]]:
        """The journal's lines; without ``started``, only each row's final outcome."""
        rows = read_rows(self.out / "apply_journal.csv")
        return rows if started else [r for r in rows if r["Outcome"] != "started"]

    def logon(self, email: str, when: datetime) -> None:
        self.sim.add_records(
            [
                (
                    when,
                    {
                        "loggedDateTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "loggedUser": "Display Name",
                        "loggedUserMailAddress": email,
                        "category": "Logon and Logoff",
                        "activity": "Log on",
                        "result": "Successful",
                    },
                )
            ]
        )


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: list[list[str]], *, bom: bool = False, crlf: bool = True) -> Path:
    with path.open("w", newline="", encoding="utf-8-sig" if bom else "utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\r\n" if crlf else "\n")
        writer.writerow(["UserId", "RoleName", "RequestType"])
        writer.writerows(rows)
    return path


def add_account(tenant: Tenant, email: str, role: str = "Operator", **kw: Any) -> SimAccount:
    account = SimAccount(
        id=f"acct-{len(tenant.accounts):05d}",
        email=email,
        role=role,
        auth_type=kw.get("auth_type", "local"),
        status=kw.get("status", "enabled"),
        klass=kw.get("klass", "no-login"),
    )
    tenant.accounts.append(account)
    return account


def base_tenant(seed: int) -> Tenant:
    """A small tenant with exactly two administrators, both active."""
    tenant = build_tenant(seed=seed, accounts=30, hard_cases=False)
    for account in tenant.accounts:
        if account.role == ADMIN:
            account.role = "Operator"
    admins = [a for a in tenant.accounts if a.klass == "active"][:2]
    for account in admins:
        account.role = ADMIN
    return tenant


@pytest.fixture
def scene(cli: Cli, start_sim, tmp_path: Path) -> Callable[..., Scene]:
    def make(tenant: Tenant, **kwargs: Any) -> Scene:
        return Scene(cli, start_sim(tenant, **kwargs), tmp_path)

    return make


# -- tampered CSVs ------------------------------------------------------------------------


def test_added_active_accounts_are_never_changed_even_with_a_forged_report(scene) -> None:
    tenant = base_tenant(201)
    five = add_account(tenant, "five@corp.example.com", klass="active")
    ten = add_account(tenant, "ten@corp.example.com", klass="active")
    s = scene(tenant)
    now = datetime.now(timezone.utc)
    s.logon(five.email, now - timedelta(days=5))
    s.logon(ten.email, now - timedelta(days=10))
    s.audit()
    assert five.email not in s.flagged() and ten.email not in s.flagged()
    # The attacker edits both the CSV and the report beside it.
    rows = [[r["UserId"], r["RoleName"], "Remove"] for r in read_rows(s.csv)]
    rows += [[five.email, "Operator", "Remove"], [ten.email, "Operator", "Remove"]]
    write_csv(s.csv, rows)
    report = json.loads((s.reports / "audit_report.json").read_text())
    for item in report["accounts"]:
        if item["userId"] in (five.email, ten.email):
            item.update(remove=True, finding="no-login")
    (s.reports / "audit_report.json").write_text(json.dumps(report))

    s.run()
    assert not {five.email, ten.email} & s.changed()
    reasons = {r["UserId"]: r["Reason"] for r in s.journal()}
    assert "within the last 90 days" in reasons[five.email]
    assert "within the last 90 days" in reasons[ten.email]
    assert s.changed() == set(s.flagged()) - {five.email, ten.email}


def test_rows_missing_from_the_report_beside_the_csv_are_skipped(scene) -> None:
    tenant = base_tenant(202)
    stale = add_account(tenant, "stale-but-unreported@corp.example.com")
    s = scene(tenant)
    s.audit()
    report = json.loads((s.reports / "audit_report.json").read_text())
    report["accounts"] = [a for a in report["accounts"] if a["userId"] != stale.email]
    (s.reports / "audit_report.json").write_text(json.dumps(report))
    s.run()
    assert stale.email not in s.changed()
    row = next(r for r in s.journal() if r["UserId"] == stale.email)
    assert row["Outcome"] == "skipped" and "not on the removal list" in row["Reason"]


def test_a_quoted_email_disables_only_its_own_account(scene) -> None:
    tenant = base_tenant(203)
    dave = add_account(tenant, "dave@corp.example.com", klass="active")
    quoted = add_account(tenant, "'dave@corp.example.com")
    formula = add_account(tenant, '=HYPERLINK("http://evil.example","x")@corp.example.com')
    s = scene(tenant)
    s.logon(dave.email, datetime.now(timezone.utc) - timedelta(days=3))
    s.audit()
    s.run()
    changed = s.changed()
    assert quoted.email in changed and formula.email in changed
    assert dave.email not in changed
    # The journal is inert in a spreadsheet and reads back to the same emails.
    raw = (s.out / "apply_journal.csv").read_text(encoding="utf-8")
    assert "\n=HYPERLINK" not in raw and ",=HYPERLINK" not in raw
    users = {r["UserId"] for r in s.journal()}
    assert "'" + formula.email in users and "''dave@corp.example.com" in users


def test_bom_crlf_case_and_duplicates_change_each_account_once(scene, tmp_path: Path) -> None:
    tenant = base_tenant(204)
    s = scene(tenant)
    s.audit()
    users = s.flagged()
    roles = {r["UserId"]: r["RoleName"] for r in read_rows(s.csv)}
    rows = [[u, roles[u], "Remove"] for u in users if u not in users[2:4]]
    rows += [[users[0], roles[users[0]], "Remove"], [users[1].upper(), roles[users[1]], "Remove"]]
    rows += [[users[2], roles[users[2]], "Keep"], [users[3], roles[users[3]], "remove"]]
    tampered = write_csv(tmp_path / "reports" / "tampered.csv", rows, bom=True)
    result = s.apply("--yes", source=tampered)
    assert result.code == 0, result.stderr
    assert "RequestType is not 'Remove'" in result.stderr
    ids = [account_id for _, account_id in s.sim.changes]
    assert len(ids) == len(set(ids))
    assert s.changed() == set(users) - {users[2], users[3]}
    assert sum("a repeated row" in r["Reason"] for r in s.journal()) == 2


def test_an_account_replaced_or_changed_since_the_audit_is_skipped(scene) -> None:
    tenant = base_tenant(205)
    replaced = add_account(tenant, "replaced@corp.example.com")
    promoted = add_account(tenant, "promoted@corp.example.com")
    s = scene(tenant)
    s.audit()
    with s.sim.lock:
        for account in s.sim.accounts:
            if account["email"] == replaced.email:
                account["id"] = "acct-new-one"
            if account["email"] == promoted.email:
                account["role"] = ADMIN
    s.run()
    reasons = {r["UserId"]: r["Reason"] for r in s.journal()}
    assert "a different account now" in reasons[replaced.email]
    assert "role is 'Master Administrator', not 'Operator'" in reasons[promoted.email]
    assert not {replaced.email, promoted.email} & s.changed()


def test_a_disabled_account_re_enabled_since_the_audit_is_not_deleted(scene) -> None:
    tenant = base_tenant(219)
    dormant = add_account(tenant, "dormant@corp.example.com", status="disabled")
    s = scene(tenant)
    result = s.cli(
        [
            "audit",
            "--base-url",
            s.sim.base_url,
            "--output-dir",
            str(s.reports),
            "--no-archive",
            "--include-disabled",
        ],
        env=s.env,
    )
    assert result.code == 0 and dormant.email in s.flagged()
    with s.sim.lock:
        for account in s.sim.accounts:
            if account["email"] == dormant.email:
                account["status"] = "enabled"
    s.run(action="delete", policy=Policy(include_disabled=True))
    row = next(r for r in s.journal() if r["UserId"] == dormant.email)
    assert row["Outcome"] == "skipped" and row["Reason"] == "re-enabled since the audit"
    assert dormant.email not in s.changed()


def test_case_differences_match_only_in_ascii(scene, tmp_path: Path) -> None:
    tenant = base_tenant(220)
    strasse = add_account(tenant, "strasse@corp.example.com")
    s = scene(tenant)
    s.audit()
    rows = [["STRASSE@corp.example.com", "Operator", "Remove"]]
    rows.append(["straße@corp.example.com", "Operator", "Remove"])
    s.run(source=write_csv(tmp_path / "case.csv", rows))
    assert s.changed() == {strasse.email}
    row = next(r for r in s.journal() if r["UserId"] == "straße@corp.example.com")
    assert row["Reason"] == "no longer exists"


def test_a_login_between_audit_and_apply_is_the_evidence_in_json(scene) -> None:
    tenant = base_tenant(206)
    s = scene(tenant)
    s.audit()
    target = s.flagged()[0]
    when = datetime.now(timezone.utc).replace(microsecond=0)
    s.logon(target, when)
    result = s.apply("--json")
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    entry = next(a for a in doc["accounts"] if a["userId"] == target)
    assert entry["outcome"] == "skipped"
    assert entry["evidence"]["lastSuccessfulLogon"] == when.strftime("%Y-%m-%dT%H:%M:%SZ")
    planned = [a for a in doc["accounts"] if a["outcome"] == "planned"]
    assert planned and all(a["audit"]["finding"] in ("no-login", "inactive") for a in planned)
    assert doc["carriedOut"] is False and s.sim.changes == []
    done = s.apply("--yes", "--json")
    results = json.loads(done.stdout)
    assert {a["userId"] for a in results["accounts"] if a["outcome"] == "done"} == {
        a["userId"] for a in planned
    }
    assert target not in s.changed()


# -- administrators and concurrency -------------------------------------------------------


def two_stale_admins(seed: int) -> Tenant:
    tenant = build_tenant(seed=seed, accounts=20, hard_cases=False)
    for account in tenant.accounts:
        if account.role == ADMIN:
            account.role = "Operator"
    add_account(tenant, "admin-a@corp.example.com", role=ADMIN)
    add_account(tenant, "admin-b@corp.example.com", role=ADMIN)
    return tenant


def test_two_applies_naming_the_last_two_administrators_keep_one(scene, tmp_path) -> None:
    s = scene(two_stale_admins(207))
    s.audit()
    assert {"admin-a@corp.example.com", "admin-b@corp.example.com"} <= set(s.flagged())
    first = write_csv(tmp_path / "a.csv", [["admin-a@corp.example.com", ADMIN, "Remove"]])
    second = write_csv(tmp_path / "b.csv", [["admin-b@corp.example.com", ADMIN, "Remove"]])
    s.run(source=first)
    assert s.changed() == {"admin-a@corp.example.com"}
    result = s.run(source=second)
    assert isinstance(result, ApplyResult) and result.complete and not result.done
    assert s.changed() == {"admin-a@corp.example.com"}
    row = s.journal()[-1]
    assert row["Outcome"] == "skipped" and "last enabled administrator" in row["Reason"]


def test_apply_refuses_while_another_holds_the_journal_lock(scene) -> None:
    s = scene(two_stale_admins(208))
    s.audit()
    s.out.mkdir()
    requests = s.sim.stats.requests
    busy = "another login-audit apply keeps its journal"
    lock = s.out / "apply_journal.csv.lock"
    with file_lock(lock, "held by the test"), pytest.raises(ArchiveBusyError, match=busy):
        s.run()
    # Refused before listing anything: the other run decides alone.
    assert s.sim.stats.requests == requests and s.sim.changes == []


def test_apply_refuses_while_the_tenant_is_locked_in_the_archive(scene, tmp_path) -> None:
    s = scene(two_stale_admins(209))
    archive = str(tmp_path / "archive.sqlite3")
    base = ["--base-url", s.sim.base_url, "--archive", archive, "--output-dir", str(s.out)]
    assert s.cli(["audit", *base], env=s.env).code == 0
    store = open_archive(archive)
    tenant = store.tenant_id(TenantKey("visionone", s.sim.base_url.split("//")[1], "default"))
    entries = store.last_audit(tenant)
    assert entries is not None and all(e.account_id for e in entries[3])
    requests = s.sim.stats.requests
    runner = open_archive(archive)
    with store.lock(tenant), pytest.raises(ArchiveBusyError, match="another login-audit process"):
        s.run(archive=runner)
    store.close()
    assert s.sim.stats.requests == requests and s.sim.changes == []
    s.run(archive=runner)
    runner.close()
    admins = {"admin-a@corp.example.com", "admin-b@corp.example.com"}
    assert len(s.changed() & admins) == 1


# -- vendor refusals on PATCH and DELETE --------------------------------------------------


@pytest.mark.parametrize("action", ["disable", "delete"])
@pytest.mark.parametrize(
    ("fault", "code", "first"),
    [("409", 4, "failed"), ("503", 4, "failed"), ("404", 0, "skipped"), ("lost-reply", 0, "done")],
)
def test_vendor_refusals_on_changes(scene, action, fault, code, first) -> None:
    faults = FaultConfig(rate=1.0, kinds=(fault,), paths=("/v3.0/iam/accounts/",), limit=1)
    if fault == "503":
        faults = FaultConfig(rate=1.0, kinds=(fault,), paths=("/v3.0/iam/accounts/",))
    s = scene(base_tenant(210), faults=faults)
    s.audit()
    result = s.run(action=action, max_attempts=2)
    assert isinstance(result, ApplyResult)
    rows, flagged = s.journal(), set(s.flagged())
    assert [r["UserId"] for r in rows] == s.flagged()
    assert result.complete is (code == 0)
    if fault in ("409", "503"):
        assert rows[0]["Outcome"] == "failed" and f"HTTP {fault}" in rows[0]["Reason"]
        assert {r["Outcome"] for r in rows[1:]} == {"not-run"}
        assert s.sim.changes == []
    elif fault == "404":
        assert rows[0]["Outcome"] == "skipped" and "HTTP 404" in rows[0]["Reason"]
        assert s.changed() == flagged - {rows[0]["UserId"]}
    else:
        # The change was made but its answer lost: the retry finds it made.
        assert s.changed() == flagged
        assert rows[0]["Outcome"] == ("done" if action == "disable" else "skipped")


# -- files --------------------------------------------------------------------------------


def test_a_symlinked_journal_is_refused_before_any_change(scene, tmp_path: Path) -> None:
    s = scene(base_tenant(211))
    s.audit()
    s.out.mkdir()
    target = tmp_path / "victim.txt"
    target.write_text("precious\n")
    (s.out / "apply_journal.csv").symlink_to(target)
    with pytest.raises(ConfigError, match="symbolic link"):
        s.run()
    assert target.read_text() == "precious\n" and s.sim.changes == []
    (s.out / "apply_journal.csv").unlink()
    os.link(target, s.out / "apply_journal.csv")
    with pytest.raises(ConfigError, match="hard links"):
        s.run()
    assert target.read_text() == "precious\n" and s.sim.changes == []


def test_the_journal_records_tenant_finding_and_outcome(scene) -> None:
    s = scene(base_tenant(212))
    s.audit()
    s.run()
    rows = s.journal(started=True)
    assert rows and (s.out / "apply_journal.csv").stat().st_mode & 0o777 == 0o600
    # Write-ahead: each change is journalled as started before its request, then done.
    assert [r["Outcome"] for r in rows] == ["started", "done"] * (len(rows) // 2)
    assert [r["UserId"] for r in rows[::2]] == [r["UserId"] for r in rows[1::2]]
    for row in rows:
        assert row["Tenant"] == f"visionone/{s.sim.base_url.split('//')[1]}/default"
        assert row["Finding"] in ("no-login", "inactive") and row["FindingReason"]
        assert row["Action"] == "disable" and row["Time"]


# -- terminal safety, plans that cannot or may not go ahead ---------------------------------


def test_control_characters_never_reach_the_terminal(scene) -> None:
    tenant = base_tenant(213)
    evil = add_account(tenant, "\x1b]0;owned\x07eve@corp.example.com", role="Op\x1b[2Jerator")
    s = scene(tenant)
    s.audit()
    result = s.apply("--json", "--log-level", "DEBUG")
    assert result.code == 0, result.stderr
    assert not CONTROL & (set(result.stderr) - {"\n"})
    assert not CONTROL & (set(result.stdout) - {"\n"})
    entry = next(a for a in json.loads(result.stdout)["accounts"] if a["userId"] == evil.email)
    assert entry["outcome"] == "planned"
    assert s.apply("--yes").code == 0
    assert evil.email in s.changed()


def test_control_characters_from_the_vendor_never_reach_an_audit_log_line(scene) -> None:
    tenant = base_tenant(218)
    s = scene(tenant)
    s.sim.add_records(
        [
            (
                datetime.now(timezone.utc) - timedelta(minutes=5),
                {
                    "loggedDateTime": "not a time",
                    "loggedUser": "\x1b]0;owned\x07mallory@corp.example.com",
                    "category": "Logon and Logoff",
                    "activity": "Log on",
                    "result": "Successful",
                },
            )
        ]
    )
    result = s.audit()
    assert "no readable loggedDateTime" in result.stderr
    assert not CONTROL & (set(result.stderr) - {"\n"})
    assert "\N{REPLACEMENT CHARACTER}]0;owned" in result.stderr


def test_a_plan_over_max_changes_is_shown_then_refused_with_yes(scene) -> None:
    s = scene(base_tenant(214))
    s.audit()
    count = len(s.flagged())
    assert count > 2
    dry = s.apply("--max-changes", "2")
    assert dry.code == 0 and f"--max-changes {count} would allow it" in dry.stderr
    assert dry.stderr.count("planned ") == count
    refused = s.apply("--yes", "--max-changes", "2", "--json")
    assert refused.code == 2 and f"--max-changes {count} would allow it" in refused.stderr
    doc = json.loads(refused.stdout)
    assert doc["maxChanges"] == 2 and doc["counts"]["planned"] == count
    assert f"--max-changes {count} would allow it" in doc["refused"]
    assert s.sim.changes == []


def test_days_beyond_the_vendor_retention_are_refused(scene) -> None:
    s = scene(base_tenant(215))
    s.audit()
    with pytest.raises(ConfigError, match="use --days 180 or less"):
        s.run(dry_run=True, policy=Policy(days=200))


def test_cloud_one_disable_says_it_cannot_and_exits_before_asking(scene, tmp_path) -> None:
    c1 = build_cloudone_tenant(seed=216, users=40)
    s = scene(build_tenant(seed=217, accounts=10), cloudone=c1)
    s.env = {"C1_API_KEY": s.sim.token}
    base = ["--platform", "cloudone", "--base-url", s.sim.base_url]
    assert (
        s.cli(["audit", *base, "--output-dir", str(s.reports), "--no-archive"], env=s.env).code == 0
    )
    apply = [*base, "--from", str(s.csv), "--output-dir", str(s.out), "--no-archive"]
    apply += ["--unverified-cloudone-actions", "--max-changes", "100"]
    for extra in ([], ["--yes"]):
        result = s.cli(["apply", *apply, *extra], env=s.env)
        assert result.code == 2 and "nothing in this plan can be carried out" in result.stderr
        assert "cannot   disable" in result.stderr and "no API to disable" in result.stderr
    assert s.sim.changes == []
    users = list(c1.users)
    # Deleting goes ahead: months-old lastActivity is no sign-in within --days.
    result = s.cli(["apply", *apply, "--action", "delete", "--yes", "--confirm-delete"], env=s.env)
    assert result.code == 0, result.stderr
    now = datetime.now(timezone.utc)
    deleted = {r["UserId"] for r in s.journal() if r["Outcome"] == "done"}
    old = {
        u.email
        for u in users
        if u.last_activity is not None and u.last_activity < now - timedelta(days=90)
    }
    assert deleted & old
    recent = {
        u.email
        for u in users
        if u.last_activity is not None and u.last_activity >= now - timedelta(days=90)
    }
    assert not deleted & recent


def test_logons_that_cannot_be_read_again_change_nothing(scene) -> None:
    s = scene(base_tenant(221))
    s.audit()
    s.sim.faults.outages = ("/v3.0/audit/logs",)
    with pytest.raises(IncompleteDataError, match="nothing was changed"):
        s.run(max_attempts=2)
    assert s.sim.changes == [] and not (s.out / "apply_journal.csv").exists()


def test_a_journal_of_other_columns_or_a_linked_lock_file_is_refused(scene, tmp_path) -> None:
    s = scene(base_tenant(222))
    s.audit()
    s.out.mkdir()
    journal = s.out / "apply_journal.csv"
    journal.write_text("Time,Action,UserId,AccountId,Outcome,Reason\r\n")
    with pytest.raises(ConfigError, match="move it aside"):
        s.run()
    assert s.sim.changes == []
    journal.unlink()
    (s.out / "apply_journal.csv.lock").unlink()
    (s.out / "apply_journal.csv.lock").symlink_to(tmp_path / "elsewhere.lock")
    with pytest.raises(ConfigError, match="lock file"):
        s.run()
    assert s.sim.changes == [] and not (tmp_path / "elsewhere.lock").exists()


def _sqlite_journal(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (_sqlite_journal, "it holds binary data"),
        (lambda p: p.write_bytes(b"Time\rAction,x\r\n"), "it is not a CSV file"),
        (lambda p: p.write_text("Time,Action\r\n"), "it has other columns"),
    ],
    ids=["sqlite", "csv error", "other columns"],
)
def test_a_journal_that_is_not_ours_is_refused_untouched(scene, make, why) -> None:
    s = scene(base_tenant(225))
    s.audit()
    s.out.mkdir()
    journal = s.out / "apply_journal.csv"
    make(journal)
    journal.chmod(0o644)
    before = (journal.read_bytes(), journal.stat().st_mode)
    result = s.apply("--yes")
    assert result.code == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert f"cannot use the journal {journal}: {why}" in line and "move it aside" in line
    assert (journal.read_bytes(), journal.stat().st_mode) == before
    assert s.sim.changes == []


def test_cloud_one_keeps_its_last_full_access_user(scene) -> None:
    c1 = build_cloudone_tenant(seed=223, users=30)
    admins = {"sybil.never@example.org", "rupert.signout@example.org"}
    for user in c1.users:
        user.role_id = "administrator" if user.email in admins else "read-only"
    s = scene(build_tenant(seed=224, accounts=10), cloudone=c1)
    s.env, s.platform = {"C1_API_KEY": s.sim.token}, "cloudone"
    base = ["--platform", "cloudone", "--base-url", s.sim.base_url]
    audit = s.cli(["audit", *base, "--output-dir", str(s.reports), "--no-archive"], env=s.env)
    assert audit.code == 0 and admins <= set(s.flagged())
    s.run(action="delete", allow_undocumented=True)
    rows = {r["UserId"]: r for r in s.journal() if r["UserId"] in admins}
    assert sorted(r["Outcome"] for r in rows.values()) == ["done", "skipped"]
    kept = next(r for r in rows.values() if r["Outcome"] == "skipped")
    assert kept["Reason"] == "the last enabled administrator (Full Access)"
    assert any(u.email == kept["UserId"] and u.role_id == "administrator" for u in c1.users)
