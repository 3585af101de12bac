"""The command line: parse, build objects, call the library, map errors to exit codes.

Each command lives in its own module; this one assembles the group and maps every
error to one line on stderr and a documented exit code.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

import click

from login_audit import __version__, interrupts
from login_audit.cli.state import CONTEXT, AppState
from login_audit.config import C1_KEY_ENV, TOKEN_ENV, Secret, looks_like_token
from login_audit.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_UNEXPECTED,
    LoginAuditError,
    Terminated,
)
from login_audit.printable import printable

__all__ = ["AppState", "audit_and_report", "cli", "exit_code_for", "main", "render_summary"]

log = logging.getLogger("login_audit")
#: The wrapper click puts on stdout when a write found the pipe closed.
_PACIFIED = ("PacifyFlushWrapper", "_PacifyFlushWrapper")
#: Raised by click when a group is named without a command (click 8.2 and later).
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())

#: Where each command lives. A command's module (and what it needs: the HTTP client, the
#: archive drivers, the simulator) is imported only when that command runs, so
#: ``--version``, ``--help`` of one command and completion start in a fraction of the time.
COMMANDS: dict[str, tuple[str, str]] = {
    "audit": ("login_audit.cli.audit", "audit"),
    "apply": ("login_audit.cli.apply", "apply"),
    "sync": ("login_audit.cli.archive", "sync"),
    "export": ("login_audit.cli.archive", "export"),
    "archive": ("login_audit.cli.archive", "archive_group"),
    "doctor": ("login_audit.cli.doctor", "doctor"),
    "simulate": ("login_audit.cli.simulate", "simulate"),
    "demo": ("login_audit.cli.simulate", "demo"),
    "completion": ("login_audit.cli.completion", "completion"),
    "watch": ("login_audit.cli.watch", "watch"),
}
#: What ``from login_audit.cli import X`` still offers, loaded on first use.
_LAZY_NAMES = {
    "audit_and_report": "login_audit.cli.common",
    "exit_code_for": "login_audit.service",
    "render_summary": "login_audit.service",
}


class LazyGroup(click.Group):
    """A group whose commands are imported the first time they are asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, loaded or not."""
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context | None, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, importing its module on first use."""
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute = COMMANDS[cmd_name]
            command: click.Command = getattr(importlib.import_module(module), attribute)
            _show_envvars(command)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def loaded_commands(self) -> dict[str, click.Command]:
        """Every command, imported now (for ``--help`` checks and documentation tests)."""
        loaded = {
            name: self.get_command(None, name) for name in sorted({*self.commands, *COMMANDS})
        }
        return {name: command for name, command in loaded.items() if command is not None}


@click.group(cls=LazyGroup, context_settings=CONTEXT)
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


def _show_envvars(command: click.Command) -> None:
    """List each option's environment variable in ``--help``."""
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar:
            param.show_envvar = True


def __getattr__(name: str) -> Any:
    if name in _LAZY_NAMES:
        return getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fail(state: AppState, code: int, message: str, *, prefix: str = "error") -> NoReturn:
    """Print one line on stderr (and, with --json, one JSON document on stdout); exit."""
    interrupts.finishing()  # a second Ctrl-C must not cut this short with a traceback
    message = printable(state.redactor.scrub(message))
    click.echo(f"login-audit: {prefix}: {message}", err=True)
    if state.json_mode:
        document = {"complete": False, "exitCode": code, "error": message, "reports": []}
        click.echo(json.dumps(document, indent=2))
    sys.exit(code)


def _interrupted(state: AppState, exc: KeyboardInterrupt) -> NoReturn:
    # Threads still working for the run (pages read ahead, listings) stop within a request:
    # the interpreter waits for some of them before the process can end. The module may be
    # loading still (on the TLS thread): then no client exists yet.
    cancel_all = getattr(sys.modules.get("login_audit.http"), "cancel_all", None)
    if cancel_all is not None:
        cancel_all()
    if isinstance(exc, Terminated) or interrupts.stopping() is Terminated:
        _fail(state, EXIT_TERMINATED, "terminated (SIGTERM)")
    _fail(state, EXIT_INTERRUPTED, "interrupted")


