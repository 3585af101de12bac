"""``login-audit watch``: takeover signals from the archive, each reported once."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import click

from login_audit.archive.base import Archive, TenantKey
from login_audit.archive.signals import SignalStore
from login_audit.archive.sql import SqlArchive
from login_audit.cli.archive import overlap_option, sync_platform
from login_audit.cli.common import (
    ArchiveChoice,
    Evidence,
    Finite,
    TenantChoice,
    archive_options,
    chosen_target,
    common_options,
    evidence_options,
    http_options,
    open_archive_for,
    open_platform,
    option_group,
    tenant_options,
)
from login_audit.cli.state import CONTEXT, AppState
from login_audit.config import (
    HttpSettings,
    TenantConfig,
    default_config_path,
    load_tenants,
)
from login_audit.delivery import (
    WEBHOOK_ENV,
    WEBHOOK_STYLES,
    FileSink,
    Sink,
    WebhookSink,
    load_webhook_url,
    notify_audit,
)
from login_audit.errors import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    ArchiveBusyError,
    ConfigError,
    LoginAuditError,
    RetryLaterError,
)
from login_audit.fleet import worst
from login_audit.http import HttpClient, RetryPolicy
from login_audit.models import RunSummary
from login_audit.platforms import open_client
from login_audit.platforms.base import Platform
from login_audit.printable import printable
from login_audit.service import tenant_key
from login_audit.watch import DEFAULT_ADMIN_ROLES, WatchRules
from login_audit.watcher import WatchResult, repeat, run_watch

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _tenant_platform(
    state: AppState, tenant: TenantConfig, settings: HttpSettings
) -> Iterator[Platform]:
    token = tenant.load_token()
    state.redactor.add(token)
    with open_client(tenant.target, token, settings) as platform:
        yield platform


def _sync(archive: Archive, platform: Platform, key: TenantKey, overlap: int) -> str | None:
    """Bring the tenant's archive up to date; a problem is returned, not raised."""
    try:
        result = sync_platform(archive, platform, key, overlap, quiet=True)
    except ArchiveBusyError:
        log.warning(
            "tenant %s: another process is syncing it or applying changes to it; watching "
            "what is stored",
            key.name,
        )
        return None
    except RetryLaterError as exc:  # the vendor is down: what is stored is still watched
        return str(exc)
    return None if result.complete else result.problem


def describe(result: WatchResult, sync_problem: str | None) -> str:
    """The lines about one tenant's watch, for stderr."""
    kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(result.kinds.items()))
    key = result.tenant
    lines = [
        f"watch {key.name} ({key.platform} {key.region}): {result.records} new records, "
        f"{result.signals} new signals" + (f" ({kinds})" if kinds else "")
    ]
    lines += [f"  delivered to {name}: {count}" for name, count in result.delivered.items()]
    if sync_problem:
        lines.append(f"  INCOMPLETE sync: {sync_problem}")
    lines += [f"  NOT DELIVERED: {problem}" for problem in result.problems]
    if result.unattributed:
        names = ", ".join(repr(n) for n in sorted(result.unattributed)[:3])
        lines.append(
            f"  NOT ATTRIBUTED: logons by {len(result.unattributed)} identities that match no "
            f"account ({names}); their signals (failed-logon bursts, reactivations) cannot be "
            "told: map them with --identity-map or accept them with --ignore-identity"
        )
    return "\n".join(lines)


def open_webhook(
    state: AppState, choice: WebhookChoice, digest: bool, settings: HttpSettings
) -> WebhookSink | None:
    """The webhook of ``--webhook-file`` or ``$LOGIN_AUDIT_WEBHOOK_URL`` (None when neither)."""
    url = load_webhook_url(choice.webhook_file)
    if url is None:
        return None
    state.redactor.add(url)
    return WebhookSink(
        url,
        style=choice.webhook_format,
        digest=digest,
        policy=RetryPolicy.of(settings),
        timeout=settings.timeout,
    )


