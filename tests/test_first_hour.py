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
        watch = cli(
            ["watch", "--region", "eu", "--archive", str(tmp_path / "a.sqlite3"),
             "--jsonl", str(tmp_path / "s.jsonl")],
            env,
        )  # fmt: skip
        assert watch.code == 2 and "using --region eu" in watch.stderr
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
    page = (tmp_path / "out" / "audit_report.html").read_text()
    assert "svc-typo-*" in page and "Master Admin&#39; matched no account" in page


@pytest.mark.parametrize("flag", ["--exclude", "--exclude-role"])
def test_an_exclusion_that_matches_gives_no_warning(
    cli, start_sim, tenant: Tenant, tmp_path: Path, flag: str
):
    sim = start_sim(tenant)
    value = tenant.accounts[0].email if flag == "--exclude" else tenant.accounts[0].role
    args = ["audit", "--base-url", sim.base_url, "--no-archive", flag, value.upper(), *FAST]
    result = cli([*args, "--output-dir", str(tmp_path)], {"TMV1_TOKEN": sim.token})
    assert result.code == 0 and "warning" not in result.stderr, result.stderr


def _audit(cli, sim, out: Path, *extra: str):
    args = ["audit", "--base-url", sim.base_url, "--no-archive", "--output-dir", str(out)]
    return cli([*args, *FAST, *extra], {"TMV1_TOKEN": sim.token})


def test_an_outage_keeps_the_last_complete_reports(cli, start_sim, tenant: Tenant, tmp_path):
    sim = start_sim(tenant)
    out = tmp_path / "reports"
    assert _audit(cli, sim, out).code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert len(before["filtered_accounts_report.csv"].splitlines()) > 1
    host = sim.base_url.removeprefix("http://")
    sim.stop()  # the vendor is gone: connection refused on the first request
    result = _audit(cli, sim, out, "--max-attempts", "6", "--json")
    assert result.code == 4
    assert f"connection refused by {host}" in result.stderr, result.stderr
    assert "after 6 attempts" not in result.stderr  # no half-minute of retries
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # the last complete set, byte for byte
    incomplete = json.loads((out / "incomplete" / "audit_report.json").read_text())
    assert incomplete["run"]["complete"] is False
    summary = json.loads(result.stdout)
    assert summary["requests"] <= 3 and str(out / "incomplete") in summary["reports"][0]
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no stray .tmp


def test_a_complete_run_replaces_the_set_and_clears_the_incomplete_folder(
    cli, start_sim, tenant: Tenant, tmp_path
):
    from login_audit.reports.atomic import STAGING_PREFIX

    sim = start_sim(tenant)
    out = tmp_path / "reports"
    (out / "incomplete").mkdir(parents=True)
    (out / "incomplete" / "audit_report.json").write_text("{}")
    # A run killed while writing left its staging folder and a half-written file behind.
    dead = out / f"{STAGING_PREFIX}dead"
    dead.mkdir()
    (dead / ".filtered_accounts_report.csv.x.tmp").write_text("UserId,Ro")
    assert _audit(cli, sim, out).code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "accounts_report.csv",
        "audit_report.html",
        "audit_report.json",
        "filtered_accounts_report.csv",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["audit", "--json", "--platform", "azure"],  # a usage error, before any command runs
        ["audit", "--json", "--region", "mars"],  # a configuration error inside the command
        ["audit", "--json", "--all", "--config", "/nonexistent/config.toml"],
        ["archive", "info", "--json", "--archive"],  # a mistyped path
    ],
)
def test_json_prints_one_document_on_every_error(cli, args: list[str], tmp_path: Path) -> None:
    if args[0] == "audit":
        args = [*args, "--output-dir", str(tmp_path)]
    else:
        args = [*args, str(tmp_path / "archive.sqlit3")]
    result = cli(args)
    assert result.code == 2, result.stderr
    document = json.loads(result.stdout)
    assert document["exitCode"] == 2 and document["complete"] is False
    assert document["error"] and document["error"] in result.stderr
    assert not (tmp_path / "archive.sqlit3").exists()


def test_json_for_audit_all(cli, start_sim, tenant: Tenant, tmp_path: Path) -> None:
    sim = start_sim(tenant)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[tenant]]\nname = "one"\nbase_url = "{sim.base_url}"\ntoken_env = "TOKEN_ONE"\n'
        '[[tenant]]\nname = "two"\nbase_url = "http://127.0.0.1:9"\ntoken_env = "TOKEN_ONE"\n'
    )
    out = tmp_path / "out"
    args = ["audit", "--all", "--json", "--config", str(config), "--output-dir", str(out)]
    result = cli([*args, "--no-archive", *FAST], {"TOKEN_ONE": sim.token})
    assert result.code == 4, result.stderr
    document = json.loads(result.stdout)
    assert document["exitCode"] == 4 and document["complete"] is False
    one, two = document["tenants"]
    assert (one["tenant"], one["exitCode"], one["complete"]) == ("one", 0, True)
    assert one["toRemove"] == len(tenant.truth()["remove"])
    assert two["complete"] is False and "connection refused" in " ".join(two["problems"])
    assert str(out / "filtered_accounts_report.csv") in document["reports"]
    combined = (out / "audit_report.html").read_text()
    assert '<a href="one/audit_report.html">one</a>' in combined
    assert '<a href="two/incomplete/audit_report.html">two</a>' in combined
    assert f"<td>{one['toRemove']}</td>" in combined and "INCOMPLETE" in combined
    page = (out / "one" / "audit_report.html").read_text()
    assert "<title>Login audit: one (visionone 127.0.0.1:" in page  # not "visionone custom"


