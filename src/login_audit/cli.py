"""The command line: parse, build objects, call the library, map errors to exit codes."""

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

from login_audit import __version__
from login_audit.audit import run_audit
from login_audit.config import (
    TOKEN_ENV,
    URL_ENV,
    HttpSettings,
    Secret,
    load_token,
    read_exclude_file,
    validate_days,
    vision_one_base_url,
)
from login_audit.errors import (
    EXIT_CONFIG,
    EXIT_FINDINGS,
    EXIT_INCOMPLETE,
    EXIT_OK,
    EXIT_UNEXPECTED,
    LoginAuditError,
)
from login_audit.http import BearerAuth, HttpClient
from login_audit.models import Policy, RunSummary
from login_audit.platforms.visionone import RETENTION_DAYS, VisionOne
from login_audit.reports import WriteNotes, write_reports

log = logging.getLogger("login_audit")
F = TypeVar("F", bound=Callable[..., Any])

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Redactor(logging.Filter):
    """Replaces every registered secret in log records before any handler sees them."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: list[str] = []

    def add(self, secret: Secret) -> None:
        """Register a secret to scrub from now on."""
        value = secret.reveal()
        if value and value not in self._secrets:
            self._secrets.append(value)

    def scrub(self, text: str) -> str:
        """``text`` without any registered secret."""
        for value in self._secrets:
            text = text.replace(value, "********")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with secrets removed."""
        message = record.getMessage()
        record.msg, record.args = self.scrub(message), None
        if record.exc_info:
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, self.scrub(formatted)
        return True