def notify_webhook(
    state: AppState,
    notify: bool,
    choice: WebhookChoice,
    settings: HttpSettings,
) -> WebhookSink | None:
    """The webhook of ``audit --notify`` (None without ``--notify``), checked before the audit."""
    if not notify:
        return None
    webhook = open_webhook(state, choice, False, settings)
    if webhook is None:
        raise ConfigError(
            f"--notify needs a webhook: put its URL in a file named by --webhook-file, or in "
            f"${WEBHOOK_ENV}"
        )
    return webhook


def notify_owners(
    webhook: WebhookSink,
    archive: Archive | None,
    key: TenantKey,
    summary: RunSummary,
    code: int,
) -> int:
    """``audit --notify``: post what became stale since this webhook was last told.

    What the webhook was told is kept in the archive only once it answered 2xx, so a
    receiver that is down hears of the accounts on the next audit. Returns the exit code.
    The caller closes the webhook (``audit --all`` tells each tenant's owners in turn).
    """
    store = SignalStore(archive) if isinstance(archive, SqlArchive) else None
    tenant = archive.tenant_id(key) if archive is not None else 0
    previous = store.told(tenant, webhook.name) if store else None
    problem = notify_audit(webhook, summary, key.name, previous)
    if problem:
        log.error("the owners of %s were not notified: %s", key.name, problem)
        return EXIT_INCOMPLETE
    if store is not None:
        users = [f.account.user_id for f in summary.to_remove]
        store.remember_told(tenant, webhook.name, users, summary.finished_at)
    return code


@dataclass(frozen=True)
class WebhookChoice:
    """The options of :func:`webhook_options`: where the URL is, and the body's style."""

    webhook_file: str | None
    webhook_format: str


#: Where a webhook's URL comes from, and the body it gets, as ``webhook:``
#: :class:`WebhookChoice`.
webhook_options = option_group(
    "webhook",
    [
        click.option(
            "--webhook-file",
            metavar="FILE",
            envvar="LOGIN_AUDIT_WEBHOOK_FILE",
            help=f"The webhook URL is in FILE (else ${WEBHOOK_ENV}); it is never shown.",
        ),
        click.option(
            "--webhook-format",
            type=click.Choice(WEBHOOK_STYLES),
            default="json",
            show_default=True,
            envvar="LOGIN_AUDIT_WEBHOOK_FORMAT",
            help="The body: plain JSON, or a Slack or Microsoft Teams message.",
        ),
    ],
    WebhookChoice,
)


def _sinks(
    jsonl: str | None,
    ocsf: str | None,
    choice: WebhookChoice,
    digest: bool,
    settings: HttpSettings,
    state: AppState,
) -> list[Sink]:
    sinks: list[Sink] = []
    if jsonl:
        sinks.append(FileSink(jsonl, "jsonl"))
    if ocsf:
        sinks.append(FileSink(ocsf, "ocsf"))
    webhook = open_webhook(state, choice, digest, settings)
    if webhook is not None:
        sinks.append(webhook)
    if not sinks:
        sinks.append(FileSink("-", "jsonl"))
    return sinks


