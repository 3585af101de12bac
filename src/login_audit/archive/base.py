"""The archive interface: what sync, audit and export need from an event store."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

from login_audit.models import Account, AuditRecord, ReportedAccount
from login_audit.syncstate import Checkpoint, SyncState

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def to_us(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the epoch (the stored form)."""
    if moment.tzinfo is None:
        moment = moment.astimezone(timezone.utc)  # as it always was: local time
    return (moment - _EPOCH) // _MICROSECOND


def from_us(value: int | None) -> datetime | None:
    """The inverse of :func:`to_us` (None stays None)."""
    if value is None:
        return None
    # Adding to the epoch is twice as fast as fromtimestamp, and an audit of a large tenant
    # turns every account's first-seen time back into a datetime.
    return _EPOCH + timedelta(microseconds=int(value))


def busy_message(location: str, purpose: str = "sync") -> str:
    """What a process is told when another holds the ``purpose`` lock of its tenant."""
    if purpose == "sync":
        doing = f"syncing this tenant into {location} or applying changes to it"
    else:
        doing = f"{purpose}ing this tenant in {location}"
    return f"another login-audit process is {doing}; wait for it to finish, then run again"


@dataclass(frozen=True)
class TenantKey:
    """Which tenant a set of records belongs to; several tenants share one archive."""

    platform: str
    region: str
    name: str = "default"


@dataclass(frozen=True)
class LogonAggregate:
    """The newest logon of one identity and kind, as the audit needs it."""

    principal: str
    account_id: str | None
    successful: bool
    last: datetime | None
    undated: int


@dataclass(frozen=True)
class TenantInfo:
    """What ``archive info`` shows for one tenant."""

    key: TenantKey
    records: int
    first_record: datetime | None
    last_record: datetime | None
    streams: dict[str, SyncState]
    accounts: int
    raw_bytes: int = 0


class Archive(Protocol):
    """An event store; SQLite and PostgreSQL implement it."""

    location: str

    def tenant_id(self, key: TenantKey) -> int:
        """The id of ``key``, created on first use."""
        ...

    def find_tenant(self, key: TenantKey) -> int | None:
        """The id of ``key``, or None when the archive has never seen it."""
        ...

    def lock(self, tenant: int, purpose: str = "sync") -> AbstractContextManager[None]:
        """Hold the tenant's ``purpose`` lock: "sync" (sync, archived audit, apply) or
        "watch", which is separate so a watcher never delays a sync; raise
        ``ArchiveBusyError`` with :func:`busy_message` if another process holds it."""
        ...

    def state(self, tenant: int, stream: str) -> SyncState | None:
        """The stream's sync state, or None before its first sync."""
        ...

    def commit_page(
        self, tenant: int, stream: str, records: Iterable[AuditRecord], checkpoint: Checkpoint
    ) -> int:
        """Store a page of records and its checkpoint in one transaction; return new rows."""
        ...

    def finish_window(
        self, tenant: int, stream: str, start: datetime, end: datetime, at: datetime
    ) -> None:
        """Record that every record of ``[start, end)`` is stored; clear the checkpoint."""
        ...

    def store_accounts(self, tenant: int, accounts: Iterable[Account], at: datetime) -> None:
        """Store a snapshot of the account list taken at ``at``."""
        ...

    def last_snapshot_ids(self, tenant: int) -> set[str]:
        """Ids of the accounts in the tenant's latest snapshot (empty before the first)."""
        ...

    def first_seen(self, tenant: int) -> tuple[dict[str, datetime], datetime | None]:
        """Each account's first-seen time and the time of the tenant's first snapshot."""
        ...

    def known_account_ids(self, tenant: int) -> set[str]:
        """Ids of every account any snapshot of the tenant held."""
        ...

    def logon_aggregates(self, tenant: int) -> Iterator[LogonAggregate]:
        """The newest successful and failed logon per identity (answered from an index)."""
        ...

    def iter_records(
        self,
        tenant: int,
        since: datetime | None = None,
        until: datetime | None = None,
        category: str | None = None,
    ) -> Iterator[AuditRecord]:
        """Archived records, oldest first, streamed (memory flat whatever the size)."""
        ...

    def info(self) -> list[TenantInfo]:
        """One entry per tenant."""
        ...

    def prune(self, before: datetime, tenant: int | None = None) -> int:
        """Delete records logged before ``before``; return how many."""
        ...

    def record_audit(
        self,
        tenant: int,
        finished_at: datetime,
        window_end: datetime,
        complete: bool,
        days: int,
        remove: list[ReportedAccount],
    ) -> None:
        """Keep the outcome of an audit, so ``apply`` can act on the last one."""
        ...

    def last_audit(self, tenant: int) -> tuple[datetime, bool, int, list[ReportedAccount]] | None:
        """``(window end, complete, days, accounts to remove)`` of the tenant's last audit."""
        ...

    def journal(
        self,
        tenant: int,
        at: datetime,
        action: str,
        user_id: str,
        account_id: str,
        outcome: str,
        reason: str,
    ) -> None:
        """Append one line to the apply journal."""
        ...

    def size_bytes(self) -> int:
        """Space the archive takes."""
        ...

    def checkpoint_in_background(self) -> Callable[[], None]:
        """Start the engine's housekeeping on another thread (see the SQL archive's); the
        function returned waits for it."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...