class AppState:
    """Per-invocation state the commands share: logging set-up and the redactor."""

    def __init__(self) -> None:
        self.redactor = Redactor()
        self.quiet = False

    def configure_logging(self, level: str, log_file: str | None) -> None:
        """Send logs to stderr (and ``log_file``, created 0600), secrets scrubbed."""
        numeric = logging.getLevelName(level.upper())
        if not isinstance(numeric, int):
            raise click.BadParameter(f"unknown log level {level!r}", param_hint="--log-level")
        root = logging.getLogger("login_audit")
        root.handlers.clear()
        root.setLevel(numeric)
        root.propagate = False
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("login-audit: %(levelname)s: %(message)s"))
        console.addFilter(self.redactor)
        root.addHandler(console)
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("httpcore").setLevel(logging.WARNING)
        if log_file:
            path = Path(log_file).expanduser()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                os.fchmod(fd, 0o600)
                stream = os.fdopen(fd, "a", encoding="utf-8")
            except OSError as exc:
                raise click.BadParameter(
                    f"cannot open log file {path}: {exc.strerror}", param_hint="--log-file"
                ) from None
            handler = logging.StreamHandler(stream)
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            handler.addFilter(self.redactor)
            root.addHandler(handler)


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
    """Options of the HTTP layer: pacing, retries, timeouts."""
    options = [
        click.option(
            "--rate-limit",
            type=click.IntRange(min=1),
            default=500,
            show_default=True,
            envvar="LOGIN_AUDIT_RATE_LIMIT",
            help="At most this many requests in any --rate-window seconds.",
        ),
        click.option(
            "--rate-window",
            type=click.FloatRange(min=0.001),
            default=60.0,
            show_default=True,
            envvar="LOGIN_AUDIT_RATE_WINDOW",
            help="Length of the rate-limit window in seconds.",
        ),
        click.option(
            "--max-attempts",
            type=click.IntRange(min=1, max=20),
            default=6,
            show_default=True,
            envvar="LOGIN_AUDIT_MAX_ATTEMPTS",
            help="Attempts per request before it counts as failed (429, 5xx, network errors).",
        ),
        click.option(
            "--backoff-base",
            type=click.FloatRange(min=0),
            default=1.0,
            show_default=True,
            envvar="LOGIN_AUDIT_BACKOFF_BASE",
            help="First retry delay in seconds when the vendor sends no Retry-After; doubles "
            "per attempt, capped at 60 s, with jitter.",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0.1),
            default=30.0,
            show_default=True,
            envvar="LOGIN_AUDIT_TIMEOUT",
            help="Seconds to wait for each response.",
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


def render_summary(summary: RunSummary, notes: WriteNotes) -> str:
    """The one-screen summary printed on stderr after an audit."""
    counts = summary.counts()
    window = f"{summary.window.start:%Y-%m-%d} to {summary.window.end:%Y-%m-%d}"
    lines = [
        f"login-audit {summary.tool_version}: {summary.platform} ({summary.region}), "
        f"{len(summary.findings)} accounts, logons {window}, threshold {summary.policy.days} days",
        "  " + " | ".join(f"{kind} {count}" for kind, count in counts.items()),
        f"  to remove: {len(summary.to_remove)}",
        f"  requests: {summary.requests}, logon events read: {summary.events_read} "
        f"({summary.unmatched_events} matched no account)",
    ]
    lines += [f"  wrote {path}" for path in notes.paths]
    if notes.neutralised:
        lines.append(
            f"  warning: {notes.neutralised} CSV values began like a spreadsheet formula and "
            "were prefixed with ' to keep them inert"
        )
    if not summary.complete:
        lines.append("  INCOMPLETE: accounts whose data could not be read are 'unknown' and")
        lines.append("  are not on the removal list:")
        lines += [f"    - {problem}" for problem in summary.problems]
    return "\n".join(lines)


def exit_code_for(summary: RunSummary, fail_on_findings: bool) -> int:
    """0 complete, 3 findings (only with --fail-on-findings), 4 incomplete."""
    if not summary.complete:
        return EXIT_INCOMPLETE
    if fail_on_findings and summary.to_remove:
        return EXIT_FINDINGS
    return EXIT_OK


def build_policy(
    days: int,
    include_disabled: bool,
    exclude: tuple[str, ...],
    exclude_role: tuple[str, ...],
    exclude_file: str | None,
    max_days: int,
) -> Policy:
    """The audit policy from the command line, validated."""
    patterns = tuple(exclude) + (read_exclude_file(exclude_file) if exclude_file else ())
    return Policy(
        days=validate_days(days, max_days),
        include_disabled=include_disabled,
        exclude_patterns=patterns,
        exclude_roles=tuple(exclude_role),
    )


def audit_and_report(
    state: AppState,
    *,
    token: Secret,
    base_url: str,
    region: str,
    settings: HttpSettings,
    policy: Policy,
    output_dir: Path,
    quiet: bool = False,
) -> tuple[RunSummary, WriteNotes]:
    """Run one Vision One audit and write its reports; shared by ``audit`` and ``demo``."""
    state.redactor.add(token)
    from login_audit.reports.atomic import ensure_dir

    ensure_dir(output_dir)  # fail before the network work, not after it
    with HttpClient(BearerAuth(token), settings) as http:
        platform = VisionOne(http, base_url, region)
        with progress_reporter(not quiet) as progress:
            summary = run_audit(platform, policy, progress=progress)
    notes = write_reports(summary, output_dir)
    if notes.neutralised:
        log.warning(
            "%d CSV values began like a spreadsheet formula; prefixed with ' to keep them inert",
            notes.neutralised,
        )
    return summary, notes


CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, prog_name="login-audit")
def cli() -> None:
    """Find stale Trend Vision One accounts from the platform's own audit log.

    \b
    Quick start:
      export TMV1_TOKEN=...            # or --token-file PATH
      login-audit audit --region eu    # writes filtered_accounts_report.csv and more
      login-audit demo                 # the same against a built-in simulator

    Exit codes: 0 complete, 2 configuration/usage/credentials, 3 accounts to remove
    (with --fail-on-findings), 4 incomplete data, 1 unexpected error.
    """


