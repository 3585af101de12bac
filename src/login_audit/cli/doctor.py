"""``login-audit doctor``: check each tenant's set-up, one line per check, with the fix."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from login_audit.archive import (
    archive_failure,
    archive_secrets,
    default_archive_path,
    open_archive,
)
from login_audit.cli.common import (
    TenantChoice,
    chosen_target,
    common_options,
    http_options,
    open_platform,
    tenant_options,
)
from login_audit.cli.state import CONTEXT, AppState
from login_audit.config import (
    HttpSettings,
    Secret,
    Target,
    default_config_path,
    load_tenants,
)
from login_audit.errors import (
    EXIT_CONFIG,
    EXIT_OK,
    CredentialsError,
    LoginAuditError,
    PermissionDeniedError,
    RetryLaterError,
    UnreachableError,
)
from login_audit.models import TimeWindow
from login_audit.printable import printable
from login_audit.timeutil import utcnow

MAX_SKEW = timedelta(seconds=60)


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        """``ok`` or ``FAIL``, the check, and for a failure what to do."""
        return f"  {'ok  ' if self.ok else 'FAIL'}  {self.name}" + (
            f": {self.detail}" if self.detail else ""
        )


def _probe(name: str, action: Any) -> Check:
    try:
        action()
    except PermissionDeniedError as exc:
        return Check(name, False, f"{exc}; grant it to the API key's role")
    except CredentialsError as exc:
        return Check(name, False, str(exc))
    except RetryLaterError as exc:
        if exc.status is not None:
            # The host answered: the address is right, the service failed for now.
            return Check(name, False, f"{exc}; the service is failing for now: try again later")
        hint = "" if isinstance(exc, UnreachableError) else "; check --region/--base-url"
        return Check(name, False, f"{exc}{hint}; check the network and proxies")
    except LoginAuditError as exc:
        return Check(name, False, str(exc))
    return Check(name, True)


def check_tenant(
    state: AppState,
    label: str,
    target: Target,
    token_file: str | None,
    token_env: str | None,
    settings: HttpSettings,
) -> list[Check]:
    """The checks of one tenant."""
    checks: list[Check] = []
    if token_env:
        target = Target(target.platform, target.region, target.base_url, token_env)
    try:
        with open_platform(state, target, token_file, settings) as client:
            checks.append(Check(f"{label}: token found", True))
            first = _probe(
                f"{label}: host reachable, token accepted, accounts readable",
                lambda: next(iter(client.list_accounts()), None),
            )
            checks.append(first)
            now = utcnow()
            window = TimeWindow(now - timedelta(minutes=5), now)
            checks.append(
                _probe(
                    f"{label}: audit log readable",
                    lambda: next(iter(client.record_pages(window, logons_only=True)), None),
                )
            )
            server = client.http.last_server_date
            if server is not None:
                skew = abs(utcnow() - server)
                checks.append(
                    Check(
                        f"{label}: clock within {MAX_SKEW.seconds} s of the server",
                        skew <= MAX_SKEW + timedelta(seconds=2),
                        ""
                        if skew <= MAX_SKEW
                        else f"the clock is off by {skew.total_seconds():.0f} s; sync it (NTP)",
                    )
                )
    except CredentialsError as exc:
        checks.append(Check(f"{label}: token found", False, str(exc)))
    return checks


def check_archive(spec: str | None) -> Check:
    """The archive opens and can be read (a SQLite file not created yet is fine)."""
    if not (spec and "://" in spec):
        path = Path(spec).expanduser() if spec else default_archive_path()
        if not path.exists():
            return Check(
                f"archive {path}", True, "not created yet; the first audit or sync will create it"
            )
    try:
        archive = open_archive(spec, read_only=True)
        try:
            archive.info()
        finally:
            archive.close()
    except LoginAuditError as exc:
        return Check("archive readable", False, str(exc))
    except Exception as exc:
        failure = archive_failure(exc, spec or str(default_archive_path()))
        if failure is None:
            raise
        return Check("archive readable", False, str(failure))
    return Check(f"archive readable ({archive.location})", True)


@click.command(context_settings=CONTEXT)
@tenant_options
@click.option("--archive", "archive_spec", envvar="LOGIN_AUDIT_ARCHIVE", help="The archive.")
@click.option("--all", "all_tenants", is_flag=True, help="Check every tenant of the config file.")
@click.option(
    "--config",
    "config_path",
    envvar="LOGIN_AUDIT_CONFIG",
    type=click.Path(dir_okay=False),
    help="The tenants file for --all.",
)
@http_options
@common_options
def doctor(
    tenant_choice: TenantChoice,
    archive_spec: str | None,
    all_tenants: bool,
    config_path: str | None,
    http: HttpSettings,
) -> None:
    """Check that the tool can do its job: one line per check, with the fix.

    For each tenant: the token is found, the host answers and accepts it, the API
    key can read accounts and the audit log, and this machine's clock agrees with the
    server's; then that the archive opens and passes SQLite's quick_check. --max-attempts
    defaults to 2 here. Exits 0 when every check passes, 2 otherwise.

    \b
    Examples:
      login-audit doctor --region eu
      login-audit doctor --all --config ~/.config/login-audit/config.toml
    """
    ctx = click.get_current_context()
    state = ctx.ensure_object(AppState)
    settings = http
    if ctx.get_parameter_source("max_attempts") is ParameterSource.DEFAULT:
        # A check should answer quickly: two attempts ride out one passing fault.
        settings = replace(settings, max_attempts=2)
    checks: list[Check] = []
    if all_tenants:
        for tenant in load_tenants(Path(config_path) if config_path else default_config_path()):
            checks += check_tenant(
                state, tenant.name, tenant.target, tenant.token_file, tenant.token_env, settings
            )
    else:
        target = chosen_target(tenant_choice)
        checks += check_tenant(
            state,
            f"{target.platform} {target.key_region}",
            target,
            tenant_choice.token_file,
            None,
            settings,
        )
    for secret in archive_secrets(archive_spec):
        state.redactor.add(Secret(secret))
    checks.append(check_archive(archive_spec))
    for check in checks:
        click.echo(printable(state.redactor.scrub(check.line())))
    failed = sum(1 for c in checks if not c.ok)
    click.echo(f"doctor: {len(checks) - failed} of {len(checks)} checks passed", err=True)
    raise SystemExit(EXIT_CONFIG if failed else EXIT_OK)
