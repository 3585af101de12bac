"""The vendor is not our simulator: each behaviour it might have, switched on, never makes
login-audit list an active account for removal.

Every test runs the real audit (in-process CLI or library job) over loopback HTTP against
the simulator with one of its vendor behaviours switched on, and compares the cleanup CSV
with the tenant's ground truth: no false Remove, and where the evidence allows, exact.
"""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from login_audit.audit import run_audit
from login_audit.config import HttpSettings, Secret
from login_audit.http import BearerAuth, HttpClient
from login_audit.models import FindingKind, Policy
from login_audit.platforms.visionone import VisionOne
from login_audit.simulator import Tenant, build_tenant
from login_audit.simulator.behaviours import BEHAVIOURS, identity_map
from tests.conftest import CliResult, truth_rows


@pytest.fixture(scope="module")
def tenant() -> Tenant:
    return build_tenant(seed=5, accounts=120)


def audit(cli, sim, out: Path, *extra: str) -> CliResult:
    base = ["audit", "--base-url", sim.base_url, "--output-dir", str(out)]
    return cli([*base, "--backoff-base", "0.01", *extra], {"TMV1_TOKEN": sim.token})


def reports(out: Path) -> Path:
    """Where the run wrote: an incomplete (exit 4) run keeps out of the last complete set."""
    return out / "incomplete" if (out / "incomplete").is_dir() else out


def rows(out: Path) -> set[tuple[str, str, str]]:
    path = reports(out) / "filtered_accounts_report.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        return {(r["UserId"], r["RoleName"], r["RequestType"]) for r in csv.DictReader(handle)}


def findings(out: Path) -> dict[str, dict]:
    report = json.loads((reports(out) / "audit_report.json").read_text(encoding="utf-8"))
    return {a["userId"]: a for a in report["accounts"]}


def apply_yes(cli, sim, reports: Path, journal: Path) -> dict[str, Any]:
    """``apply --yes --json`` of the cleanup CSV in ``reports``; the plan it printed."""
    base = ["apply", "--base-url", sim.base_url, "--no-archive", "--yes", "--json"]
    result = cli(
        [*base, "--from", str(reports / "filtered_accounts_report.csv")],
        {"TMV1_TOKEN": sim.token, "LOGIN_AUDIT_OUTPUT_DIR": str(journal)},
    )
    plan: dict[str, Any] = json.loads(result.stdout)
    return plan


STORAGE = [["--no-archive"], ["--archive", "{tmp}/archive.sqlite3"]]


def storage(tmp_path: Path, which: list[str]) -> list[str]:
    return [part.format(tmp=tmp_path) for part in which]


@pytest.mark.parametrize("store", STORAGE, ids=["direct", "archive"])
def test_display_name_identities_make_removals_unknown(
    cli, tenant: Tenant, start_sim, tmp_path: Path, store: list[str]
) -> None:
    sim = start_sim(tenant, behaviours=("display-names",))
    out = tmp_path / "out"
    result = audit(cli, sim, out, *storage(tmp_path, store))
    assert result.code == 4, result.stderr
    assert rows(out) == set()  # nobody can be proven stale: anyone could be 'Alice Mixed'
    assert "--identity-map" in result.stderr
    report = json.loads((reports(out) / "audit_report.json").read_text(encoding="utf-8"))
    kinds = {u["identity"]: u["kind"] for u in report["unmatchedIdentities"]}
    assert kinds["alice mixed"] == "display-name"
    assert kinds["root account"] == "ignored"  # Vision One's built-in administrator
    assert report["run"]["unmatchedIdentities"] == len(kinds)  # identities, not events


@pytest.mark.parametrize("store", STORAGE, ids=["direct", "archive"])
def test_an_identity_map_makes_the_audit_exact_again(
    cli, tenant: Tenant, start_sim, tmp_path: Path, store: list[str]
) -> None:
    sim = start_sim(tenant, behaviours=("display-names",))
    mapping = tmp_path / "identities.csv"
    with mapping.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Identity", "UserId"])
        writer.writerows(identity_map(tenant))
    out = tmp_path / "out"
    result = audit(cli, sim, out, "--identity-map", str(mapping), *storage(tmp_path, store))
    assert result.code == 0, result.stderr
    assert rows(out) == truth_rows(tenant)