@click.command(context_settings=CONTEXT)
@tenant_options
@archive_options
@click.option(
    "--no-sync",
    is_flag=True,
    envvar="LOGIN_AUDIT_NO_SYNC",
    help="Watch what the archive holds without asking the vendor first.",
)
@overlap_option
@click.option(
    "--dormant-days",
    type=click.IntRange(min=1, max=3650),
    default=90,
    show_default=True,
    envvar=["LOGIN_AUDIT_DORMANT_DAYS", "LOGIN_AUDIT_DAYS"],
    help="A logon after this many days without one is a reactivation (the audit's "
    "$LOGIN_AUDIT_DAYS applies too).",
)
@click.option(
    "--failed-threshold",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    envvar="LOGIN_AUDIT_FAILED_THRESHOLD",
    help="Failed logons within --failed-window on a stale account that make a signal.",
)
@click.option(
    "--failed-window",
    type=click.IntRange(min=1, max=10080),
    default=60,
    show_default=True,
    metavar="MINUTES",
    envvar="LOGIN_AUDIT_FAILED_WINDOW",
    help="Length of the window of --failed-threshold, in minutes.",
)
@click.option(
    "--admin-role",
    multiple=True,
    metavar="NAME",
    envvar="LOGIN_AUDIT_ADMIN_ROLE",
    help="A role that makes an account an administrator (repeatable) [default: "
    + ", ".join(DEFAULT_ADMIN_ROLES)
    + "].",
)
@click.option(
    "--jsonl",
    metavar="FILE",
    envvar="LOGIN_AUDIT_WATCH_JSONL",
    help="Append each new signal to FILE as a JSON line ('-' for stdout) [default: stdout "
    "when no other output is given].",
)
@click.option(
    "--ocsf",
    metavar="FILE",
    envvar="LOGIN_AUDIT_WATCH_OCSF",
    help="Append each new signal to FILE as an OCSF 1.1 Detection Finding (class 2004), JSONL.",
)
@webhook_options
@click.option(
    "--digest",
    is_flag=True,
    envvar="LOGIN_AUDIT_WEBHOOK_DIGEST",
    help="One webhook request for all new signals instead of one per signal.",
)
@click.option(
    "--interval",
    type=Finite(min=1, max=7 * 86400),
    metavar="SECONDS",
    envvar="LOGIN_AUDIT_WATCH_INTERVAL",
    help="Run again every SECONDS until interrupted, instead of once.",
)
@click.option(
    "--skip-history",
    is_flag=True,
    envvar="LOGIN_AUDIT_SKIP_HISTORY",
    help="On the first watch of a tenant, start after the records already archived instead "
    "of reporting the signals of its whole history.",
)
@click.option(
    "--all", "all_tenants", is_flag=True, help="Watch every tenant of the configuration file."
)
@click.option(
    "--config",
    "config_path",
    envvar="LOGIN_AUDIT_CONFIG",
    type=click.Path(dir_okay=False),
    help="The tenants file for --all.",
)
@click.option("--quiet", "-q", is_flag=True, envvar="LOGIN_AUDIT_QUIET", help="Print no summary.")
@evidence_options
@http_options
@common_options
def watch(
    tenant_choice: TenantChoice,
    archive_choice: ArchiveChoice,
    no_sync: bool,
    overlap_minutes: int,
    dormant_days: int,
    failed_threshold: int,
    failed_window: int,
    admin_role: tuple[str, ...],
    jsonl: str | None,
    ocsf: str | None,
    webhook: WebhookChoice,
    digest: bool,
    interval: float | None,
    skip_history: bool,
    all_tenants: bool,
    config_path: str | None,
    quiet: bool,
    evidence: Evidence,
    http: HttpSettings,
) -> None:
    """Report takeover signals from the archive, each exactly once.

    After bringing the archive up to date (unless --no-sync), reads only the records
    stored since the last watch and reports: dormant accounts that log on again, bursts
    of failed logons on stale accounts, accounts created, roles changed to an
    administrator role and API keys created. What was reported, and where, is kept in
    the archive, so a watcher killed at any moment resumes without loss or duplicate; a
    signal that a webhook did not accept (2xx) is sent again on the next run.

    Exit codes: 0 every signal delivered, 4 some not delivered (kept), the sync
    incomplete, or logons by display names that match no account (--identity-map), 2
    configuration.

    \b
    Examples:
      login-audit watch --region eu --jsonl signals.jsonl
      LOGIN_AUDIT_WEBHOOK_URL=... login-audit watch --webhook-format slack --digest
      login-audit watch --all --ocsf /var/log/login-audit/findings.jsonl --interval 900
    """
    state = click.get_current_context().ensure_object(AppState)
    settings = http
    rules = WatchRules(
        dormant_days=dormant_days,
        failed_threshold=failed_threshold,
        failed_window=timedelta(minutes=failed_window),
        admin_roles=tuple(admin_role) or DEFAULT_ADMIN_ROLES,
        identity_map=evidence.read_identity_map(),
        ignore_identities=evidence.ignore_identities,
    )
    sinks = _sinks(jsonl, ocsf, webhook, digest, settings, state)
    if all_tenants:
        tenants = load_tenants(Path(config_path) if config_path else default_config_path())
    else:
        target = chosen_target(tenant_choice)

    connect: list[tuple[TenantKey, Callable[[], contextlib.AbstractContextManager[Platform]]]]
    if all_tenants:
        connect = [
            (tenant_key(t.target, t.name), functools.partial(_tenant_platform, state, t, settings))
            for t in tenants
        ]
    else:
        opener = functools.partial(open_platform, state, target, tenant_choice.token_file, settings)
        connect = [(tenant_key(target, archive_choice.tenant_name), opener)]

    def once() -> int:
        # Without a sync, a mistyped path must not look like an archive with nothing new.
        archive = open_archive_for(state, archive_choice.archive_spec, existing=no_sync)
        codes = []
        try:
            for key, platform_of in connect:
                try:
                    problem = None
                    if not no_sync:
                        with platform_of() as client:
                            problem = _sync(archive, client, key, overlap_minutes)
                    result = run_watch(archive, key, rules, sinks, skip_history=skip_history)
                    if not quiet:
                        text = state.redactor.scrub(describe(result, problem))
                        click.echo(printable(text, keep_newlines=True), err=True)
                    ok = result.complete and not problem and not result.unattributed
                    codes.append(EXIT_OK if ok else EXIT_INCOMPLETE)
                except LoginAuditError as exc:
                    if not all_tenants and interval is None:
                        raise
                    # One tenant's failure, or one failed round, must not stop the others.
                    message = state.redactor.scrub(f"watch {key.name}: error: {exc}")
                    click.echo(printable(message), err=True)
                    codes.append(exc.exit_code)
        finally:
            archive.close()
        return worst(codes)

    try:
        code = once() if interval is None else repeat(once, interval, sleep=time.sleep)
    finally:
        for sink in sinks:
            if isinstance(sink, WebhookSink):
                sink.close()
    raise SystemExit(code)


