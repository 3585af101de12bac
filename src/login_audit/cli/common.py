"""What every command shares: logging, option groups, the audit pipeline and its summary."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from login_audit import service
from login_audit.archive import Archive, TenantKey, archive_secrets, open_archive
from login_audit.cli.state import AppState
from login_audit.config import (
    C1_KEY_ENV,
    PLATFORMS,
    TOKEN_ENV,
    TRUSTABLE_TYPES,
    URL_ENV,
    HttpSettings,
    Secret,
    Target,
    load_token,
    looks_like_token,
    read_exclude_file,
    read_identity_map,
    resolve_target,
    validate_days,
)
from login_audit.errors import (
    EXIT_BROKEN_PIPE,
    ConfigError,
)
from login_audit.models import DEFAULT_IGNORED_IDENTITIES, Policy, RunSummary
from login_audit.platforms import client_class, open_client
from login_audit.platforms.base import Platform
from login_audit.reports import WriteNotes

log = logging.getLogger("login_audit")
F = TypeVar("F", bound=Callable[..., Any])


def common_options(func: F) -> F:
    """``--log-level`` and ``--log-file``, accepted after every command name."""

    @click.option(
        "--log-file",
        type=click.Path(dir_okay=False),
        envvar="LOGIN_AUDIT_LOG_FILE",
        help="Also write logs to this file (created mode 0600).",
    )
    @click.option(
        "--log-level",
        default="WARNING",
        show_default=True,
        envvar="LOGIN_AUDIT_LOG_LEVEL",
        type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
        help="How much to log on stderr.",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, log_level: str, log_file: str | None, **kwargs: Any) -> Any:
        state = click.get_current_context().ensure_object(AppState)
        state.configure_logging(log_level, log_file)
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def http_options(func: F) -> F:
    """Options of the HTTP layer: pacing, retries, timeouts.

    The defaults are :class:`HttpSettings`'s, so the library and the command line agree.
    """
    defaults = HttpSettings()
    options = [
        click.option(
            "--rate-limit",
            type=click.IntRange(min=1),
            default=defaults.rate_limit,
            show_default=True,
            envvar="LOGIN_AUDIT_RATE_LIMIT",
            help="At most this many requests in any --rate-window seconds.",
        ),
        click.option(
            "--rate-window",
            type=click.FloatRange(min=0.001),
            default=defaults.rate_window,
            show_default=True,
            envvar="LOGIN_AUDIT_RATE_WINDOW",
            help="Length of the rate-limit window in seconds.",
        ),
        click.option(
            "--max-attempts",
            type=click.IntRange(min=1, max=20),
            default=defaults.max_attempts,
            show_default=True,
            envvar="LOGIN_AUDIT_MAX_ATTEMPTS",
            help="Attempts per request before it counts as failed (429, 5xx, network errors).",
        ),
        click.option(
            "--backoff-base",
            type=click.FloatRange(min=0),
            default=defaults.backoff_base,
            show_default=True,
            envvar="LOGIN_AUDIT_BACKOFF_BASE",
            help="First retry delay in seconds when the vendor sends no Retry-After; doubles "
            f"per attempt, capped at {defaults.backoff_cap:g} s, with jitter.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.1),
            default=defaults.timeout,
            show_default=True,
            envvar="LOGIN_AUDIT_TIMEOUT",
            help="Seconds to wait for each read of a response (Vision One's gateway gives up "
            "after 60 s).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def http_settings(kwargs: dict[str, Any]) -> HttpSettings:
    """Build :class:`HttpSettings` from the options of :func:`http_options`."""
    return HttpSettings(
        timeout=kwargs.pop("timeout"),
        rate_limit=kwargs.pop("rate_limit"),
        rate_window=kwargs.pop("rate_window"),
        max_attempts=kwargs.pop("max_attempts"),
        backoff_base=kwargs.pop("backoff_base"),
    )


@contextlib.contextmanager
def progress_reporter(enabled: bool) -> Iterator[Callable[[str, int], None]]:
    """A progress callback drawn on stderr when it is a terminal, silent otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield lambda stage, count: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def update(stage: str, count: int) -> None:
            bar.update(task, description=f"reading {stage}: {count:,}")

        yield update


@contextlib.contextmanager
def quiet_broken_pipe() -> Iterator[None]:
    """End the run quietly with 141 (128 + SIGPIPE) when the reader of stdout goes away.

    ``login-audit export | head`` is a normal thing to do: the pipe closing is not an error
    to print, and later writes must not print one either.
    """
    try:
        yield
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise SystemExit(EXIT_BROKEN_PIPE) from None


