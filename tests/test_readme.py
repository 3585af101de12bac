"""The README's command reference is the tool's real --help."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_command_reference_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "readme_help.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_options_without_an_environment_variable_are_the_ones_the_readme_lists() -> None:
    import re

    import click

    from login_audit.cli import cli

    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text[text.index("| command | options without an environment variable |") :]
    table = table[: table.index("\n\n")]
    listed = {
        row.split("|")[1].strip().strip("`"): set(re.findall(r"`(--[a-z-]+)`", row.split("|")[2]))
        for row in table.splitlines()[2:]
    }

    def missing(command: click.Command) -> set[str]:
        return {
            p.opts[0]
            for p in command.params
            if isinstance(p, click.Option) and not p.envvar and p.opts[0] != "--help"
        }

    actual: dict[str, set[str]] = {}
    for name, command in cli.loaded_commands().items():
        subcommands = command.commands if isinstance(command, click.Group) else {"": command}
        for sub, leaf in subcommands.items():
            if missing(leaf):
                actual[f"{name} {sub}".strip()] = missing(leaf)
    assert listed == actual
