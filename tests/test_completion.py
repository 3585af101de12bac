"""Shell completion works for the real command."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script(cli, shell: str) -> None:
    result = cli(["completion", shell])
    assert result.code == 0 and "_LOGIN_AUDIT_COMPLETE" in result.stdout


def test_completion_answers_with_commands_and_options(
    cli,
) -> None:
    env = dict(_LOGIN_AUDIT_COMPLETE="bash_complete", COMP_WORDS="login-audit au", COMP_CWORD="1")
    assert "audit" in cli([], env=env).stdout
    env.update(COMP_WORDS="login-audit audit --da", COMP_CWORD="2")
    assert "--days" in cli([], env=env).stdout