def build_policy(
    days: int,
    include_disabled: bool,
    exclude: tuple[str, ...],
    exclude_role: tuple[str, ...],
    exclude_file: str | None,
    max_days: int,
    grace_days: int | None = None,
    evidence: dict[str, Any] | None = None,
) -> Policy:
    """The audit policy from the command line, validated."""
    patterns = tuple(exclude) + (read_exclude_file(exclude_file) if exclude_file else ())
    days = validate_days(days, max_days)
    if grace_days is not None and grace_days < 0:
        raise ConfigError(f"--grace-days must be 0 or more (got {grace_days})")
    return Policy(
        days=days,
        include_disabled=include_disabled,
        exclude_patterns=patterns,
        exclude_roles=tuple(exclude_role),
        grace_days=days if grace_days is None else grace_days,
        **(evidence or {}),
    )


def audit_and_report(
    state: AppState,
    platform: Platform,
    *,
    policy: Policy,
    output_dir: Path,
    quiet: bool = False,
    archive: Archive | None = None,
    tenant: TenantKey | None = None,
    allow_short_history: bool = False,
    api_keys: bool = False,
) -> tuple[RunSummary, WriteNotes]:
    """:func:`login_audit.service.audit_and_report` with progress drawn on a terminal."""
    with progress_reporter(not quiet) as progress:
        return service.audit_and_report(
            platform,
            policy=policy,
            output_dir=output_dir,
            progress=progress,
            archive=archive,
            tenant=tenant,
            allow_short_history=allow_short_history,
            api_keys=api_keys,
        )


@contextlib.contextmanager
def open_platform(
    state: AppState, target: Target, token_file: str | None, settings: HttpSettings
) -> Iterator[Platform]:
    """The platform client of ``target``, its token read and registered for redaction."""
    token = load_token(token_file, env_var=target.token_env)
    state.redactor.add(token)
    with open_client(target, token, settings) as platform:
        yield platform


def _rank(ctx: click.Context, name: str, value: str | None) -> int:
    """2 for a command-line flag, 1 for the environment, 0 when the option is not set."""
    if not value:
        return 0
    return 2 if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE else 1


def chosen_target(platform: str, region: str | None, base_url: str | None) -> Target:
    """Resolve where the tenant is from the current command's options, flags first.

    A flag beats the environment whichever option it is, so ``--region eu`` is never
    overridden by ``TMV1_URL`` or ``LOGIN_AUDIT_BASE_URL`` left in the shell. When a
    region and a base URL both apply, the tool says which one it uses.
    """
    ctx = click.get_current_context()
    url_variable = client_class(platform).url_env
    url_env = os.environ.get(url_variable, "").strip() if url_variable else ""
    region_rank = _rank(ctx, "region", region)
    url_rank = _rank(ctx, "base_url", base_url)
    url_from = "--base-url" if url_rank == 2 else "LOGIN_AUDIT_BASE_URL"
    if not url_rank and url_env:
        base_url, url_rank, url_from = url_env, 1, str(url_variable)
    region_from = "--region" if region_rank == 2 else "LOGIN_AUDIT_REGION"
    if url_rank and region_rank:
        if region_rank > url_rank:
            log.warning(
                "using --region %s; ignoring the base URL in %s (a flag beats the environment)",
                region,
                url_from,
            )
            return resolve_target(platform, region, None, env={})
        why = (
            "a flag beats the environment"
            if url_rank > region_rank
            else "a base URL wins over a region"
        )
        log.warning(
            "using the base URL of %s; ignoring %s %s (%s)", url_from, region_from, region, why
        )
    return resolve_target(platform, region, base_url, env={})


