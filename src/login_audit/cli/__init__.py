"""The command line: parse, build objects, call the library, map errors to exit codes.

Each command lives in its own module; this one assembles the group and maps every
error to one line on stderr and a documented exit code.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import NoReturn

import click

from login_audit import __version__
from login_audit.archive import archive_failure
from login_audit.cli.apply import apply
from login_audit.cli.archive import archive_group, export, sync
from login_audit.cli.audit import audit
from login_audit.cli.common import (
    CONTEXT,
    AppState,
    audit_and_report,
)
from login_audit.cli.completion import completion
from login_audit.cli.doctor import doctor
from login_audit.cli.simulate import demo, simulate
from login_audit.cli.watch import watch
from login_audit.config import C1_KEY_ENV, TOKEN_ENV, Secret, looks_like_token
from login_audit.errors import (
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNEXPECTED,
    LoginAuditError,
)
from login_audit.printable import printable
from login_audit.service import exit_code_for, render_summary

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
    (with --fail-on-findings), 4 incomplete data, 130 interrupted, 1 unexpected error.
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


def _fail(state: AppState, code: int, message: str, *, prefix: str = "error") -> NoReturn:
    """Print one line on stderr (and, with --json, one JSON document on stdout); exit."""
    message = printable(state.redactor.scrub(message))
    click.echo(f"login-audit: {prefix}: {message}", err=True)
    if state.json_mode:
        document = {"complete": False, "exitCode": code, "error": message, "reports": []}
        click.echo(json.dumps(document, indent=2))
    sys.exit(code)


def usage_hint(exc: click.UsageError, args: list[str]) -> str:
    """The one line for a usage error, with what to type instead where we can tell."""
    if isinstance(exc, click.NoSuchOption):
        name = exc.option_name
        if name in ("--token", "-t") or name.startswith("--token="):
            return (
                f"there is no {name} option: a token on the command line is visible to every "
                f"user of this machine; set {TOKEN_ENV} ({C1_KEY_ENV} for Cloud One) or pass "
                "--token-file PATH ('-' reads it from stdin)"
            )
        command = next((a for a in args if a in cli.commands), None)
        known = command is not None and any(
            name in param.opts for param in cli.commands[command].params
        )
        if exc.ctx is not None and exc.ctx.command is cli and command is not None and known:
            at = args.index(command)
            example = " ".join(["login-audit", command, *args[:at], *args[at + 1 :]])
            return (
                f"{name} is an option of '{command}', and options go after the command: {example}"
            )
    hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    return f"{exc.format_message()}{hint}"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the CLI and maps every error to an exit code."""
    state = AppState()
    args = sys.argv[1:] if argv is None else argv
    # Parsing errors come before any command runs: look for the flag itself.
    state.json_mode = "--json" in args[: args.index("--")] if "--" in args else "--json" in args
    for arg in args:
        # A token pasted where a path or a name belongs is never echoed back.
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        if looks_like_token(value):
            state.redactor.add(Secret(value))
    try:
        cli.main(args=args, prog_name="login-audit", standalone_mode=False, obj=state)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            _fail(state, EXIT_INTERRUPTED, "interrupted")
        _fail(state, EXIT_UNEXPECTED, "aborted")
    except click.ClickException as exc:
        # One line, as every other error: usage problems are configuration problems.
        if isinstance(exc, click.UsageError):
            _fail(state, EXIT_CONFIG, usage_hint(exc, args))
        _fail(state, EXIT_CONFIG, exc.format_message())
    except LoginAuditError as exc:
        _fail(state, exc.exit_code, str(exc))
    except SystemExit:
        raise
    except KeyboardInterrupt:
        _fail(state, EXIT_INTERRUPTED, "interrupted")
    except Exception as exc:
        log.debug("unexpected error", exc_info=True)
        failure = archive_failure(exc, state.archive_location or "the archive")
        if failure is not None:
            _fail(state, failure.exit_code, str(failure))
        _fail(
            state,
            EXIT_UNEXPECTED,
            f"{type(exc).__name__}: {exc}; rerun with --log-level DEBUG --log-file FILE "
            "and report it",
            prefix="unexpected error",
        )
    sys.exit(EXIT_OK)
