"""The command line: parse, build objects, call the library, map errors to exit codes.

Each command lives in its own module; this one assembles the group and maps every
error to one line on stderr and a documented exit code.
"""

from __future__ import annotations

import logging
import sys

import click

from login_audit import __version__
from login_audit.cli.apply import apply
from login_audit.cli.archive import archive_group, export, sync
from login_audit.cli.audit import audit
from login_audit.cli.common import (
    CONTEXT,
    AppState,
    audit_and_report,
    exit_code_for,
    render_summary,
)
from login_audit.cli.completion import completion
from login_audit.cli.doctor import doctor
from login_audit.cli.simulate import demo, simulate
from login_audit.cli.watch import watch
from login_audit.errors import EXIT_CONFIG, EXIT_OK, EXIT_UNEXPECTED, LoginAuditError

__all__ = ["AppState", "audit_and_report", "cli", "exit_code_for", "main", "render_summary"]

log = logging.getLogger("login_audit")


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="login-audit")
def cli() -> None:
    """Find stale Trend Vision One and Cloud One accounts from the platforms' audit logs.

    \b
    Quick start:
      export TMV1_TOKEN=...            # or --token-file PATH
      login-audit audit --region eu    # writes filtered_accounts_report.csv and more
      login-audit sync --region eu     # keep every audit record beyond the retention
      login-audit demo                 # the same against a built-in simulator

    Exit codes: 0 complete, 2 configuration/usage/credentials, 3 accounts to remove
    (with --fail-on-findings), 4 incomplete data, 1 unexpected error.
    """


for _command in (audit, apply, sync, export, archive_group, doctor, simulate, demo, completion):
    cli.add_command(_command)
cli.add_command(watch)


def _show_envvars(group: click.Group) -> None:
    """List each option's environment variable in ``--help``."""
    for command in group.commands.values():
        for param in command.params:
            if isinstance(param, click.Option) and param.envvar:
                param.show_envvar = True


_show_envvars(cli)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the CLI and maps every error to an exit code."""
    state = AppState()
    try:
        cli.main(args=argv, prog_name="login-audit", standalone_mode=False, obj=state)
    except click.exceptions.Abort:
        click.echo("login-audit: aborted", err=True)
        sys.exit(EXIT_UNEXPECTED)
    except click.ClickException as exc:
        # One line, as every other error: usage problems are configuration problems.
        hint = ""
        if isinstance(exc, click.UsageError) and exc.ctx is not None:
            hint = f" (see '{exc.ctx.command_path} --help')"
        click.echo(f"login-audit: error: {exc.format_message()}{hint}", err=True)
        sys.exit(EXIT_CONFIG)
    except LoginAuditError as exc:
        click.echo(f"login-audit: error: {state.redactor.scrub(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        click.echo("login-audit: interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        log.debug("unexpected error", exc_info=True)
        message = state.redactor.scrub(f"{type(exc).__name__}: {exc}")
        click.echo(
            f"login-audit: unexpected error: {message}; rerun with --log-level DEBUG "
            "--log-file FILE and report it",
            err=True,
        )
        sys.exit(EXIT_UNEXPECTED)
    sys.exit(EXIT_OK)