@cli.command(context_settings=CONTEXT)
@click.option(
    "--region",
    envvar="TMV1_REGION",
    default="us",
    show_default=True,
    help="Vision One region: us, eu, jp, sg, au, in, mea, uk, usgov.",
)
@click.option(
    "--base-url",
    envvar=URL_ENV,
    help="API origin instead of --region, e.g. https://api.xdr.trendmicro.com.",
)
@click.option(
    "--token-file",
    envvar="LOGIN_AUDIT_TOKEN_FILE",
    help=f"Read the API token from this file ('-' for stdin) instead of ${TOKEN_ENV}.",
)
@click.option(
    "--days",
    type=int,
    default=90,
    show_default=True,
    envvar="LOGIN_AUDIT_DAYS",
    help=f"Flag accounts with no successful logon in this many days (1-{RETENTION_DAYS}).",
)
@click.option(
    "--include-disabled",
    is_flag=True,
    envvar="LOGIN_AUDIT_INCLUDE_DISABLED",
    help="Audit disabled accounts too (they are excluded by default).",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="GLOB",
    envvar="LOGIN_AUDIT_EXCLUDE",
    help="Never flag accounts whose email or id matches GLOB (repeatable), e.g. 'svc-*'.",
)
@click.option(
    "--exclude-role",
    multiple=True,
    metavar="NAME",
    envvar="LOGIN_AUDIT_EXCLUDE_ROLE",
    help="Never flag accounts of this role (repeatable).",
)
@click.option(
    "--exclude-file",
    envvar="LOGIN_AUDIT_EXCLUDE_FILE",
    metavar="FILE",
    help="Exclusion patterns, one per line; '#' starts a comment.",
)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default=".",
    show_default=True,
    envvar="LOGIN_AUDIT_OUTPUT_DIR",
    help="Where the reports are written.",
)
@click.option(
    "--fail-on-findings",
    is_flag=True,
    envvar="LOGIN_AUDIT_FAIL_ON_FINDINGS",
    help="Exit 3 when accounts are to be removed (for CI and schedulers).",
)
@click.option(
    "--quiet", "-q", is_flag=True, envvar="LOGIN_AUDIT_QUIET", help="Print no summary or progress."
)
@http_options
@common_options
def audit(
    region: str,
    base_url: str | None,
    token_file: str | None,
    days: int,
    include_disabled: bool,
    exclude: tuple[str, ...],
    exclude_role: tuple[str, ...],
    exclude_file: str | None,
    output_dir: str,
    fail_on_findings: bool,
    quiet: bool,
    **kwargs: Any,
) -> None:
    """Audit a Vision One tenant and write the cleanup CSV and detailed reports.

    Reads every IAM account and every 'Log on' event of the audit log's 180-day
    retention, and gives each account one finding: active, inactive, no-login,
    excluded or unknown. Inactive and no-login accounts go to
    filtered_accounts_report.csv (UserId,RoleName,RequestType=Remove). If any data
    could not be read, affected accounts are 'unknown', never removed, and the exit
    code is 4.

    The token comes from $TMV1_TOKEN or --token-file; it is never printed.

    \b
    Examples:
      login-audit audit --region eu --days 90 --output-dir reports/
      login-audit audit --base-url https://api.xdr.trendmicro.com --exclude 'svc-*'
      login-audit audit --token-file ~/.config/tmv1.token --fail-on-findings
    """
    state = click.get_current_context().ensure_object(AppState)
    settings = http_settings(kwargs)
    region_label, url = vision_one_base_url(region, base_url)
    policy = build_policy(
        days, include_disabled, exclude, exclude_role, exclude_file, RETENTION_DAYS
    )
    token = load_token(token_file)
    summary, notes = audit_and_report(
        state,
        token=token,
        base_url=url,
        region=region_label,
        settings=settings,
        policy=policy,
        output_dir=Path(output_dir),
        quiet=quiet,
    )
    if not quiet:
        click.echo(render_summary(summary, notes), err=True)
    raise SystemExit(exit_code_for(summary, fail_on_findings))


