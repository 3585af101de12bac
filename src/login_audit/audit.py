"""The audit job: read accounts and logons from a platform, decide, summarise.

Failures to read are recorded, not raised: the findings they affect become ``unknown``
and the summary says the run is incomplete, so nothing already read is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from login_audit import __version__
from login_audit.analysis import ActivityIndex, analyse
from login_audit.errors import RetryLaterError
from login_audit.models import Account, Policy, RunSummary, TimeWindow
from login_audit.platforms.base import Platform
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
