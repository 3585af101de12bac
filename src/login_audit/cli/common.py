"""What every command shares: logging, option groups, the audit pipeline and its summary.

Each group of options reaches a command as one typed value, built by :func:`option_group`
from the options it declares: :class:`TenantChoice` (``tenant_options``),
:class:`ArchiveChoice` (``archive_options``), :class:`Exclusions` and :class:`Evidence`
(which with ``--days`` make the :class:`~login_audit.models.Policy`, :func:`build_policy`)
and :class:`~login_audit.config.HttpSettings` (``http_options``, whose defaults are the
dataclass's own).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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
    validate_grace_days,
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


class Finite(click.FloatRange):
    """A :class:`click.FloatRange` that also refuses ``nan`` and ``inf``.

    ``nan`` passes every comparison of a plain range, and a huge value overflows where it
    becomes a socket timeout or a sleep; every float option gets a ``max`` as well.
    """

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The number, or a usage error naming the option."""
        number = super().convert(value, param, ctx)
        if isinstance(number, float) and math.isnan(number):
            self.fail(
                f"{value!r} is not a number; give one in {self._describe_range()}", param, ctx
            )
        return number


def check_tenant_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Refuse a tenant name that is empty or padded with spaces: it would name a tenant in
    the archive that no one could tell apart from, or find as, the one meant."""
    if value is not None and (not value.strip() or value != value.strip()):
        raise click.BadParameter(
            f"the tenant name {value!r} is empty or starts or ends with a space; give a name "
            "such as prod, or leave --tenant out for 'default'"
        )
    if value is not None and looks_like_token(value):
        # The name is stored in the archive and printed in every report.
        raise click.BadParameter(
            "the tenant name looks like a token (not shown); the token belongs in TMV1_TOKEN "
            "(Cloud One: C1_API_KEY) or --token-file, and --tenant takes a name such as prod"
        )
    return value


#: The longest threshold accepted where an archive may hold the history (ten years).
MAX_ARCHIVE_DAYS = 3650


def option_group(
    keyword: str, options: Sequence[Callable[[Any], Any]], build: Callable[..., Any]
) -> Callable[[F], F]:
    """A decorator adding ``options`` to a command, which gets them as one value.

    The values of the options (named as ``build``'s parameters) are taken out of the
    command's keyword arguments and passed to ``build``; the command receives what it
    returns as ``keyword``. ``--help`` lists the options in the order given.
    """
    names = tuple(inspect.signature(build).parameters)

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in names}
            return func(*args, **{keyword: build(**values)}, **kwargs)

        command: Any = wrapper
        for option in reversed(options):
            command = option(command)
        return command  # type: ignore[no-any-return]

    return decorate


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


_HTTP_DEFAULTS = HttpSettings()


def _http_settings(
    rate_limit: int, rate_window: float, max_attempts: int, backoff_base: float, timeout: float
) -> HttpSettings:
    return HttpSettings(
        timeout=timeout,
        rate_limit=rate_limit,
        rate_window=rate_window,
        max_attempts=max_attempts,
        backoff_base=backoff_base,
    )


#: Options of the HTTP layer: pacing, retries, timeouts, as ``http:`` :class:`HttpSettings`.
#: The defaults are :class:`HttpSettings`'s, so the library and the command line agree.
http_options = option_group(
    "http",
    [
        click.option(
            "--rate-limit",
            type=click.IntRange(min=1),
            default=_HTTP_DEFAULTS.rate_limit,
            show_default=True,
            envvar="LOGIN_AUDIT_RATE_LIMIT",
            help="At most this many requests in any --rate-window seconds.",
        ),
        click.option(
            "--rate-window",
            type=Finite(min=0.001, max=86400),
            default=_HTTP_DEFAULTS.rate_window,
            show_default=True,
            envvar="LOGIN_AUDIT_RATE_WINDOW",
            help="Length of the rate-limit window in seconds.",
        ),
        click.option(
            "--max-attempts",
            type=click.IntRange(min=1, max=20),
            default=_HTTP_DEFAULTS.max_attempts,
            show_default=True,
            envvar="LOGIN_AUDIT_MAX_ATTEMPTS",
            help="Attempts per request before it counts as failed (429, 5xx, network errors).",
        ),
        click.option(
            "--backoff-base",
            type=Finite(min=0, max=_HTTP_DEFAULTS.backoff_cap),
            default=_HTTP_DEFAULTS.backoff_base,
            show_default=True,
            envvar="LOGIN_AUDIT_BACKOFF_BASE",
            help="First retry delay in seconds when the vendor sends no Retry-After; doubles "
            f"per attempt, capped at {_HTTP_DEFAULTS.backoff_cap:g} s, with jitter.",
        ),
        click.option(
            "--timeout",
            type=Finite(min=0.1, max=3600),
            default=_HTTP_DEFAULTS.timeout,
            show_default=True,
            envvar="LOGIN_AUDIT_TIMEOUT",
            help="Seconds to wait for each read of a response (Vision One's gateway gives up "
            "after 60 s).",
        ),
    ],
    _http_settings,
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
    exclusions: Exclusions,
    evidence: Evidence,
    max_days: int,
    grace_days: int | None = None,
) -> Policy:
    """The audit policy from the command line, validated (files named by options read)."""
    patterns = exclusions.patterns + (
        read_exclude_file(exclusions.exclude_file) if exclusions.exclude_file else ()
    )
    days = validate_days(days, max_days)
    if grace_days is not None:
        validate_grace_days(grace_days)
    return Policy(
        days=days,
        include_disabled=exclusions.include_disabled,
        exclude_patterns=patterns,
        exclude_roles=exclusions.roles,
        grace_days=days if grace_days is None else grace_days,
        identity_map=evidence.read_identity_map(),
        ignore_identities=evidence.ignore_identities,
        trust_empty_evidence=evidence.trust_empty_evidence,
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


@dataclass(frozen=True)
class TenantChoice:
    """The options of :func:`tenant_options`: the platform, where the tenant is, the token."""

    platform: str
    region: str | None
    base_url: str | None
    token_file: str | None


def chosen_target(choice: TenantChoice) -> Target:
    """Resolve where the tenant is from the current command's options, flags first.

    A flag beats the environment whichever option it is, so ``--region eu`` is never
    overridden by ``TMV1_URL`` or ``LOGIN_AUDIT_BASE_URL`` left in the shell. When a
    region and a base URL both apply, the tool says which one it uses.
    """
    ctx = click.get_current_context()
    platform, region, base_url = choice.platform, choice.region, choice.base_url
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


@dataclass(frozen=True)
class Exclusions:
    """The options of :func:`exclusion_options`: accounts never flagged, never changed."""

    include_disabled: bool
    patterns: tuple[str, ...]
    roles: tuple[str, ...]
    exclude_file: str | None


def _exclusions(
    include_disabled: bool,
    exclude: tuple[str, ...],
    exclude_role: tuple[str, ...],
    exclude_file: str | None,
) -> Exclusions:
    return Exclusions(include_disabled, tuple(exclude), tuple(exclude_role), exclude_file)


#: The accounts never to flag (``audit``) and never to change (``apply``), as
#: ``exclusions:`` :class:`Exclusions`.
exclusion_options = option_group(
    "exclusions",
    [
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
    ],
    _exclusions,
)


@dataclass(frozen=True)
class Evidence:
    """The options of :func:`evidence_options`: how far to trust the audit log's evidence."""

    identity_map: str | None
    ignore_identities: tuple[str, ...]
    trust_empty_evidence: tuple[str, ...]

    def read_identity_map(self) -> tuple[tuple[str, str], ...]:
        """The pairs of ``--identity-map``, read and validated (none without it)."""
        return read_identity_map(self.identity_map) if self.identity_map else ()


def _evidence(
    identity_map: str | None,
    ignore_identity: tuple[str, ...],
    trust_empty_evidence: tuple[str, ...],
) -> Evidence:
    return Evidence(
        identity_map,
        DEFAULT_IGNORED_IDENTITIES + tuple(ignore_identity),
        tuple(t.lower() for t in trust_empty_evidence),
    )


#: How much to trust the audit log's evidence: identities and empty account types, as
#: ``evidence:`` :class:`Evidence`.
evidence_options = option_group(
    "evidence",
    [
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
    ],
    _evidence,
)


#: Which platform, where the tenant is, and where its token comes from, as
#: ``tenant_choice:`` :class:`TenantChoice`.
tenant_options = option_group(
    "tenant_choice",
    [
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
    ],
    TenantChoice,
)


@dataclass(frozen=True)
class ArchiveChoice:
    """The options of :func:`archive_options`: the archive, and the tenant's name in it."""

    archive_spec: str | None
    tenant_name: str


#: Which archive, and which tenant in it, as ``archive_choice:`` :class:`ArchiveChoice`.
archive_options = option_group(
    "archive_choice",
    [
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
            callback=check_tenant_name,
            default="default",
            show_default=True,
            help="Name of this tenant in the archive (several tenants can share one archive).",
        ),
    ],
    ArchiveChoice,
)


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