def test_an_ignored_display_name_is_accepted(cli, start_sim, tmp_path: Path) -> None:
    tenant = build_tenant(seed=6, accounts=40)
    sim = start_sim(tenant, behaviours=("display-names",))
    names = sorted({name for name, _ in identity_map(tenant)})
    ignore = [part for name in names for part in ("--ignore-identity", name)]
    out = tmp_path / "out"
    result = audit(cli, sim, out, "--no-archive", *ignore)
    # Every logon is now nobody's: the audit says so instead of removing everybody.
    assert result.code == 4
    assert rows(out) == set()
    assert "--trust-empty-evidence all" in result.stderr


def test_sso_recorded_elsewhere_makes_saml_accounts_unknown(
    cli, tenant: Tenant, start_sim, tmp_path: Path
) -> None:
    sim = start_sim(tenant, behaviours=("sso-elsewhere",))
    saml = {a.email for a in tenant.accounts if a.auth_type == "saml"}
    assert saml
    out = tmp_path / "out"
    result = audit(cli, sim, out, "--no-archive")
    assert result.code == 4, result.stderr
    assert rows(out) == {r for r in truth_rows(tenant) if r[0] not in saml}
    for email in saml:
        assert findings(out)[email]["finding"] == "unknown"
        assert "--trust-empty-evidence saml" in findings(out)[email]["reason"]
    out2 = tmp_path / "trusted"
    trusted = audit(cli, sim, out2, "--no-archive", "--trust-empty-evidence", "saml")
    assert trusted.code == 0, trusted.stderr
    assert rows(out2) == truth_rows(tenant)  # the SAML account is dormant in truth


@pytest.mark.parametrize("store", STORAGE, ids=["direct", "archive"])
def test_a_logon_dated_in_the_future_is_unknown_with_and_without_the_archive(
    cli, tenant: Tenant, start_sim, tmp_path: Path, store: list[str]
) -> None:
    sim = start_sim(tenant, behaviours=("future-times",))
    dormant = [a.email for a in tenant.accounts if a.klass == "inactive"][:3]
    out = tmp_path / "out"
    result = audit(cli, sim, out, *storage(tmp_path, store))
    assert result.code == 4, result.stderr
    assert rows(out) == {r for r in truth_rows(tenant) if r[0] not in dormant}
    for email in dormant:
        assert findings(out)[email]["finding"] == "unknown"
        assert "in the future" in findings(out)[email]["reason"]


@pytest.mark.parametrize(
    "behaviours", [("unsorted-pages",), ("null-items",), ("unsorted-pages", "null-items")]
)
def test_unsorted_pages_and_null_items_give_the_exact_result(
    cli, tenant: Tenant, start_sim, tmp_path: Path, behaviours: tuple[str, ...]
) -> None:
    sim = start_sim(tenant, behaviours=behaviours)
    archive = ["--archive", str(tmp_path / "archive.sqlite3")]
    for run in ("first", "next"):  # the next run's window holds no new logon: items null
        out = tmp_path / run
        result = audit(cli, sim, out, *archive)
        assert result.code == 0, result.stderr
        assert rows(out) == truth_rows(tenant)


def test_a_start_refused_at_the_retention_edge_is_moved_later(tenant: Tenant, start_sim) -> None:
    """The vendor's clock runs five minutes ahead and it refuses, not clamps, old starts."""
    from datetime import datetime, timezone

    sim = start_sim(
        tenant,
        behaviours=("reject-old-start",),
        clock=lambda: datetime.now(timezone.utc) + timedelta(minutes=5),
    )
    http = HttpClient(BearerAuth(Secret(sim.token)), HttpSettings(backoff_base=0.001))
    summary = run_audit(VisionOne(http, sim.base_url, "test"), Policy())
    assert summary.complete, summary.problems
    flagged = {(f.account.email, f.account.role, "Remove") for f in summary.to_remove}
    assert flagged == truth_rows(tenant)


def test_a_rate_limit_below_our_pace_without_retry_after_slows_the_run_down(
    start_sim,
) -> None:
    """6 requests per 60 s window, no Retry-After (time compressed 100-fold): the run
    outlasts several windows, completes, and paces itself to the vendor's limit."""
    scale = 0.01
    tenant = build_tenant(seed=8, accounts=1200)
    sim = start_sim(
        tenant, behaviours=("bare-429",), rate_limit=6, rate_window=60.0, time_scale=scale
    )
    settings = HttpSettings(
        rate_window=60 * scale,
        backoff_base=scale,
        backoff_cap=60 * scale,
        throttle_budget=180 * scale,
    )
    http = HttpClient(BearerAuth(Secret(sim.token)), settings)
    summary = run_audit(VisionOne(http, sim.base_url, "test"), Policy(), max_slices=4)
    assert summary.complete, summary.problems
    assert sim.stats.requests > 3 * 6  # several of the vendor's windows
    assert sim.stats.rate_limited > 0  # its limit was really met
    assert http.pacer.limit < 500  # and learnt
    flagged = {(f.account.email, f.account.role, "Remove") for f in summary.to_remove}
    assert flagged == truth_rows(tenant)
    assert not any(f.kind is FindingKind.UNKNOWN for f in summary.findings)


