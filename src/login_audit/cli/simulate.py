"""``login-audit simulate`` and ``login-audit demo``: the built-in fake vendor."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from login_audit.archive import open_archive
from login_audit.cli.common import (
    Finite,
    audit_and_report,
    common_options,
)
from login_audit.cli.state import CONTEXT, AppState
from login_audit.config import C1_KEY_ENV, TOKEN_ENV, URL_ENV, Secret
from login_audit.errors import EXIT_UNEXPECTED, ConfigError
from login_audit.http import BearerAuth, HttpClient
from login_audit.models import Policy
from login_audit.platforms.visionone import VisionOne
from login_audit.reports.atomic import NOT_REGULAR, atomic_text, check_output_dir, is_unusual
from login_audit.service import exit_code_for, render_summary
from login_audit.simulator.behaviours import BEHAVIOURS

F = TypeVar("F", bound=Callable[..., Any])

#: The largest simulated tenant: a million accounts take minutes and gigabytes to build; a
#: typo of a few more digits would never end.
MAX_ACCOUNTS = 1_000_000


def scenario_option(help_text: str) -> Callable[[F], F]:
    """``--scenario``: which synthetic tenant, ``audit`` (the default) or ``takeover``."""
    return click.option(
        "--scenario",
        type=click.Choice(["audit", "takeover"]),
        default="audit",
        show_default=True,
        help=help_text,
    )


@click.command(context_settings=CONTEXT)
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port (0 picks a free one).")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the tenant.")
@click.option("--accounts", type=click.IntRange(1, MAX_ACCOUNTS), default=50, show_default=True)
@click.option("--token", help="Token clients must send (a random one if omitted).")
@click.option(
    "--faults",
    type=Finite(0, 1),
    default=0.0,
    show_default=True,
    help="Share of requests that fail (429, 5xx, dropped or truncated).",
)
@click.option("--latency-ms", type=Finite(min=0, max=60_000), default=0.0, show_default=True)
@click.option(
    "--rate-limit",
    type=click.IntRange(min=1),
    default=500,
    show_default=True,
    help="Requests per window before the simulator answers 429.",
)
@click.option(
    "--rate-window",
    type=Finite(min=0.001, max=86400),
    default=60.0,
    show_default=True,
    help="Rate-limit window in simulated seconds.",
)
@click.option(
    "--time-scale",
    type=Finite(min=0.0001, max=1000),
    default=1.0,
    show_default=True,
    help="Real seconds per simulated second of the rate window.",
)
@click.option(
    "--truth",
    type=click.Path(dir_okay=False),
    help="Write the tenant's ground truth (what the default policy must flag) here.",
)
@scenario_option(
    "audit: accounts of every class; takeover: normal traffic with planted takeover signals "
    "for 'watch' (the truth lists them)."
)
@click.option(
    "--behave",
    "behaviours",
    multiple=True,
    type=click.Choice(sorted(BEHAVIOURS)),
    help="Behave as the real vendor might, unlike the default (repeatable): "
    + "; ".join(f"{name}: {what}" for name, what in sorted(BEHAVIOURS.items()))
    + ".",
)
@click.option(
    "--identity-map-out",
    type=click.Path(dir_okay=False),
    help="Write the identity map (Identity,UserId) that --behave display-names calls for.",
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
    scenario: str,
    behaviours: tuple[str, ...],
    identity_map_out: str | None,
) -> None:
    """Serve a synthetic Vision One and Cloud One tenant on 127.0.0.1 until interrupted.

    The simulator follows the vendor's documented behaviour: paging with nextLink,
    top of 50/100/200, the TMV1-Filter language, 180-day retention, error bodies and
    a rate limit answered with 429. --faults switches on random failures.

    \b
    Example:
      login-audit simulate --port 8080 --accounts 500 --faults 0.2 --truth truth.json
    """
    from login_audit.simulator import FaultConfig, Simulator, build_tenant
    from login_audit.simulator.cloudone import build_cloudone_tenant

    if scenario == "takeover":
        from login_audit.simulator.takeover import build_takeover_cloudone, build_takeover_tenant

        tenant, v1_signals = build_takeover_tenant(seed, accounts)
        c1, c1_signals = build_takeover_cloudone(seed, max(12, accounts // 2))
    else:
        tenant, c1 = build_tenant(seed, accounts), build_cloudone_tenant(seed, accounts)
        v1_signals = c1_signals = []
    if truth:
        data = {
            "visionone": {**tenant.truth(), "signals": v1_signals},
            "cloudone": {**c1.truth(), "signals": c1_signals},
        }
        _write_file(Path(truth), json.dumps(data, indent=2) + "\n", "--truth")
    if identity_map_out:
        from login_audit.simulator.behaviours import identity_map

        lines = ["Identity,UserId", *(f"{name},{email}" for name, email in identity_map(tenant))]
        _write_file(Path(identity_map_out), "\n".join(lines) + "\n", "--identity-map-out")
    try:
        sim = Simulator(
            tenant,
            cloudone=c1,
            token=token,
            faults=FaultConfig(rate=faults, seed=seed),
            rate_limit=rate_limit,
            rate_window=rate_window,
            time_scale=time_scale,
            latency_ms=latency_ms,
            port=port,
            behaviours=behaviours,
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on 127.0.0.1 port {port}: {exc.strerror}; choose another with "
            "--port (0 picks a free one)"
        ) from None
    shown = f", behaving: {', '.join(behaviours)}" if behaviours else ""
    click.echo(
        f"Simulating a Vision One tenant (seed {seed}, {len(tenant.accounts)} accounts, "
        f"{len(tenant.records)} audit records{shown}) at {sim.base_url}\n"
        f"  export {URL_ENV}={sim.base_url}\n"
        f"  export {TOKEN_ENV}={sim.token}   # the simulator's own token\n"
        f"and a Cloud One account ({len(c1.users)} users, {len(c1.logs)} audit entries):\n"
        f"  export {C1_KEY_ENV}={sim.token}\n"
        f"  login-audit audit --platform cloudone --base-url {sim.base_url}\n"
        "Press Ctrl-C to stop."
    )
    try:
        sim.serve_forever()
    finally:
        # Ctrl-C is how a simulator is stopped, and still ends as any interrupted run (130).
        sim.stop()


@click.command(context_settings=CONTEXT)
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False),
    default="demo-output",
    show_default=True,
    help="Where the demo's reports are written.",
)
@click.option("--accounts", type=click.IntRange(1, MAX_ACCOUNTS), default=300, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--faults",
    type=Finite(0, 1),
    default=0.2,
    show_default=True,
    help="Share of the simulator's answers that fail, to show the retries at work.",
)
@scenario_option(
    "audit: the stale-account audit; takeover: sync and watch a tenant with planted takeover "
    "signals."
)
@common_options
def demo(output_dir: str, accounts: int, seed: int, faults: float, scenario: str) -> None:
    """Audit a built-in simulated tenant end to end and show where the reports are.

    Starts the simulator in this process, audits it exactly as 'audit' would audit a
    real tenant (over HTTP on 127.0.0.1), writes the reports and compares the cleanup
    list with the simulator's ground truth.

    \b
    Examples:
      login-audit demo --output-dir /tmp/demo --accounts 1000 --faults 0.3
      login-audit demo --scenario takeover
    """
    from login_audit.simulator import DEMO_HTTP, FaultConfig, Simulator, build_tenant

    state = click.get_current_context().ensure_object(AppState)
    if scenario == "takeover":
        from login_audit.cli.watch import takeover_demo

        raise SystemExit(takeover_demo(state, Path(output_dir), accounts, seed, faults))
    tenant = build_tenant(seed, accounts)
    # Checked now, created only when the reports are written: an interrupted demo leaves
    # no empty folder behind.
    out = check_output_dir(Path(output_dir))
    # The simulator is new on every run (a new port, so a new tenant key): its archive is
    # of no use afterwards, and kept apart so the output folder holds only the reports.
    with (
        tempfile.TemporaryDirectory(prefix="login-audit-demo-") as scratch,
        contextlib.closing(open_archive(str(Path(scratch) / "demo-archive.sqlite3"))) as archive,
        Simulator(tenant, faults=FaultConfig(rate=faults, seed=seed)) as sim,
    ):
        click.echo(
            f"Simulator: {len(tenant.accounts)} accounts, {len(tenant.records)} audit "
            f"records at {sim.base_url} (fault rate {faults:.0%})",
            err=True,
        )
        token = Secret(sim.token)
        state.redactor.add(token)
        with HttpClient(BearerAuth(token), DEMO_HTTP) as http:
            summary, notes = audit_and_report(
                state,
                VisionOne(http, sim.base_url, "simulator"),
                policy=Policy(days=90, grace_days=90),
                output_dir=out,
                archive=archive,
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


def _write_file(path: Path, text: str, option: str) -> None:
    """Write a file the user named, privately and whole; a problem is one line naming ``option``."""
    why = NOT_REGULAR if is_unusual(path) else None
    if why is None:
        try:
            with atomic_text(path) as handle:
                handle.write(text)
        except OSError as exc:
            why = str(exc.strerror or exc)
    if why is not None:
        raise ConfigError(f"cannot write {path} ({option}): {why}; choose another path")
