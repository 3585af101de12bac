"""Every input a user can get wrong: one line naming the problem and the fix, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def prepare(tmp_path: Path, case: str) -> tuple[list[str], dict[str, str]]:
    base = ["audit", "--base-url", "http://127.0.0.1:9", "--max-attempts", "1"]
    env = dict(TMV1_TOKEN="a-token-that-is-never-used-0123")
    if case == "empty token":
        env["TMV1_TOKEN"] = "   "
        return [*base, "--output-dir", str(tmp_path)], env
    if case == "unreadable token file":
        return [*base, "--token-file", str(tmp_path / "nope"), "--output-dir", str(tmp_path)], env
    if case == "output dir is a file":
        blocker = tmp_path / "blocker"
        blocker.write_text("")
        return [*base, "--output-dir", str(blocker / "reports")], env
    if case == "output dir on a read-only file system":
        return [*base, "--output-dir", "/proc/login-audit-reports", "--no-archive"], env
    if case == "corrupt archive":
        bad = tmp_path / "bad.sqlite3"
        bad.write_bytes(b"\x00garbage" * 512)
        bad.chmod(0o600)  # private, so the only line is about the damage
        return [*base, "--output-dir", str(tmp_path), "--archive", str(bad)], env
    if case == "unknown platform":
        return ["audit", "--platform", "azure", "--output-dir", str(tmp_path)], env
    if case == "missing config for --all":
        return [
            "audit",
            "--all",
            "--config",
            str(tmp_path / "none.toml"),
            "--output-dir",
            str(tmp_path),
        ], env
    if case == "secret in config":
        config = tmp_path / "c.toml"
        config.write_text('[[tenant]]\nname = "x"\ntoken = "abc"\n')
        return ["audit", "--all", "--config", str(config), "--output-dir", str(tmp_path)], env
    if case == "bad --since date":
        return [
            "export",
            "--no-sync",
            "--since",
            "last tuesday",
            "--archive",
            str(tmp_path / "a.sqlite3"),
        ], env
    if case == "prune without --yes":
        return [
            "archive",
            "prune",
            "--before",
            "2020-01-01",
            "--archive",
            str(tmp_path / "a.sqlite3"),
        ], env
    if case == "unknown option":
        return ["audit", "--dayz", "9"], env
    if case == "bad log level":
        return ["audit", "--log-level", "LOUD"], env
    if case == "token as the tenant name":
        pasted = "eyJhbGciOiJSUzI1NiJ9.a-token-that-is-never-used-0123.Zm9vYmFy"
        return [*base, "--tenant", pasted, "--output-dir", str(tmp_path)], env
    raise AssertionError(case)


CASES = {
    "empty token": "no API token: set TMV1_TOKEN or pass --token-file",
    "unreadable token file": "cannot read token file",
    "output dir is a file": "cannot create output directory",
    "output dir on a read-only file system": "cannot create output directory",
    "corrupt archive": "is not a usable SQLite database",
    "unknown platform": "'azure' is not one of",
    "missing config for --all": "no configuration file at",
    "secret in config": "never put a secret in the configuration file",
    "bad --since date": "--since 'last tuesday' is not a date",
    "prune without --yes": "add --yes to go ahead",
    "unknown option": "--dayz",
    "bad log level": "'LOUD' is not one of",
    "token as the tenant name": "the tenant name looks like a token (not shown)",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(cli, tmp_path: Path, case: str) -> None:
    args, env = prepare(tmp_path, case)
    result = cli(args, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.code == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert CASES[case] in lines[0], lines[0]
    assert "a-token-that-is-never-used" not in result.stderr