def takeover_demo(
    state: AppState, output_dir: Path, accounts: int, seed: int, faults: float
) -> int:
    """``demo --scenario takeover``: sync and watch a simulated tenant with planted signals."""
    from login_audit.archive import open_archive
    from login_audit.config import Secret
    from login_audit.http import BearerAuth
    from login_audit.platforms.visionone import VisionOne
    from login_audit.reports.atomic import ensure_dir
    from login_audit.simulator import DEMO_HTTP, FaultConfig, Simulator
    from login_audit.simulator.takeover import build_takeover_tenant

    tenant, planted = build_takeover_tenant(seed, accounts)
    out = ensure_dir(output_dir)
    signals = out / "takeover-signals.jsonl"
    for old in (signals, out / "takeover-archive.sqlite3"):
        old.unlink(missing_ok=True)  # the demo starts from an empty archive every time
    archive = open_archive(str(out / "takeover-archive.sqlite3"))
    with Simulator(tenant, faults=FaultConfig(rate=faults, seed=seed)) as sim:
        click.echo(
            f"Simulator: {len(tenant.accounts)} accounts, {len(tenant.records)} audit records "
            f"with {len(planted)} planted takeover signals at {sim.base_url} "
            f"(fault rate {faults:.0%})",
            err=True,
        )
        token = Secret(sim.token)
        state.redactor.add(token)
        key = TenantKey("visionone", "simulator", "demo")
        with HttpClient(BearerAuth(token), DEMO_HTTP) as http:
            platform = VisionOne(http, sim.base_url, "simulator")
            problem = _sync(archive, platform, key, 30)
        result = run_watch(archive, key, WatchRules(), [FileSink(str(signals), "jsonl")])
    archive.close()
    click.echo(printable(describe(result, problem), keep_newlines=True), err=True)
    found = [json.loads(line) for line in signals.read_text(encoding="utf-8").splitlines()]
    for item in found:
        click.echo(printable(f"  {item['occurredAt'][:16]}  {item['summary']}"), err=True)
    truth = sorted((p["kind"], p["subject"]) for p in planted)
    same = sorted((f["kind"], f["subject"]) for f in found) == truth
    verdict = "match" if same else "DIFFER FROM"
    click.echo(f"  the signals {verdict} the {len(planted)} planted ones", err=True)
    click.echo(f"Signals are in {signals.resolve()}")
    return EXIT_OK if same and result.complete and not problem else EXIT_INCOMPLETE
