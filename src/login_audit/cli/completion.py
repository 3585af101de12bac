"""``login-audit completion SHELL``: the shell completion script, to source or install."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from login_audit.cli.state import CONTEXT

SHELLS = ("bash", "zsh", "fish")


@click.command(context_settings=CONTEXT)
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the completion script of SHELL.

    \b
    Examples:
      eval "$(login-audit completion bash)"                 # this shell only
      login-audit completion bash > ~/.local/share/bash-completion/completions/login-audit
      login-audit completion zsh > "${fpath[1]}/_login-audit"
      login-audit completion fish > ~/.config/fish/completions/login-audit.fish
    """
    ctx = click.get_current_context()
    root = ctx.find_root().command
    cls = get_completion_class(shell)
    assert cls is not None
    script = cls(root, {}, "login-audit", "_LOGIN_AUDIT_COMPLETE").source()
    click.echo(script)