def test_every_behaviour_is_offered_by_simulate(cli) -> None:
    result = cli(["simulate", "--help"])
    assert result.code == 0
    for name in BEHAVIOURS:
        assert name in result.stdout


def test_apply_changes_nobody_while_display_names_logged_on(
    cli, tenant: Tenant, start_sim, tmp_path: Path
) -> None:
    """The audit ran on a vendor that named people by email; by the time of apply it names
    them by display name. A logon by 'Alice Mixed' could be any row's: nothing is changed."""
    plain = start_sim(tenant)
    reports = tmp_path / "reports"
    assert audit(cli, plain, reports, "--no-archive").code == 0
    assert rows(reports)
    later = start_sim(tenant, behaviours=("display-names",))
    # The same tenant, served at another port: the report must name its address.
    report = reports / "audit_report.json"
    document = json.loads(report.read_text())
    document["run"]["baseUrl"] = later.base_url
    report.write_text(json.dumps(document))
    plan = apply_yes(cli, later, reports, tmp_path / "journal")
    assert later.changes == []
    assert plan["accounts"] and all(
        "not proven stale" in entry["reason"] for entry in plan["accounts"]
    ), plan


class _Named:
    def __init__(self, admin_roles: tuple[str, ...]) -> None:
        self.admin_roles = admin_roles


@pytest.mark.parametrize(
    ("roles", "role", "admin", "opaque"),
    [
        (("Master Administrator",), "Master Administrator", True, False),
        (("Master Administrator",), "master_administrator", True, False),
        (("Master Administrator",), " MASTER-ADMINISTRATOR ", True, False),
        (("Master Administrator",), "Senior Analyst", False, False),
        (("Master Administrator",), "3f2a9c1e-0b7d-4c1a-9e2f-6a8b0c1d2e3f", False, True),
        (("Master Administrator",), "role-0001", False, True),
        (("Master Administrator",), "", False, True),
        (("Full Access", "administrator"), "Full Access", True, False),
        (("Full Access", "administrator"), "administrator", True, False),
        (("Full Access", "administrator"), "Read Only", False, False),
    ],
)
def test_administrator_roles_by_name_spelling_or_id(
    roles: tuple[str, ...], role: str, admin: bool, opaque: bool
) -> None:
    from login_audit.platforms.base import is_administrator, role_is_opaque

    platform: Any = _Named(roles)
    assert is_administrator(platform, role) is admin
    assert role_is_opaque(platform, role) is opaque


def test_apply_leaves_alone_accounts_whose_role_is_an_id(
    cli, tenant: Tenant, start_sim, tmp_path: Path
) -> None:
    """If the vendor names roles by id, the last-administrator guard cannot count them:
    apply changes nobody rather than guess which id is the administrators'."""
    sim = start_sim(tenant)
    for number, account in enumerate(sim.accounts):
        account["role"] = f"role-{number % 5:04d}"
    reports = tmp_path / "reports"
    assert audit(cli, sim, reports, "--no-archive").code == 0
    assert rows(reports)
    plan = apply_yes(cli, sim, reports, tmp_path / "journal")
    assert sim.changes == []
    assert all("may be an administrator" in entry["reason"] for entry in plan["accounts"])


def test_cloud_one_saml_sign_ins_recorded_elsewhere_make_saml_users_unknown(
    tenant: Tenant, start_sim
) -> None:
    from login_audit.http import ApiKeyAuth
    from login_audit.platforms.cloudone import CloudOne
    from login_audit.simulator import build_cloudone_tenant

    c1 = build_cloudone_tenant(seed=61, users=80)
    sim = start_sim(tenant, cloudone=c1, behaviours=("sso-elsewhere",))
    http = HttpClient(ApiKeyAuth(Secret(sim.token)), HttpSettings(backoff_base=0.001))
    summary = run_audit(CloudOne(http, "us-1", sim.base_url), Policy())
    saml = {u.email for u in c1.users if u.saml and u.state == "enabled"}
    assert saml
    verdicts = {f.account.email: f for f in summary.findings}
    for email in saml:
        assert verdicts[email].kind in (FindingKind.UNKNOWN, FindingKind.EXCLUDED), email
    truth = {(r["UserId"], r["RoleName"], "Remove") for r in c1.truth()["remove"]}
    flagged = {(f.account.email, f.account.role, "Remove") for f in summary.to_remove}
    assert flagged == {r for r in truth if r[0] not in saml}
    assert not summary.complete and any("saml" in p for p in summary.problems)