def test_ctrl_c_exits_130_with_a_json_document(cli, monkeypatch, tmp_path: Path) -> None:
    import importlib

    audit_command = importlib.import_module("login_audit.cli.audit")  # commands load lazily

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # Ctrl-C lands wherever the run happens to be; here, while resolving the target.
    monkeypatch.setattr(audit_command, "chosen_target", interrupted)
    result = cli(["audit", "--json", "--output-dir", str(tmp_path)])
    assert result.code == 130
    assert "interrupted" in result.stderr and json.loads(result.stdout)["exitCode"] == 130


def test_ctrl_c_that_python_wrapped_in_another_error_is_still_ctrl_c(
    cli, monkeypatch, tmp_path: Path
) -> None:
    """Python 3.11 turns an interrupt raised while a class is created (a module loading as
    Ctrl-C comes) into "RuntimeError: Error calling __set_name__": still 130, not a bug."""
    import importlib

    audit_command = importlib.import_module("login_audit.cli.audit")  # commands load lazily

    def loading(*args, **kwargs):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise RuntimeError("Error calling __set_name__ on 'Field' instance") from exc

    monkeypatch.setattr(audit_command, "chosen_target", loading)
    result = cli(["audit", "--json", "--output-dir", str(tmp_path)])
    assert result.code == 130, result.stderr
    assert "login-audit: error: interrupted" in result.stderr
    assert "RuntimeError" not in result.stderr + result.stdout


def test_ctrl_c_while_the_http_module_is_still_loading_is_still_ctrl_c(
    cli, monkeypatch, tmp_path: Path
) -> None:
    """The TLS thread imports the HTTP module while the command starts: an interrupt then
    finds it half-initialized (no ``cancel_all`` yet), and must still end as Ctrl-C."""
    import importlib
    import sys
    import types

    audit_command = importlib.import_module("login_audit.cli.audit")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(audit_command, "chosen_target", interrupted)
    monkeypatch.setitem(sys.modules, "login_audit.http", types.ModuleType("login_audit.http"))
    result = cli(["audit", "--output-dir", str(tmp_path)])
    assert result.code == 130, result.stderr
    assert result.stderr.strip() == "login-audit: error: interrupted"


def test_ctrl_c_at_a_question_ends_its_line_before_saying_so(
    cli, monkeypatch, tmp_path: Path
) -> None:
    """Ctrl-C at a prompt (apply's confirmation word): the error goes on a line of its own,
    not after the question."""
    import importlib

    import click

    audit_command = importlib.import_module("login_audit.cli.audit")

    def asked(*args, **kwargs):
        click.echo("Type 'delete 16' to delete these accounts: ", nl=False, err=True)
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise click.exceptions.Abort() from None

    monkeypatch.setattr(audit_command, "chosen_target", asked)
    result = cli(["audit", "--output-dir", str(tmp_path)])
    assert result.code == 130
    assert result.stderr.splitlines()[-1] == "login-audit: error: interrupted"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # Anywhere else, one empty line (the terminal's ^C line), not two.
    monkeypatch.setattr(audit_command, "chosen_target", interrupted)
    result = cli(["audit", "--output-dir", str(tmp_path)])
    assert result.stderr == "\nlogin-audit: error: interrupted\n"


JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbi0wMTIz"
API_KEY = "tmc12Ab3Cd4Ef5Gh6Ij7Kl8Mn9Op0QrStUvWxYz"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--region", "eu", "audit", "--days", "30"],
            "options go after the command: login-audit audit --region eu --days 30",
        ),
        (["audit", "--token", API_KEY], "there is no --token option"),
        (["audit", "-t", API_KEY], "there is no -t option: a token on the command line"),
        (["audit", f"--token={JWT}"], "set TMV1_TOKEN (C1_API_KEY for Cloud One) or pass"),
    ],
)
def test_a_misplaced_option_or_a_token_flag_says_what_to_type(cli, args, needle) -> None:
    result = cli(args)
    assert result.code == 2
    assert needle in result.stderr, result.stderr
    assert API_KEY not in result.stderr and JWT not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("token", [JWT, API_KEY])
