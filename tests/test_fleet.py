"""Many tenants: the configuration file and ``audit --all``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from login_audit.config import load_tenants
from login_audit.errors import ConfigError
from login_audit.simulator import FaultConfig, build_cloudone_tenant, build_tenant


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_a_valid_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[defaults]
days = 60
exclude = ["svc-*"]

[[tenant]]
name = "prod-eu"
platform = "visionone"
region = "eu"
token_env = "TMV1_TOKEN_PROD_EU"
exclude_roles = ["Master Administrator"]

[[tenant]]
name = "c1"
platform = "cloudone"
region = "de-1"
token_file = "/etc/login-audit/c1.key"
days = 30
""",
    )
    first, second = load_tenants(path)
    assert (first.name, first.target.region, first.days, first.exclude) == (
        "prod-eu",
        "eu",
        60,
        ("svc-*",),
    )
    assert first.target.base_url == "https://api.eu.xdr.trendmicro.com"
    assert (second.target.platform, second.target.region, second.days) == ("cloudone", "de-1", 30)
    assert second.token_file == "/etc/login-audit/c1.key"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[[tenant]]\nname = "a"\nregoin = "eu"\n', "unknown key 'regoin'"),
        ('[[tenant]]\nname = "a"\ntoken = "abc"\n', "never put a secret"),
        ('[[tenant]]\nname = "a"\napi_key = "abc"\n', "never put a secret"),
        ('[[tenant]]\nname = "a"\n[[tenant]]\nname = "a"\n', "names must be unique"),
        ('[[tenant]]\nname = "a"\ndays = "ninety"\n', "'days' must be a whole number"),
        ('[[tenant]]\nname = "a"\nregion = "mars"\n', "unknown Vision One region"),
        ('[[tenant]]\nname = "a"\ntoken_env = "X"\ntoken_file = "f"\n', "keep one"),
        ("[[tenant]]\nregion = 'eu'\n", "has no 'name'"),
        ("[tenants]\n", "unknown key 'tenants'"),
        ("", "no [[tenant]] entries"),
        ("this is = not toml [", "is not valid TOML"),
    ],
)
def test_bad_files_name_the_problem(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as info:
        load_tenants(write(tmp_path, text))
    assert needle in str(info.value)
    assert "abc" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no configuration file"):
        load_tenants(tmp_path / "nope.toml")


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.e2e
def test_all_tenants_with_one_down(cli, start_sim, tmp_path: Path) -> None:
    v1 = build_tenant(seed=61, accounts=120)
    c1 = build_cloudone_tenant(seed=62, users=80)
    healthy = start_sim(v1, cloudone=c1)
    down = start_sim(
        build_tenant(seed=63, accounts=30), faults=FaultConfig(outages=("/v3.0/audit",))
    )
    config = write(
        tmp_path,
        f"""
[defaults]
days = 90

[[tenant]]
name = "v1-healthy"
base_url = "{healthy.base_url}"
token_env = "TOKEN_A"

[[tenant]]
name = "c1-healthy"
platform = "cloudone"
base_url = "{healthy.base_url}"
token_env = "TOKEN_A"

[[tenant]]
name = "v1-down"
base_url = "{down.base_url}"
token_env = "TOKEN_B"
""",
    )
    out = tmp_path / "out"
    result = cli(
        [
            "audit",
            "--all",
            "--config",
            str(config),
            "--output-dir",
            str(out),
            "--archive",
            str(tmp_path / "a.sqlite3"),
            "--max-attempts",
            "2",
            "--backoff-base",
            "0.01",
        ],
        env=dict(TOKEN_A=healthy.token, TOKEN_B=down.token),
    )
    assert result.code == 4, result.stderr
    v1_rows = {
        (r["UserId"], r["RoleName"])
        for r in rows(out / "v1-healthy" / "filtered_accounts_report.csv")
    }
    assert v1_rows == {(r["UserId"], r["RoleName"]) for r in v1.truth()["remove"]}
    c1_rows = {
        (r["UserId"], r["RoleName"])
        for r in rows(out / "c1-healthy" / "filtered_accounts_report.csv")
    }
    assert c1_rows == {(r["UserId"], r["RoleName"]) for r in c1.truth()["remove"]}
    assert rows(out / "v1-down" / "incomplete" / "filtered_accounts_report.csv") == []
    combined = rows(out / "filtered_accounts_report.csv")
    assert list(combined[0]) == ["Tenant", "UserId", "RoleName", "RequestType"]
    assert {(r["Tenant"], r["UserId"]) for r in combined} == (
        {("v1-healthy", u) for u, _ in v1_rows} | {("c1-healthy", u) for u, _ in c1_rows}
    )
    assert "Tenant" not in (out / "v1-healthy" / "filtered_accounts_report.csv").read_text()
    report = json.loads((out / "audit_report.json").read_text())
    codes = {t["tenant"]: t["exitCode"] for t in report["tenants"]}
    assert codes == {"v1-healthy": 0, "c1-healthy": 0, "v1-down": 4}
    assert report["exitCode"] == 4
    for secret in (healthy.token, down.token):
        assert secret not in result.stderr
        assert secret not in (out / "audit_report.json").read_text()


@pytest.mark.e2e
def test_a_tenant_with_a_missing_secret_fails_alone(cli, start_sim, tmp_path: Path) -> None:
    sim = start_sim(build_tenant(seed=64, accounts=30))
    config = write(
        tmp_path,
        f"""
[[tenant]]
name = "ok"
base_url = "{sim.base_url}"
token_env = "TOKEN_OK"

[[tenant]]
name = "no-secret"
base_url = "{sim.base_url}"
token_env = "TOKEN_MISSING"
""",
    )
    result = cli(
        [
            "audit",
            "--all",
            "--config",
            str(config),
            "--output-dir",
            str(tmp_path / "out"),
            "--no-archive",
            "--api-keys",
        ],
        env=dict(TOKEN_OK=sim.token),
    )
    assert result.code == 2
    assert "no-secret: FAILED" in result.stderr and "TOKEN_MISSING" in result.stderr
    assert (tmp_path / "out" / "ok" / "filtered_accounts_report.csv").exists()
    assert (tmp_path / "out" / "ok" / "stale_api_keys.csv").exists()


@pytest.mark.e2e
def test_the_fleet_run_is_a_library_call(start_sim, tmp_path: Path) -> None:
    """``login_audit.fleet`` audits every tenant without the command line: the exact
    findings per tenant, one failing tenant alone, and every token learnt by the redactor."""
    from login_audit.config import HttpSettings
    from login_audit.fleet import FleetOptions, audit_all
    from login_audit.models import Policy
    from login_audit.redaction import Redactor

    v1 = build_tenant(seed=65, accounts=40)
    sim = start_sim(v1)
    good, wrong = tmp_path / "good.token", tmp_path / "wrong.token"
    good.write_text(sim.token)
    wrong.write_text("wrong-token-0123456789")
    for path in (good, wrong):
        path.chmod(0o600)
    config = write(
        tmp_path,
        f"""
[[tenant]]
name = "good"
base_url = "{sim.base_url}"
token_file = "{good}"

[[tenant]]
name = "wrong"
base_url = "{sim.base_url}"
token_file = "{wrong}"
""",
    )
    options = FleetOptions(
        policy=Policy(),
        explicit=frozenset(),
        settings=HttpSettings(backoff_base=0.001, retry_after_cap=0.01),
        output_dir=tmp_path / "out",
        archive_spec=None,
        no_archive=True,
        allow_short_history=False,
        fail_on_findings=False,
        max_archive_days=180,
    )
    redactor = Redactor()
    code, text, document = audit_all(redactor, config, options)
    assert code == 2  # the wrong token: a credentials failure, reported for its tenant only
    assert {t["tenant"]: t["exitCode"] for t in document["tenants"]} == {"good": 0, "wrong": 2}
    assert "wrong: FAILED (exit 2)" in text
    found = rows(tmp_path / "out" / "good" / "filtered_accounts_report.csv")
    assert {(r["UserId"], r["RoleName"]) for r in found} == {
        (r["UserId"], r["RoleName"]) for r in v1.truth()["remove"]
    }
    for secret in (sim.token, "wrong-token-0123456789"):
        assert secret not in text and secret not in json.dumps(document)
        assert secret not in redactor.scrub(f"Authorization: Bearer {secret}")


def fleet_config(tmp_path: Path, *tenants: tuple[str, str, str]) -> Path:
    """A tenants file of ``(name, platform, base URL)``, every token in $TOKEN."""
    return write(
        tmp_path,
        "".join(
            f'[[tenant]]\nname = "{name}"\nplatform = "{platform}"\nbase_url = "{url}"\n'
            'token_env = "TOKEN"\n\n'
            for name, platform, url in tenants
        ),
    )


@pytest.mark.e2e
def test_the_combined_cleanup_file_holds_only_complete_tenants(cli, start_sim, tmp_path) -> None:
    """An incomplete tenant's removals go to its own incomplete/ folder, never into the
    combined file that cleanup processes import; the summary says who was left out."""
    v1 = build_tenant(seed=61, accounts=60)
    c1 = build_cloudone_tenant(seed=62, users=80)
    token = "fleet-token-0123456789abcdef"
    healthy = start_sim(v1, token=token)
    # Without its SAML users, Cloud One's local users are still judged: rows, but incomplete.
    outage = FaultConfig(outages=("/api/saml-users",))
    partial = start_sim(v1, cloudone=c1, faults=outage, token=token)
    config = fleet_config(
        tmp_path,
        ("v1-ok", "visionone", healthy.base_url),
        ("c1-part", "cloudone", partial.base_url),
    )
    out = tmp_path / "out"
    args = ["audit", "--all", "--config", str(config), "--output-dir", str(out), "--no-archive"]
    result = cli([*args, "--max-attempts", "1"], env={"TOKEN": token})
    assert result.code == 4, result.stderr
    left_out = rows(out / "c1-part" / "incomplete" / "filtered_accounts_report.csv")
    assert left_out  # the case under test: an incomplete tenant with accounts to remove
    combined = rows(out / "filtered_accounts_report.csv")
    assert {r["Tenant"] for r in combined} == {"v1-ok"}
    assert "left out of the combined cleanup file: c1-part (incomplete" in result.stderr
    report = json.loads((out / "audit_report.json").read_text())
    assert {t["tenant"]: t["inCleanupFile"] for t in report["tenants"]} == {
        "v1-ok": True,
        "c1-part": False,
    }


@pytest.mark.parametrize("name", ["a/b", "..", ".login-audit-run-prod", ".hidden"])
def test_a_tenant_name_that_cannot_be_its_own_folder_is_refused(cli, tmp_path, name) -> None:
    """Each tenant's reports go to <output-dir>/<name>/: a name that leaves the folder,
    hides it, or looks like a run's staging folder (removed by the next run) is refused."""
    out = tmp_path / "out"
    out.mkdir()
    config = fleet_config(tmp_path, (name, "visionone", "http://127.0.0.1:9"))
    args = ["audit", "--all", "--config", str(config), "--output-dir", str(out)]
    result = cli([*args, "--no-archive"], {"TOKEN": "a-token-value-0123456789"})
    assert result.code == 2, result.stderr
    assert f"tenant name {name!r}" in result.stderr
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("grace", ["-5", "99999999999"])
def test_grace_days_out_of_range_is_refused_in_the_file_as_on_the_command_line(
    cli, tmp_path: Path, grace: str
) -> None:
    config = write(
        tmp_path,
        f'[[tenant]]\nname = "prod"\nbase_url = "http://127.0.0.1:9"\ngrace_days = {grace}\n',
    )
    out = tmp_path / "out"
    base = ["audit", "--output-dir", str(out), "--no-archive"]
    by_file = cli([*base, "--all", "--config", str(config)], {"TMV1_TOKEN": "x" * 20})
    by_option = cli(
        [*base, "--base-url", "http://127.0.0.1:9", "--grace-days", grace],
        {"TMV1_TOKEN": "x" * 20},
    )
    for result, name in ((by_file, "grace_days"), (by_option, "--grace-days")):
        assert result.code == 2, result.stderr
        line = result.stderr.strip().splitlines()[-1]
        assert f"{name} must be 0 to 36500 (got {grace})" in line, result.stderr
    assert f"{config}: tenant 'prod'" in by_file.stderr
    assert not out.exists()
