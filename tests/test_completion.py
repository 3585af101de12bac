"""Shell completion works for the real command."""

from __future__ import annotations

import pytest

from tests.conftest import clean_env, run_cli


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script(shell: str) -> None:
    result = run_cli(["completion", shell])
    assert result.code == 0 and "_LOGIN_AUDIT_COMPLETE" in result.stdout


def test_completion_answers_with_commands_and_options() -> None:
    env = clean_env(
        _LOGIN_AUDIT_COMPLETE="bash_complete", COMP_WORDS="login-audit au", COMP_CWORD="1"
    )
    assert "audit" in run_cli([], env=env).stdout
    env.update(COMP_WORDS="login-audit audit --da", COMP_CWORD="2")
    assert "--days" in run_cli([], env=env).stdout
