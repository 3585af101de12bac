"""The watch job: read what the archive stored since the last run, find signals, deliver.

One watcher per tenant at a time holds the tenant's watch lock (a second one refuses).
New records are read in insertion order from the stored position; each batch's signals
and the position after it commit in one transaction, so a watcher killed at any moment
resumes with no signal lost and none stored twice. Delivery then sends every signal that
a sink has not confirmed (see ``delivery.py``); what cannot be delivered stays pending
for the next run.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from login_audit.analysis import identity_kind
from login_audit.archive.base import Archive, TenantKey, from_us, to_us
from login_audit.archive.signals import FAILED, SENDING, SENT, SignalStore
from login_audit.archive.sql import SqlArchive
from login_audit.delivery import Sink
from login_audit.errors import ConfigError
from login_audit.models import AuditRecord, RecordKind, Signal, SignalKind
from login_audit.sync import LOGONS, coverage
from login_audit.timeutil import Clock, utcnow
from login_audit.watch import Identity, WatchRules, detect

log = logging.getLogger(__name__)

BATCH = 20_000


class ArchiveHistory:
    """:class:`~login_audit.watch.History` answered from the archive's indexes."""

    def __init__(
        self,
        store: SignalStore,
        tenant: int,
        covered_from: datetime | None,
        identity_map: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.store = store
        self.tenant = tenant
        self.covered_from = covered_from
        accounts = store.accounts(tenant)
        self._by_id = {a.id: a for a in accounts}
        self._by_email = {a.email.lower(): a for a in accounts if a.email}
        self._mapped = {}
        for identity, target in identity_map:
            account = self._by_email.get(target.lower()) or self._by_id.get(target)
            if account is not None:
                self._mapped[identity.lower()] = account
        self._times: dict[str, dict[str, list[int]]] = {"principal": {}, "account_id": {}}

    def identity(self, record: AuditRecord) -> Identity:
        """The record's identity; an email or id of a known account joins the two."""
        principal = record.principal.lower()
        account = (
            (self._mapped.get(principal) if principal else None)
            or (self._by_id.get(record.account_id) if record.account_id else None)
            or (self._by_email.get(principal) if principal else None)
        )
        principals = {p for p in (principal, account.email.lower() if account else "") if p}
        ids = {i for i in (record.account_id, account.id if account else None) if i}
        subject = (account.email or account.id) if account else (principal or record.account_id)
        return Identity(
            subject=(subject or "unknown").lower(),
            principals=tuple(sorted(principals)),
            account_ids=tuple(sorted(ids)),
            known=account is not None,
        )

    def prepare(self, records: Iterable[AuditRecord]) -> None:
        """Load the logon times of the identities of ``records`` in a few queries."""
        principals: set[str] = set()
        ids: set[str] = set()
        for record in records:
            if record.kind is not RecordKind.OTHER:
                identity = self.identity(record)
                principals.update(identity.principals)
                ids.update(identity.account_ids)
        self._times = {
            "principal": self.store.logon_times(self.tenant, "principal", principals),
            "account_id": self.store.logon_times(self.tenant, "account_id", ids),
        }

    def last_logon_before(self, identity: Identity, before: datetime) -> datetime | None:
        """The newest successful logon of the identity before ``before``."""
        wanted = (("principal", identity.principals), ("account_id", identity.account_ids))
        if not all(v in self._times[column] for column, values in wanted for v in values):
            return self.store.last_logon_before(
                self.tenant, identity.principals, identity.account_ids, before
            )
        limit, newest = to_us(before), None
        for column, values in wanted:
            for value in values:
                times = self._times[column][value]
                index = bisect.bisect_left(times, limit)
                if index and (newest is None or times[index - 1] > newest):
                    newest = times[index - 1]
        return from_us(newest)

    def failed_logons(self, identity: Identity, after: datetime, until: datetime) -> int:
        """Failed logons of the identity in ``(after, until]``."""
        return self.store.failed_logons(
            self.tenant, identity.principals, identity.account_ids, after, until
        )

    def signalled(self, kind: SignalKind, subject: str, since: datetime, until: datetime) -> bool:
        """True when a stored signal of ``kind`` about ``subject`` occurred in the range."""
        return self.store.signalled(self.tenant, kind.value, subject, since, until)


@dataclass
class WatchResult:
    """What one watch of one tenant did."""

    tenant: TenantKey
    records: int = 0
    signals: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    #: Display names of logons that match no account: their signals cannot be told.
    unattributed: set[str] = field(default_factory=set)

    @property
    def complete(self) -> bool:
        """True when every signal reached every sink."""
        return not self.problems


def _store(archive: Archive) -> SignalStore:
    if not isinstance(archive, SqlArchive):
        raise ConfigError("watch needs an SQL archive (SQLite or PostgreSQL)")
    return SignalStore(archive)


def tenant_json(key: TenantKey) -> dict[str, str]:
    """How a signal names its tenant."""
    return {"platform": key.platform, "region": key.region, "name": key.name}


def find_signals(
    archive: Archive,
    key: TenantKey,
    rules: WatchRules,
    *,
    sinks: Sequence[Sink] = (),
    clock: Clock = utcnow,
    batch: int = BATCH,
    after_batch: Callable[[int], None] = lambda position: None,
    skip_history: bool = False,
) -> WatchResult:
    """Find and store the signals of the records new since the last watch of ``key``.

    The caller holds the tenant's watch lock. ``sinks`` are registered first, so they
    receive every signal this run finds. With ``skip_history``, the first watch of a
    tenant starts after the records already stored instead of reporting their signals.
    """
    store = _store(archive)
    tenant = archive.tenant_id(key)
    result = WatchResult(key)
    started = clock()
    for sink in sinks:
        store.register_sink(tenant, sink.name, started)
    state = coverage(archive, tenant, LOGONS)
    history = ArchiveHistory(
        store, tenant, state.covered_from if state else None, rules.identity_map
    )
    ignored = {name.lower() for name in rules.ignore_identities}
    position = store.position(tenant)
    if skip_history and not store.watched(tenant):
        position = store.last_seq(tenant)
        store.save(tenant, (), position, clock())
    while True:
        rows = store.records_after(tenant, position, batch)
        if not rows:
            break
        history.prepare(record for _, record in rows)
        signals = detect((record for _, record in rows), history, rules)
        for _, record in rows:
            if record.kind is RecordKind.OTHER or record.principal in ignored:
                continue
            looks = identity_kind(record.principal, record.account_id)
            if looks == "display-name" and not history.identity(record).known:
                result.unattributed.add(record.principal)
        position = rows[-1][0]
        result.signals += store.save(tenant, signals, position, clock())
        result.records += len(rows)
        for signal in signals:
            result.kinds[signal.kind.value] = result.kinds.get(signal.kind.value, 0) + 1
        after_batch(position)
    return result


def deliver_pending(
    archive: Archive, key: TenantKey, sink: Sink, *, clock: Clock = utcnow
) -> tuple[int, str | None]:
    """Send ``sink`` every signal it has not confirmed; return ``(sent, problem or None)``."""
    store = _store(archive)
    tenant = archive.tenant_id(key)
    pending = store.pending(tenant, sink.name)
    in_doubt = [p.signal_id for p in pending if p.state == SENDING]
    if in_doubt:
        arrived = sink.already_delivered(in_doubt)
        store.mark(tenant, sink.name, sorted(arrived), SENT, clock())
        pending = [p for p in pending if p.signal_id not in arrived]
    if not pending:
        return 0, None
    bodies: list[dict[str, Any]] = [{**p.body, "tenant": tenant_json(key)} for p in pending]
    ids = [p.signal_id for p in pending]
    store.mark(tenant, sink.name, ids, SENDING, clock())
    confirmed: list[str] = []

    def confirm(done: Sequence[str]) -> None:
        store.mark(tenant, sink.name, done, SENT, clock())
        confirmed.extend(done)

    problem = sink.deliver(bodies, confirm)
    left = sorted(set(ids) - set(confirmed))
    if left:
        store.mark(tenant, sink.name, left, FAILED, clock())
    return len(confirmed), problem


def run_watch(
    archive: Archive,
    key: TenantKey,
    rules: WatchRules,
    sinks: Sequence[Sink],
    *,
    clock: Clock = utcnow,
    batch: int = BATCH,
    skip_history: bool = False,
) -> WatchResult:
    """Find the new signals of one tenant and deliver every pending one, under its lock."""
    tenant = archive.tenant_id(key)
    with archive.lock(tenant, "watch"):
        result = find_signals(
            archive, key, rules, sinks=sinks, clock=clock, batch=batch, skip_history=skip_history
        )
        for sink in sinks:
            sent, problem = deliver_pending(archive, key, sink, clock=clock)
            result.delivered[sink.name] = sent
            if problem:
                result.problems.append(problem)
                log.error("%s", problem)
    return result


def period_signals(
    archive: Archive, key: TenantKey, since: datetime, until: datetime
) -> tuple[Signal, ...] | None:
    """The signals that occurred in ``[since, until)``; None when no watch ever ran."""
    if not isinstance(archive, SqlArchive):
        return None
    store = SignalStore(archive)
    tenant = archive.tenant_id(key)
    if not store.watched(tenant):
        return None
    return tuple(Signal.from_json(body) for body in store.signals(tenant, since, until))


def repeat(
    run_once: Callable[[], int],
    interval: float,
    *,
    sleep: Callable[[float], None],
    runs: int | None = None,
) -> int:
    """Call ``run_once`` every ``interval`` seconds (``runs`` times, or until interrupted).

    Returns the exit code of the last run.
    """
    code, done = 0, 0
    while runs is None or done < runs:
        code = run_once()
        done += 1
        if runs is not None and done >= runs:
            break
        sleep(interval)
    return code