# -- found by attacking the defences above ----------------------------------------------


def test_an_identity_mapped_to_two_accounts_is_refused(
    cli, tenant: Tenant, start_sim, tmp_path: Path
) -> None:
    """With the last line winning, an active person's logons went to someone else."""
    sim = start_sim(tenant, behaviours=("display-names",))
    mapping = tmp_path / "identities.csv"
    rows_ = [*identity_map(tenant), ("Alice Mixed", "frank.failed@example.com")]
    mapping.write_text(
        "Identity,UserId\n" + "".join(f"{a},{b}\n" for a, b in rows_), encoding="utf-8"
    )
    out = tmp_path / "out"
    result = audit(cli, sim, out, "--no-archive", "--identity-map", str(mapping))
    assert result.code == 2
    assert "'Alice Mixed' stands for" in result.stderr and "keep one line" in result.stderr
    assert not (out / "filtered_accounts_report.csv").exists()


def test_two_maps_that_disagree_believe_neither() -> None:
    from login_audit.analysis import ActivityIndex
    from login_audit.models import Account, AccountStatus

    accounts = [
        Account("1", "alice@x.example", "Operator", "local", AccountStatus.ENABLED),
        Account("2", "bob@x.example", "Operator", "local", AccountStatus.ENABLED),
    ]
    policy = Policy(identity_map=(("Alice", "alice@x.example"), ("alice", "bob@x.example")))
    index = ActivityIndex(accounts, policy)
    assert index.conflicting == {"alice"}


def test_another_tenant_at_the_same_address_is_refused_before_anything_is_stored(
    start_sim, tmp_path: Path
) -> None:
    from login_audit.archive import open_archive
    from login_audit.archive.base import TenantKey
    from login_audit.audit import run_archived_audit
    from login_audit.errors import ConfigError
    from login_audit.sync import LOGONS, coverage

    key = TenantKey("visionone", "127.0.0.1", "default")
    archive = open_archive(str(tmp_path / "archive.sqlite3"))
    try:
        for seed, expect_refusal in ((11, False), (12, True)):
            sim = start_sim(build_tenant(seed=seed, accounts=150))
            http = HttpClient(BearerAuth(Secret(sim.token)), HttpSettings(backoff_base=0.001))
            platform = VisionOne(http, sim.base_url, "test")
            tenant = archive.tenant_id(key)
            before = coverage(archive, tenant, LOGONS)
            if not expect_refusal:
                assert run_archived_audit(platform, archive, key, Policy(grace_days=0)).complete
                continue
            with pytest.raises(ConfigError, match="another tenant at the same address"):
                run_archived_audit(platform, archive, key, Policy(grace_days=0))
            assert coverage(archive, tenant, LOGONS) == before  # the watermark did not move
    finally:
        archive.close()


def test_an_ignored_display_name_that_logged_on_is_a_warning(
    cli, tenant: Tenant, start_sim, tmp_path: Path
) -> None:
    sim = start_sim(tenant, behaviours=("display-names",))
    mapping = tmp_path / "identities.csv"
    others = [(a, b) for a, b in identity_map(tenant) if a != "Alice Mixed"]
    mapping.write_text(
        "Identity,UserId\n" + "".join(f"{a},{b}\n" for a, b in others), encoding="utf-8"
    )
    out = tmp_path / "out"
    extra = ["--identity-map", str(mapping), "--ignore-identity", "Alice Mixed"]
    result = audit(cli, sim, out, "--no-archive", *extra)
    assert "the ignored identity 'alice mixed' logged on" in result.stderr
    report = json.loads((reports(out) / "audit_report.json").read_text(encoding="utf-8"))
    assert any("alice mixed" in w for w in report["run"]["warnings"])


