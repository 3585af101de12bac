"""The audit job: read accounts and logons from a platform, decide, summarise.

Failures to read are recorded, not raised: the findings they affect become ``unknown``
and the summary says the run is incomplete, so nothing already read is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from login_audit import __version__
from login_audit.analysis import ActivityIndex, analyse
from login_audit.archive.base import Archive, TenantKey
from login_audit.errors import ConfigError, RetryLaterError
from login_audit.models import Account, LoginEvent, Policy, RunSummary, TimeWindow
from login_audit.platforms.base import Platform
from login_audit.sync import DEFAULT_OVERLAP, LOGONS, coverage, sync_stream
from login_audit.timeutil import Clock, utcnow

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]


def _no_progress(stage: str, count: int) -> None:
    """Default progress sink: nothing."""


def run_audit(
    platform: Platform,
    policy: Policy,
    *,
    clock: Clock = utcnow,
    progress: Progress = _no_progress,
) -> RunSummary:
    """Audit one tenant: every account gets one finding; see ``analysis.decide``."""
    started = clock()
    problems: list[str] = []

    accounts: list[Account] = []
    try:
        for account in platform.list_accounts():
            accounts.append(account)
            progress("accounts", len(accounts))
    except RetryLaterError as exc:
        problems.append(f"account list incomplete after {len(accounts)} accounts: {exc}")
        log.error("%s", problems[-1])

    window = TimeWindow(start=started - timedelta(days=platform.retention_days), end=started)
    index = ActivityIndex(accounts)
    index.add_all(platform.account_activity())
    logins_complete = True
    try:
        for event in platform.iter_logins(window):
            index.add(event)
            if index.events % 200 == 0:
                progress("logon events", index.events)
    except RetryLaterError as exc:
        logins_complete = False
        problems.append(f"logon records incomplete after {index.events} events: {exc}")
        log.error("%s", problems[-1])
    progress("logon events", index.events)

    findings = analyse(
        accounts,
        index,
        policy,
        started,
        window.start,
        logins_complete=logins_complete,
        incomplete_reason="the audit log could not be read completely",
    )
    return RunSummary(
        tool_version=__version__,
        platform=platform.name,
        region=platform.region,
        base_url=platform.base_url,
        started_at=started,
        finished_at=clock(),
        window=window,
        policy=policy,
        complete=not problems,
        problems=tuple(problems),
        requests=platform.requests_made(),
        events_read=index.events,
        unmatched_events=index.unmatched,
        findings=findings,
    )


def required_history_error(
    policy: Policy, covered_from: datetime | None, retention: int, now: datetime
) -> str | None:
    """Why the archive cannot answer ``--days`` yet, or None when it can."""
    needed = now - timedelta(days=policy.days)
    reach = now - timedelta(days=retention)
    available = min(covered_from, reach) if covered_from else reach
    if available <= needed:
        return None
    archived = (
        f"the archive holds logons since {covered_from:%Y-%m-%d}"
        if covered_from
        else ("the archive holds no logons yet")
    )
    most = max(1, (now - available).days)
    return (
        f"--days {policy.days} needs logons since {needed:%Y-%m-%d}, but {archived} and the "
        f"vendor keeps {retention} days (since {reach:%Y-%m-%d}); use --days {most} or less, "
        "or --allow-short-history to report 'no-login' as 'none since' the oldest record"
    )


def run_archived_audit(
    platform: Platform,
    archive: Archive,
    tenant_key: TenantKey,
    policy: Policy,
    *,
    clock: Clock = utcnow,
    progress: Progress = _no_progress,
    allow_short_history: bool = False,
    overlap: timedelta = DEFAULT_OVERLAP,
) -> RunSummary:
    """Audit one tenant from the archive after bringing its logon records up to date.

    ``--days`` may exceed the vendor's retention once the archive covers that much
    history; otherwise the run refuses (``ConfigError``) unless ``allow_short_history``.
    """
    started = clock()
    tenant = archive.tenant_id(tenant_key)
    before = coverage(archive, tenant, LOGONS)
    problem = required_history_error(
        policy, before.covered_from if before else None, platform.retention_days, started
    )
    if problem and not allow_short_history:
        raise ConfigError(problem)
    problems: list[str] = []
    with archive.lock(tenant):
        accounts: list[Account] = []
        try:
            for account in platform.list_accounts():
                accounts.append(account)
                progress("accounts", len(accounts))
        except RetryLaterError as exc:
            problems.append(f"account list incomplete after {len(accounts)} accounts: {exc}")
            log.error("%s", problems[-1])
        archive.store_accounts(tenant, accounts, started)
        result = sync_stream(
            archive, platform, tenant, LOGONS, clock=clock, overlap=overlap, progress=progress
        )
    if not result.complete:
        problems.append(result.problem)
    state = coverage(archive, tenant, LOGONS)
    window_start = state.covered_from if state and state.covered_from else result.window.start
    index = ActivityIndex(accounts)
    index.add_all(platform.account_activity())
    for aggregate in archive.logon_aggregates(tenant):
        if aggregate.last is not None:
            index.add(
                LoginEvent(
                    aggregate.last, aggregate.successful, aggregate.principal, aggregate.account_id
                )
            )
        if aggregate.undated:
            index.add(
                LoginEvent(None, aggregate.successful, aggregate.principal, aggregate.account_id)
            )
    first_seen, first_snapshot = archive.first_seen(tenant)
    witnessed = {
        account_id: seen
        for account_id, seen in first_seen.items()
        if first_snapshot is not None and seen > first_snapshot
    }
    findings = analyse(
        accounts,
        index,
        policy,
        started,
        window_start,
        logins_complete=result.complete,
        incomplete_reason="the audit log could not be read completely",
        first_seen=witnessed,
    )
    return RunSummary(
        tool_version=__version__,
        platform=platform.name,
        region=platform.region,
        base_url=platform.base_url,
        started_at=started,
        finished_at=clock(),
        window=TimeWindow(window_start, started),
        policy=policy,
        complete=not problems,
        problems=tuple(problems),
        requests=platform.requests_made(),
        events_read=result.fetched,
        unmatched_events=index.unmatched,
        findings=findings,
    )