def _interrupt_inside(exc: BaseException) -> KeyboardInterrupt | None:
    """The interrupt another error wraps: Python turns one raised while a class is being
    created (a module loading as Ctrl-C comes) into a RuntimeError."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


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
        command = next((a for a in args if a in COMMANDS), None)
        chosen = cli.get_command(exc.ctx, command) if command is not None else None
        known = chosen is not None and any(name in param.opts for param in chosen.params)
        if exc.ctx is not None and exc.ctx.command is cli and command is not None and known:
            at = args.index(command)
            example = " ".join(["login-audit", command, *args[:at], *args[at + 1 :]])
            return (
                f"{name} is an option of '{command}', and options go after the command: {example}"
            )
    hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    return f"{exc.format_message()}{hint}"


#: Container allocations between two collections of Python's youngest generation (700 by
#: default). An audit allocates millions of short-lived containers (pages, records,
#: findings, report rows) while holding tens of thousands of long-lived ones; with the
#: default, the collector walked them so often that it took 40% of writing the reports of
#: 50,000 accounts. Cycles are still collected, later: at most this many objects wait.
GC_THRESHOLD = 50_000


@contextlib.contextmanager
def _relaxed_gc() -> Iterator[None]:
    previous = gc.get_threshold()
    gc.set_threshold(GC_THRESHOLD, *previous[1:])
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the CLI and maps every error to an exit code.

    When the reader of stdout goes away (``login-audit doctor | head -1``), the run ends
    quietly with 141 (128 + SIGPIPE), whatever the command was writing.
    """
    try:
        try:
            with interrupts.handled(), _relaxed_gc():
                _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        sys.exit(EXIT_BROKEN_PIPE)


#: The commands whose first request needs the TLS context (a vendor over HTTPS).
_TALKS_TO_A_VENDOR = frozenset({"audit", "sync", "export", "watch", "apply", "doctor", "demo"})


def _load_tls() -> None:
    interrupts.spare_this_thread()
    with contextlib.suppress(Exception):  # the client builds it again, and says what failed
        from login_audit.http import tls_context

        tls_context()


def _main(argv: list[str] | None) -> None:
    state = AppState()
    args = sys.argv[1:] if argv is None else argv
    if not args:
        # A bare ``login-audit`` is a person asking what the tool does: the help, as help.
        args = ["--help"]
    # Parsing errors come before any command runs: look for the flag itself.
    state.json_mode = "--json" in args[: args.index("--")] if "--" in args else "--json" in args
    if os.environ.get("LOGIN_AUDIT_JSON", "").strip().lower() in ("1", "true", "yes", "on"):
        state.json_mode = True  # the variable stands for --json on every way out too
    for arg in args:
        # A token pasted where a path or a name belongs is never echoed back.
        value = arg.split("=", 1)[1] if arg.startswith("--") and "=" in arg else arg
        if looks_like_token(value):
            state.redactor.add(Secret(value))
    command = next((a for a in args if not a.startswith("-")), None)
    try:
        # A Ctrl-C that came while the console script imported the CLI ends the run here,
        # where it can be reported as every other interrupt is.
        interrupts.deliver_pending()
        if command in _TALKS_TO_A_VENDOR and not {"--help", "-h"} & set(args):
            # The CA bundle loads while the command's modules are imported (see
            # tls_context). Not a daemon: the interpreter waits for it at exit instead of
            # tearing modules down under an import still running there (which can end the
            # process with SIGSEGV).
            threading.Thread(target=_load_tls, name="tls-context").start()
        cli.main(args=args, prog_name="login-audit", standalone_mode=False, obj=state)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            if exc.__cause__ is None:
                # Ctrl-C at a question (click asks on stderr, and raises Abort from None):
                # end its line first. Elsewhere click's own handler has ended the line.
                click.echo(err=True)
            _interrupted(state, exc.__context__)
        _fail(state, EXIT_UNEXPECTED, "aborted")
    except _NO_ARGS_IS_HELP as exc:
        # A group named without its command (``login-audit archive``): show its help.
        if exc.ctx is not None:
            click.echo(exc.ctx.get_help())
        sys.exit(EXIT_OK)
    except click.ClickException as exc:
        # One line, as every other error: usage problems are configuration problems.
        if isinstance(exc, click.UsageError):
            _fail(state, EXIT_CONFIG, usage_hint(exc, args))
        _fail(state, EXIT_CONFIG, exc.format_message())
    except LoginAuditError as exc:
        _fail(state, exc.exit_code, str(exc))
    except SystemExit as exc:
        if exc.code == 1 and type(sys.stdout).__name__ in _PACIFIED:
            # click ends a run whose stdout pipe closed (EPIPE) with 1 and quiets the stream.
            sys.exit(EXIT_BROKEN_PIPE)
        raise
    except KeyboardInterrupt as exc:
        _interrupted(state, exc)
    except BrokenPipeError:
        raise  # the reader of stdout went away: see ``main``
    except Exception as exc:
        inner = _interrupt_inside(exc)
        if inner is not None:
            _interrupted(state, inner)
        log.debug("unexpected error", exc_info=True)
        from login_audit.archive import archive_failure

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
    interrupts.finishing()
    sys.exit(EXIT_OK)