@pytest.mark.parametrize("option", ["--token-file", "--archive", "--exclude-file", "--config"])
def test_a_token_given_where_a_path_belongs_is_never_echoed(cli, tmp_path, option, token):
    args = ["audit", "--base-url", "http://127.0.0.1:9", "--output-dir", str(tmp_path)]
    if option == "--config":
        args.append("--all")
    result = cli([*args, option, token, *FAST], {"TMV1_TOKEN": "x" * 30})
    assert result.code == 2, result.stderr
    assert token not in result.stderr + result.stdout
    assert not any(token in p.name for p in tmp_path.iterdir())
    if option in ("--token-file", "--archive"):
        assert "looks like" in result.stderr


@pytest.mark.parametrize("value", [JWT, API_KEY])
def test_a_token_in_token_env_is_refused_and_never_leaked(cli, tmp_path: Path, value) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[[tenant]]\nname = "prod"\nregion = "eu"\ntoken_env = "{value}"\n')
    out = tmp_path / "out"
    args = ["audit", "--all", "--json", "--config", str(config), "--output-dir", str(out)]
    result = cli(args)
    assert result.code == 2
    assert "token_env must be the NAME of an environment variable" in result.stderr
    assert value not in result.stderr + result.stdout
    assert not out.exists()  # nothing written that could hold it


def test_tls_failure_is_said_in_words(cli, start_sim, tenant: Tenant, tmp_path: Path) -> None:
    sim = start_sim(tenant)  # it speaks plain HTTP: a TLS handshake with it fails
    host = sim.base_url.removeprefix("http://")
    args = ["audit", "--base-url", f"https://{host}", "--no-archive", "--json"]
    result = cli([*args, "--output-dir", str(tmp_path), *FAST], {"TMV1_TOKEN": sim.token})
    assert result.code == 4
    assert f"TLS with {host} failed" in result.stderr, result.stderr
    assert json.loads(result.stdout)["requests"] <= 3


def test_a_bare_command_prints_the_help_as_help(cli) -> None:
    """``login-audit`` alone used to squash its help into one error line of control bytes."""
    result = cli([])
    assert result.code == 0
    assert result.stdout.startswith("Usage: login-audit")
    assert "\n  audit " in result.stdout and "\ufffd" not in result.stdout
    assert result.stderr == ""


def test_a_group_without_its_command_prints_its_help(cli) -> None:
    result = cli(["archive"])
    assert result.code == 0
    assert result.stdout.startswith("Usage: login-audit archive")
    assert "\ufffd" not in result.stdout + result.stderr


def test_the_json_variable_gives_json_on_usage_errors_too(cli) -> None:
    result = cli(["audit", "--regoin", "eu"], {"LOGIN_AUDIT_JSON": "1"})
    assert result.code == 2
    document = json.loads(result.stdout)
    assert document["exitCode"] == 2 and "--regoin" in document["error"]


def test_audit_json_carries_the_warnings(cli, start_sim, tenant, tmp_path: Path) -> None:
    sim = start_sim(tenant)
    args = ["audit", "--base-url", sim.base_url, "--no-archive", "--output-dir", str(tmp_path)]
    result = cli([*args, "--json", "--exclude", "nomatch*"], {"TMV1_TOKEN": sim.token})
    assert result.code == 0, result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert any("nomatch*" in w for w in warnings)


def test_doctor_says_whole_sentences_about_a_new_archive(cli, tmp_path: Path) -> None:
    args = ["doctor", "--base-url", "http://127.0.0.1:9", "--archive", str(tmp_path / "n.db")]
    result = cli(args, {"TMV1_TOKEN": "x" * 30})  # port 9 refuses: nothing leaves the machine
    assert "the first audit or sync will create it" in result.stdout + result.stderr


def test_every_command_ends_quietly_with_141_when_stdout_is_closed(tmp_path: Path) -> None:
    """A real process: the closed pipe is the point. The read end is closed before the
    process starts, so its first write fails whatever its speed."""
    import os
    import subprocess
    import sys

    for args in (["completion", "bash"], ["--help"]):
        read, write = os.pipe()
        os.close(read)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "login_audit", *args],
                stdout=write,
                stderr=subprocess.PIPE,
                cwd=tmp_path,
                timeout=60,
                check=False,
            )
        finally:
            os.close(write)
        assert proc.returncode == 141, (args, proc.stderr)
        assert proc.stderr == b"", args


def test_the_takeover_truth_never_lists_an_account_that_woke_up() -> None:
    from login_audit.simulator.takeover import build_takeover_tenant

    tenant, planted = build_takeover_tenant(seed=5, accounts=150)
    woke = {p["subject"] for p in planted if p["kind"] == "dormant-reactivated"}
    listed = {row["UserId"].lower() for row in tenant.truth()["remove"]}
    assert woke and not woke & listed