def exclusion_options(func: F) -> F:
    """The accounts never to flag (``audit``) and never to change (``apply``)."""
    options = [
        click.option(
            "--include-disabled",
            is_flag=True,
            envvar="LOGIN_AUDIT_INCLUDE_DISABLED",
            help="Include disabled accounts (they are excluded by default).",
        ),
        click.option(
            "--exclude",
            multiple=True,
            metavar="GLOB",
            envvar="LOGIN_AUDIT_EXCLUDE",
            help="Leave alone accounts whose email or id matches GLOB (repeatable), e.g. 'svc-*'.",
        ),
        click.option(
            "--exclude-role",
            multiple=True,
            metavar="NAME",
            envvar="LOGIN_AUDIT_EXCLUDE_ROLE",
            help="Leave alone accounts of this role (repeatable).",
        ),
        click.option(
            "--exclude-file",
            envvar="LOGIN_AUDIT_EXCLUDE_FILE",
            metavar="FILE",
            help="Exclusion patterns, one per line; '#' starts a comment.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def evidence_options(func: F) -> F:
    """How much to trust the audit log's evidence: identities and empty account types."""
    options = [
        click.option(
            "--identity-map",
            envvar="LOGIN_AUDIT_IDENTITY_MAP",
            metavar="FILE",
            help="CSV 'Identity,UserId': an identity as the audit log writes it (a display "
            "name) and the email or id of its account.",
        ),
        click.option(
            "--ignore-identity",
            multiple=True,
            metavar="NAME",
            envvar="LOGIN_AUDIT_IGNORE_IDENTITY",
            help="An identity of the log that is nobody's account (repeatable; 'Root Account' "
            "is always ignored).",
        ),
        click.option(
            "--trust-empty-evidence",
            multiple=True,
            type=click.Choice(TRUSTABLE_TYPES, case_sensitive=False),
            envvar="LOGIN_AUDIT_TRUST_EMPTY_EVIDENCE",
            help="Believe that no account of this type (saml, local, or 'all') signed in, "
            "instead of reporting them unknown (repeatable).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def evidence_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The :class:`Policy` fields of :func:`evidence_options`, read and validated."""
    path = kwargs.pop("identity_map")
    ignored = tuple(kwargs.pop("ignore_identity"))
    return {
        "identity_map": read_identity_map(path) if path else (),
        "ignore_identities": DEFAULT_IGNORED_IDENTITIES + ignored,
        "trust_empty_evidence": tuple(t.lower() for t in kwargs.pop("trust_empty_evidence")),
    }


def tenant_options(func: F) -> F:
    """Which platform, where the tenant is, and where its token comes from."""
    options = [
        click.option(
            "--platform",
            type=click.Choice(PLATFORMS),
            default="visionone",
            show_default=True,
            envvar="LOGIN_AUDIT_PLATFORM",
            help="Trend Vision One or Trend Cloud One.",
        ),
        click.option(
            "--region",
            envvar="LOGIN_AUDIT_REGION",
            help="Vision One: us (default), eu, jp, sg, au, in, mea, uk, usgov. "
            "Cloud One: us-1 (default), in-1, gb-1, au-1, jp-1, de-1, ca-1, sg-1, trend-us-1.",
        ),
        click.option(
            "--base-url",
            envvar="LOGIN_AUDIT_BASE_URL",
            help=f"API origin instead of --region (Vision One also reads ${URL_ENV}); for "
            "Cloud One every service goes to this one origin.",
        ),
        click.option(
            "--token-file",
            envvar="LOGIN_AUDIT_TOKEN_FILE",
            help=f"Read the token from this file ('-' for stdin) instead of ${TOKEN_ENV} "
            f"(Vision One) or ${C1_KEY_ENV} (Cloud One).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def archive_options(func: F) -> F:
    """Which archive, and which tenant in it."""
    options = [
        click.option(
            "--archive",
            "archive_spec",
            envvar="LOGIN_AUDIT_ARCHIVE",
            metavar="PATH|postgresql://...",
            help="The event archive: a SQLite file, a PostgreSQL URL or libpq keywords. "
            "[default: archive.sqlite3 "
            "in the user data directory, ~/.local/share/login-audit/ on Linux]",
        ),
        click.option(
            "--tenant",
            "tenant_name",
            envvar="LOGIN_AUDIT_TENANT",
            default="default",
            show_default=True,
            help="Name of this tenant in the archive (several tenants can share one archive).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def open_archive_for(
    state: AppState, spec: str | None, *, existing: bool = False, read_only: bool = False
) -> Archive:
    """Open the archive; a PostgreSQL connection string and its password are secrets."""
    if spec and looks_like_token(spec) and not Path(spec).exists():
        raise ConfigError(
            "--archive got a value that looks like a token (not shown), not a path or a "
            "PostgreSQL connection; the token belongs in TMV1_TOKEN or --token-file"
        )
    for secret in archive_secrets(spec):
        state.redactor.add(Secret(secret))
    state.archive_location = "" if archive_secrets(spec) else spec or ""
    archive = open_archive(spec, existing=existing, read_only=read_only)
    state.archive_location = archive.location
    return archive