def test_a_map_of_many_missing_accounts_is_one_warning(
    cli, tenant: Tenant, start_sim, tmp_path: Path
) -> None:
    sim = start_sim(tenant)
    mapping = tmp_path / "identities.csv"
    lines = "".join(f"Person {n},nobody{n}@example.com\n" for n in range(500))
    mapping.write_text("Identity,UserId\n" + lines, encoding="utf-8")
    out = tmp_path / "out"
    result = audit(cli, sim, out, "--no-archive", "--identity-map", str(mapping))
    assert result.code == 0, result.stderr
    assert result.stderr.count("the identity map names") == 1
    assert "500 account(s) the tenant does not have" in result.stderr


@pytest.mark.parametrize("value", ["bogus", "saml,local", ""])
def test_trust_empty_evidence_takes_only_account_types(cli, value: str) -> None:
    base = ["audit", "--base-url", "http://127.0.0.1:9", "--no-archive"]
    result = cli([*base, "--trust-empty-evidence", value], {"TMV1_TOKEN": "x" * 20})
    assert result.code == 2 and "--trust-empty-evidence" in result.stderr


def test_trust_empty_evidence_all_trusts_every_type(
    cli, tenant: Tenant, start_sim, tmp_path: Path
) -> None:
    sim = start_sim(tenant, behaviours=("sso-elsewhere",))
    out = tmp_path / "out"
    result = audit(cli, sim, out, "--no-archive", "--trust-empty-evidence", "all")
    assert result.code == 0, result.stderr
    assert rows(out) == truth_rows(tenant)


@pytest.mark.parametrize(("known", "refused"), [(0, True), (19, True), (20, False), (100, False)])
def test_the_same_tenant_check_allows_for_new_accounts(known: int, refused: bool) -> None:
    from datetime import datetime, timezone

    from login_audit.archive.base import TenantKey
    from login_audit.audit import check_same_tenant
    from login_audit.errors import ConfigError
    from login_audit.models import Account, AccountStatus

    sample = [
        Account(f"id-{n}", f"u{n}@x.example", "Operator", "local", AccountStatus.ENABLED)
        for n in range(100)
    ]
    seen = {f"id-{n}": datetime.now(timezone.utc) for n in range(known)}
    seen["id-elsewhere"] = datetime.now(timezone.utc)
    key = TenantKey("visionone", "eu", "default")
    if refused:
        with pytest.raises(ConfigError, match="another tenant"):
            check_same_tenant(sample, seen, key, "https://h")
    else:
        check_same_tenant(sample, seen, key, "https://h")


@pytest.mark.parametrize("store", STORAGE, ids=["direct", "archive"])
def test_an_empty_next_cursor_on_cloud_one_is_not_taken_for_the_end(
    cli, tenant: Tenant, start_sim, tmp_path: Path, store: list[str]
) -> None:
    """Cloud One leaves 'next' out on its last page; an empty one could as well be a lost
    cursor with more pages behind it (sign-ins unread, active users looking dormant)."""
    from login_audit.simulator import build_cloudone_tenant

    sim = start_sim(
        tenant, cloudone=build_cloudone_tenant(seed=5, users=60), behaviours=("empty-next",)
    )
    out = tmp_path / "out"
    base = ["audit", "--platform", "cloudone", "--base-url", sim.base_url, "--output-dir", str(out)]
    result = cli(
        [*base, "--backoff-base", "0.01", *storage(tmp_path, store)], {"C1_API_KEY": sim.token}
    )
    assert result.code == 4, result.stderr
    assert "empty 'next' cursor" in result.stderr
    assert rows(out) == set()  # nobody is removed on a listing that may not be whole
    assert not (out / "filtered_accounts_report.csv").exists()


@pytest.mark.parametrize("store", STORAGE, ids=["direct", "archive"])
def test_an_empty_next_link_on_vision_one_is_not_taken_for_the_end(
    cli, tenant: Tenant, start_sim, tmp_path: Path, store: list[str]
) -> None:
    """The same rule as Cloud One's empty cursor: Vision One leaves nextLink out on the
    last page; an empty one may hide pages of logons or accounts."""
    sim = start_sim(tenant, behaviours=("empty-next",))
    out = tmp_path / "out"
    base = ["audit", "--base-url", sim.base_url, "--output-dir", str(out)]
    result = cli(
        [*base, "--backoff-base", "0.01", *storage(tmp_path, store)], {"TMV1_TOKEN": sim.token}
    )
    assert result.code == 4, result.stderr
    assert "empty nextLink" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "filtered_accounts_report.csv").exists()
