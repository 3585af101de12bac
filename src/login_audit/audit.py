"""The audit job: read accounts and logons from a platform, decide, summarise.

Failures to read are recorded, not raised: the findings they affect become ``unknown``
and the summary says the run is incomplete, so nothing already read is lost.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from login_audit import __version__
from login_audit.analysis import (
    ActivityIndex,
    LogonFold,
    analyse,
    evidence_doubts,
    judge_api_key,
)
from login_audit.archive.base import Archive, TenantKey
from login_audit.errors import ConfigError, RetryLaterError
from login_audit.models import (
    Account,
    ApiKeyFinding,
    Doubt,
    Finding,
    LoginEvent,
    Policy,
    RecordPage,
    ReportedAccount,
    RunSummary,
    TimeWindow,
)
from login_audit.platforms.base import Platform
from login_audit.sweep import MAX_SLICES, Sweep
from login_audit.sync import DEFAULT_OVERLAP, LOGONS, coverage, sync_stream
from login_audit.timeutil import Clock, utcnow

log = logging.getLogger(__name__)

Progress = Callable[[str, int], None]


def _no_progress(stage: str, count: int) -> None:
    """Default progress sink: nothing."""


#: How many accounts are read before an archived audit checks that they are the tenant's.
SAMPLE = 100


def check_same_tenant(
    sample: list[Account], known: Collection[str], key: TenantKey, base_url: str
) -> None:
    """Refuse when the accounts listed are almost all unknown to the archive's tenant.

    Two tenants at one address (the same region, or one simulator port) under one
    ``--tenant`` name would mix their logs: the second would read only what is newer
    than the first one's watermark and list its own active accounts for removal.
    """
    if not known or not sample:
        return
    seen = sum(1 for account in sample if account.id in known)
    # Account ids are unique per tenant: another tenant shares none. A fifth is a margin
    # for a tenant that listed many new accounts first since its last run.
    if seen * 5 >= len(sample):
        return
    raise ConfigError(
        f"the accounts at {base_url} are not those the archive holds for tenant "
        f"{key.name!r}: {seen} of the first {len(sample)} are known to it. Is this another "
        "tenant at the same address? Give each tenant its own --tenant NAME (or --archive)"
    )


class _AccountReader(threading.Thread):
    """Lists the accounts in the background while the logons are being read."""

    def __init__(self, platform: Platform, progress: Progress, expected: int = 0) -> None:
        super().__init__(name="accounts", daemon=True)
        self.platform, self.progress, self.expected = platform, progress, expected
        self.accounts: list[Account] = []
        self._where: dict[str, int] = {}
        self.problem = ""
        self.error: BaseException | None = None
        #: Set once the first ``SAMPLE`` accounts (or all of them) have been read.
        self.sampled = threading.Event()

    def run(self) -> None:
        try:
            for account in self.platform.list_accounts(self.expected):
                where = self._where.get(account.id)
                if where is None:
                    self._where[account.id] = len(self.accounts)
                    self.accounts.append(account)
                else:
                    self.accounts[where] = account  # read again: the newer version
                self.progress("accounts", len(self.accounts))
                if len(self.accounts) >= SAMPLE:
                    self.sampled.set()
        except RetryLaterError as exc:
            self.problem = f"account list incomplete after {len(self.accounts)} accounts: {exc}"
            log.error("%s", self.problem)
        except BaseException as exc:  # re-raised in the caller's thread
            self.error = exc
        finally:
            self.sampled.set()

    def result(self) -> list[Account]:
        """Wait for the listing; re-raise what it could not handle (a 401, a 403...)."""
        self.join()
        if self.error is not None:
            raise self.error
        return self.accounts


def confirm_account_list(
    platform: Platform, accounts: list[Account], previous: set[str], problems: list[str]
) -> list[Account]:
    """Read the list again when accounts of the last snapshot are missing from it.

    Paging is by position: an account deleted while the list is being read shifts the
    rest, and the account that moves across a page boundary is not seen. A vanished
    account is rare, so only then is the list read again, until two readings agree
    (at most three); if they never do, the run is incomplete rather than wrong.
    """
    current = {a.id for a in accounts}
    if not previous or previous <= current:
        return accounts
    for _ in range(2):
        try:
            again = list(platform.list_accounts())
        except RetryLaterError as exc:
            problems.append(f"account list incomplete on a second reading: {exc}")
            return accounts
        ids = {a.id for a in again}
        if ids == current:
            return again
        accounts, current = again, ids
    problems.append("the account list kept changing while it was read; run the audit again")
    log.error("%s", problems[-1])
    return accounts


def judge(
    accounts: list[Account],
    index: ActivityIndex,
    policy: Policy,
    now: datetime,
    window_start: datetime,
    problems: list[str],
    *,
    logins_complete: bool,
    first_seen: dict[str, datetime] | None = None,
) -> tuple[Finding, ...]:
    """The findings of one audit; doubts that made accounts ``unknown`` become problems."""
    everyone, by_type = evidence_doubts(accounts, index, policy, now, window_start)
    findings = analyse(
        accounts,
        index,
        policy,
        now,
        window_start,
        logins_complete=logins_complete,
        incomplete_reason="the audit log could not be read completely",
        first_seen=first_seen,
        doubts=(everyone, by_type),
    )
    doubted = {f.account.auth_type.lower() for f in findings if f.doubt is Doubt.NOT_PROVEN_STALE}
    lines = [f"accounts not judged: {everyone}"] if everyone and doubted else []
    if not everyone:
        lines += [f"{k} accounts not judged: {why}" for k, why in by_type.items() if k in doubted]
    odd = [f for f in findings if f.doubt in (Doubt.FUTURE_LOGON, Doubt.UNDATED_LOGON)]
    if odd:
        lines.append(
            f"{len(odd)} account{'s' if len(odd) > 1 else ''} not judged on records that cannot "
            f"be trusted, e.g. {odd[0].account.user_id}: {odd[0].reason}"
        )
    for line in lines:
        log.warning("%s", line)
    problems.extend(lines)
    return findings


def evidence_warnings(index: ActivityIndex, policy: Policy, now: datetime) -> list[str]:
    """What the user should check about identities, though it makes no account unknown."""
    warnings = []
    if index.unmapped_targets:
        shown = ", ".join(repr(t) for t in index.unmapped_targets[:3])
        more = len(index.unmapped_targets) - 3
        warnings.append(
            f"the identity map names {len(index.unmapped_targets)} account(s) the tenant does "
            f"not have ({shown}{f' and {more} more' if more > 0 else ''}); their identities "
            "stay unmatched"
        )
    if index.conflicting:
        warnings.append(
            "identities mapped to two different accounts, so to none: "
            + ", ".join(sorted(repr(i) for i in index.conflicting)[:5])
        )
    threshold = now - timedelta(days=policy.days)
    for identity in index.unmatched_identities():
        seen = identity.last_success
        person = "@" not in identity.identity and identity.identity != "root account"
        if identity.kind == "ignored" and person and seen is not None and seen >= threshold:
            warnings.append(
                f"the ignored identity {identity.identity!r} logged on {seen:%Y-%m-%d}: if "
                "it is a person's display name, map it with --identity-map instead, or "
                "that person's account may be listed for removal"
            )
    return warnings


def audit_api_keys(
    platform: Platform, days: int, now: datetime, problems: list[str]
) -> tuple[ApiKeyFinding, ...]:
    """Judge every API key; a failure to list them is a problem of the run."""
    keys = []
    try:
        keys = list(platform.list_api_keys())
    except RetryLaterError as exc:
        problems.append(f"API key list incomplete after {len(keys)} keys: {exc}")
        log.error("%s", problems[-1])
    findings = [judge_api_key(k, days, now) for k in keys]
    findings.sort(key=lambda f: (not f.flagged, f.key.name.lower(), f.key.id))
    return tuple(findings)


@dataclass
class Reading:
    """What the read step of an audit gathered, for the steps every audit shares."""

    accounts: list[Account]
    #: Logon evidence besides what the account list reports; read once, lazily.
    logons: Iterable[LoginEvent]
    events_read: int
    window: TimeWindow
    logins_complete: bool
    #: When accounts created since the first snapshot were first seen (archived audits).
    first_seen: dict[str, datetime] | None = None


#: The read step: given the start time and the run's problem list, read the tenant.
Read = Callable[[datetime, list[str]], Reading]


def audit_with(
    platform: Platform,
    policy: Policy,
    read: Read,
    *,
    clock: Clock = utcnow,
    api_keys: bool = False,
) -> RunSummary:
    """The skeleton of every audit: read, judge the API keys, index, judge, summarise.

    Only ``read`` differs between the direct and the archived audit; what it could not
    read it adds to the problems, which make the run incomplete.
    """
    started = clock()
    problems: list[str] = []
    reading = read(started, problems)
    keys = audit_api_keys(platform, policy.days, started, problems) if api_keys else None
    index = ActivityIndex(reading.accounts, policy)
    index.add_all(platform.account_activity())
    index.add_all(reading.logons)
    findings = judge(
        reading.accounts,
        index,
        policy,
        started,
        reading.window.start,
        problems,
        logins_complete=reading.logins_complete,
        first_seen=reading.first_seen,
    )
    return RunSummary(
        tool_version=__version__,
        platform=platform.name,
        region=platform.region,
        base_url=platform.base_url,
        started_at=started,
        finished_at=clock(),
        window=reading.window,
        policy=policy,
        complete=not problems,
        problems=tuple(problems),
        requests=platform.requests_made(),
        events_read=reading.events_read,
        unmatched_events=index.unmatched,
        findings=findings,
        api_keys=keys,
        unmatched=index.unmatched_identities(),
        warnings=tuple(evidence_warnings(index, policy, started)),
    )


def run_audit(
    platform: Platform,
    policy: Policy,
    *,
    clock: Clock = utcnow,
    progress: Progress = _no_progress,
    max_slices: int = MAX_SLICES,
    api_keys: bool = False,
) -> RunSummary:
    """Audit one tenant straight from the vendor; see ``analysis.decide`` for the rules.

    Accounts are listed while the logon records are swept (in parallel time slices on a
    large window), all under the one pacer of the platform's HTTP client.
    """

    def read(started: datetime, problems: list[str]) -> Reading:
        window = TimeWindow(start=started - timedelta(days=platform.retention_days), end=started)
        reader = _AccountReader(platform, progress)
        reader.start()
        fold = LogonFold(window)

        def commit(page: RecordPage, states: object) -> None:
            fold.add(page.records)
            progress("logon events", fold.events)

        sweep = Sweep(platform, window, logons_only=True, max_slices=max_slices)
        try:
            sweep_problems = sweep.run(commit)
        finally:
            accounts = reader.result()
        if reader.problem:
            problems.append(reader.problem)
        if sweep_problems:
            problems.append(
                f"logon records incomplete after {fold.events} events: {sweep_problems[0]}"
            )
            log.error("%s", problems[-1])
        return Reading(accounts, fold.events_for_index(), fold.events, window, not sweep_problems)

    return audit_with(platform, policy, read, clock=clock, api_keys=api_keys)


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
    api_keys: bool = False,
) -> RunSummary:
    """Audit one tenant from the archive after bringing its logon records up to date.

    ``--days`` may exceed the vendor's retention once the archive covers that much
    history; otherwise the run refuses (``ConfigError``) unless ``allow_short_history``.
    """
    tenant = archive.tenant_id(tenant_key)

    def read(started: datetime, problems: list[str]) -> Reading:
        before = coverage(archive, tenant, LOGONS)
        problem = required_history_error(
            policy, before.covered_from if before else None, platform.retention_days, started
        )
        if problem and not allow_short_history:
            raise ConfigError(problem)
        with archive.lock(tenant):
            previous = archive.last_snapshot_ids(tenant)
            reader = _AccountReader(platform, progress, expected=len(previous))
            reader.start()
            known = archive.known_account_ids(tenant)
            if known:
                # Before anything is stored: the logs of another tenant must not move this
                # tenant's watermark.
                reader.sampled.wait()
                if reader.error is not None:
                    raise reader.error
                check_same_tenant(reader.accounts[:SAMPLE], known, tenant_key, platform.base_url)
            try:
                result = sync_stream(
                    archive,
                    platform,
                    tenant,
                    LOGONS,
                    clock=clock,
                    overlap=overlap,
                    progress=progress,
                )
            finally:
                accounts = reader.result()
            if reader.problem:
                problems.append(reader.problem)
            else:
                accounts = confirm_account_list(platform, accounts, previous, problems)
            # After the sync: the archive's connection is used by one thread at a time.
            archive.store_accounts(tenant, accounts, started)
        if not result.complete:
            problems.append(result.problem)
        state = coverage(archive, tenant, LOGONS)
        window_start = state.covered_from if state and state.covered_from else result.window.start
        first_seen, first_snapshot = archive.first_seen(tenant)
        witnessed = {
            account_id: seen
            for account_id, seen in first_seen.items()
            if first_snapshot is not None and seen > first_snapshot
        }
        return Reading(
            accounts,
            archived_logons(archive, tenant),
            result.fetched,
            TimeWindow(window_start, started),
            result.complete,
            witnessed,
        )

    summary = audit_with(platform, policy, read, clock=clock, api_keys=api_keys)
    archive.record_audit(
        tenant,
        summary.finished_at,
        summary.started_at,
        summary.complete,
        policy.days,
        [ReportedAccount.of(f) for f in summary.to_remove],
    )
    return summary


def archived_logons(archive: Archive, tenant: int) -> Iterator[LoginEvent]:
    """The newest successful and failed logon of each identity the archive holds, and an
    undated one where undated records exist."""
    for aggregate in archive.logon_aggregates(tenant):
        if aggregate.last is not None:
            yield LoginEvent(
                aggregate.last, aggregate.successful, aggregate.principal, aggregate.account_id
            )
        if aggregate.undated:
            yield LoginEvent(None, aggregate.successful, aggregate.principal, aggregate.account_id)
