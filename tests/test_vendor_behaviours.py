"""The vendor is not our simulator: each behaviour it might have, switched on, never makes
login-audit list an active account for removal.

Every test runs the real audit (in-process CLI or library job) over loopback HTTP against
the simulator with one of its vendor behaviours switched on, and compares the cleanup CSV
with the tenant's ground truth: no false Remove, and where the evidence allows, exact.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from login_audit.audit import run_audit
from login_audit.cli import main
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


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path):
    """Run ``login-audit ARGS`` in this process with a clean environment."""

    def run(args: list[str], **env: str) -> CliResult:
        for name in list(os.environ):
            if name.startswith(("TMV1_", "LOGIN_AUDIT_", "C1_", "XDG_")):
                monkeypatch.delenv(name)
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        try:
            main(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:  # pragma: no cover - main always exits
            code = 0
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def audit(cli, sim, out: Path, *extra: str) -> CliResult:
    base = ["audit", "--base-url", sim.base_url, "--output-dir", str(out)]
    return cli([*base, "--backoff-base", "0.01", *extra], TMV1_TOKEN=sim.token)


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
    base = ["apply", "--base-url", later.base_url, "--no-archive", "--yes", "--json"]
    result = cli(
        [*base, "--from", str(reports / "filtered_accounts_report.csv")],
        TMV1_TOKEN=later.token,
        LOGIN_AUDIT_OUTPUT_DIR=str(tmp_path / "journal"),
    )
    assert later.changes == []
    plan = json.loads(result.stdout)
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
    base = ["apply", "--base-url", sim.base_url, "--no-archive", "--yes", "--json"]
    result = cli(
        [*base, "--from", str(reports / "filtered_accounts_report.csv")],
        TMV1_TOKEN=sim.token,
        LOGIN_AUDIT_OUTPUT_DIR=str(tmp_path / "journal"),
    )
    assert sim.changes == []
    plan = json.loads(result.stdout)
    assert all("may be an administrator" in entry["reason"] for entry in plan["accounts"])