@cli.command(context_settings=CONTEXT)
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port (0 picks a free one).")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the tenant.")
@click.option("--accounts", type=click.IntRange(min=1), default=50, show_default=True)
@click.option("--token", help="Token clients must send (a random one if omitted).")
@click.option(
    "--faults",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests that fail (429, 5xx, dropped or truncated).",
)
@click.option("--latency-ms", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Requests per window before the simulator answers 429.",
)
@click.option(
    "--rate-window",
    type=click.FloatRange(min=0.001),
    default=60.0,
    show_default=True,
    help="Rate-limit window in simulated seconds.",
)
@click.option(
    "--time-scale",
    type=click.FloatRange(min=0.0001),
    default=1.0,
    show_default=True,
    help="Real seconds per simulated second of the rate window.",
)
@click.option(
    "--truth",
    type=click.Path(dir_okay=False),
    help="Write the tenant's ground truth (what the default policy must flag) here.",
)
@common_options
def simulate(
    port: int,
    seed: int,
    accounts: int,
    token: str | None,
    faults: float,
    latency_ms: float,
    rate_limit: int,
    rate_window: float,
    time_scale: float,
    truth: str | None,
) -> None:
    """Serve a synthetic Vision One tenant on 127.0.0.1 until interrupted.

    The simulator follows the vendor's documented behaviour: paging with nextLink,
    top of 50/100/200, the TMV1-Filter language, 180-day retention, error bodies and
    a rate limit answered with 429. --faults switches on random failures.

    \b
    Example:
      login-audit simulate --port 8080 --accounts 500 --faults 0.2 --truth truth.json
    """
    from login_audit.simulator import FaultConfig, Simulator, build_tenant

    tenant = build_tenant(seed, accounts)
    if truth:
        tenant.write_truth(Path(truth))
    sim = Simulator(
        tenant,
        token=token,
        faults=FaultConfig(rate=faults, seed=seed),
        rate_limit=rate_limit,
        rate_window=rate_window,
        time_scale=time_scale,
        latency_ms=latency_ms,
        port=port,
    )
    click.echo(
        f"Simulating a Vision One tenant (seed {seed}, {len(tenant.accounts)} accounts, "
        f"{len(tenant.records)} audit records) at {sim.base_url}\n"
        f"  export {URL_ENV}={sim.base_url}\n"
        f"  export {TOKEN_ENV}={sim.token}   # the simulator's own token\n"
        "Press Ctrl-C to stop."
    )
    with contextlib.suppress(KeyboardInterrupt):
        sim.serve_forever()
    sim.stop()


@cli.command(context_settings=CONTEXT)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default="demo-output",
    show_default=True,
    help="Where the demo's reports are written.",
)
@click.option("--accounts", type=click.IntRange(min=1), default=300, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--faults",
    type=click.FloatRange(0, 1),
    default=0.2,
    show_default=True,
    help="Share of the simulator's answers that fail, to show the retries at work.",
)
@common_options
def demo(output_dir: str, accounts: int, seed: int, faults: float) -> None:
    """Audit a built-in simulated tenant end to end and show where the reports are.

    Starts the simulator in this process, audits it exactly as 'audit' would audit a
    real tenant (over HTTP on 127.0.0.1), writes the reports and compares the cleanup
    list with the simulator's ground truth.
    """
    from login_audit.simulator import FaultConfig, Simulator, build_tenant

    state = click.get_current_context().ensure_object(AppState)
    tenant = build_tenant(seed, accounts)
    with Simulator(tenant, faults=FaultConfig(rate=faults, seed=seed)) as sim:
        click.echo(
            f"Simulator: {len(tenant.accounts)} accounts, {len(tenant.records)} audit "
            f"records at {sim.base_url} (fault rate {faults:.0%})",
            err=True,
        )
        summary, notes = audit_and_report(
            state,
            token=Secret(sim.token),
            base_url=sim.base_url,
            region="simulator",
            settings=HttpSettings(backoff_base=0.2, backoff_cap=2.0, retry_after_cap=2.0),
            policy=Policy(),
            output_dir=Path(output_dir),
        )
        injected = sum(sim.stats.faults.values())
    click.echo(render_summary(summary, notes), err=True)
    expected = {row["UserId"].lower() for row in tenant.truth()["remove"]}
    found = {f.account.user_id.lower() for f in summary.to_remove}
    verdict = "matches" if expected == found else "DIFFERS FROM"
    click.echo(
        f"  {injected} faults injected; the cleanup list {verdict} the simulator's "
        f"ground truth ({len(expected)} accounts)",
        err=True,
    )
    click.echo(f"Reports are in {Path(output_dir).resolve()}")
    raise SystemExit(exit_code_for(summary, False) if expected == found else EXIT_UNEXPECTED)


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
