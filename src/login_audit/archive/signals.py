"""What ``watch`` keeps in the archive: its read position, the signals, and their deliveries.

Records carry a per-tenant sequence number in insertion order (``records.seq``), so a
watcher reads only the records stored since its last run, late arrivals included, from an
index. Signals are keyed by a hash of what they are about, so finding one twice stores it
once; each sink (a file, a webhook) keeps its own delivery state per signal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from login_audit.archive.base import from_us, to_us
from login_audit.models import AuditRecord, RecordKind, Signal

if TYPE_CHECKING:
    from login_audit.archive.sql import SqlArchive

#: The named migration of the watch state; it works on SQLite and PostgreSQL alike.
WATCH_MIGRATION: tuple[str, tuple[str, ...]] = (
    "0003_watch_signals",
    (
        "ALTER TABLE tenants ADD COLUMN record_seq BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE records ADD COLUMN seq BIGINT",
        # Records stored before this migration are numbered oldest first.
        """UPDATE records SET seq = numbered.n FROM (
                SELECT tenant_id AS t, key AS k,
                       ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY logged_at, key) AS n
                FROM records) AS numbered
            WHERE records.tenant_id = numbered.t AND records.key = numbered.k""",
        """UPDATE tenants SET record_seq = COALESCE(
                (SELECT MAX(seq) FROM records WHERE records.tenant_id = tenants.id), 0)""",
        "CREATE INDEX records_by_seq ON records (tenant_id, seq)",
        """CREATE INDEX records_logons_by_id ON records
            (tenant_id, kind, account_id, logged_at)
            WHERE kind IN ('logon-ok', 'logon-failed')""",
        """CREATE TABLE watch_state (
                tenant_id BIGINT PRIMARY KEY REFERENCES tenants (id),
                position BIGINT NOT NULL,
                updated_at BIGINT NOT NULL)""",
        """CREATE TABLE watch_signals (
                tenant_id BIGINT NOT NULL REFERENCES tenants (id),
                id TEXT NOT NULL,
                kind TEXT NOT NULL,
                subject TEXT NOT NULL,
                occurred_at BIGINT NOT NULL,
                detected_at BIGINT NOT NULL,
                body TEXT NOT NULL,
                PRIMARY KEY (tenant_id, id))""",
        "CREATE INDEX watch_signals_by_subject ON watch_signals"
        " (tenant_id, kind, subject, occurred_at)",
        """CREATE TABLE watch_sinks (
                tenant_id BIGINT NOT NULL REFERENCES tenants (id),
                sink TEXT NOT NULL,
                registered_at BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, sink))""",
        """CREATE TABLE watch_deliveries (
                tenant_id BIGINT NOT NULL REFERENCES tenants (id),
                signal_id TEXT NOT NULL,
                sink TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, signal_id, sink))""",
        "CREATE INDEX watch_deliveries_open ON watch_deliveries (tenant_id, sink)"
        " WHERE state <> 'sent'",
        """CREATE TABLE audit_notices (
                tenant_id BIGINT NOT NULL REFERENCES tenants (id),
                sink TEXT NOT NULL,
                told_at BIGINT NOT NULL,
                remove TEXT NOT NULL,
                PRIMARY KEY (tenant_id, sink))""",
    ),
)

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"

#: Repeats the partial logon indexes' condition word for word, so that SQLite uses them;
#: ``+logged_at`` and ``MAX(logged_at + 0)`` keep SQLite from preferring the time index
#: (its MIN/MAX shortcut), which reads every record when the identity's logons are few.
_LOGONS = "kind IN ('logon-ok', 'logon-failed')"

_RECORD_COLUMNS = (
    "seq, key, logged_at, category, activity, result, kind, principal, account_id, raw"
)


@dataclass(frozen=True)
class KnownAccount:
    """An account of the tenant as its snapshots last showed it."""

    id: str
    email: str
    role: str
    status: str


@dataclass(frozen=True)
class Pending:
    """A signal not yet delivered to a sink; ``state`` is ``sending`` when in doubt."""

    signal_id: str
    body: dict[str, Any]
    state: str | None


def _in(values: Sequence[str]) -> str:
    return ", ".join("?" for _ in values)


class SignalStore:
    """The watch state of every tenant of one archive (a thin layer over its connection)."""

    def __init__(self, archive: SqlArchive) -> None:
        self.archive = archive

    def _all(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        return self.archive._all(text, params)

    def _execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        return self.archive._execute(text, params)

    def _transaction(self) -> Any:
        return self.archive.dialect.transaction(self.archive.conn)

    # -- reading what is new --------------------------------------------------------------

    def position(self, tenant: int) -> int:
        """The sequence number of the last record already watched (0 before the first run)."""
        rows = self._all("SELECT position FROM watch_state WHERE tenant_id = ?", (tenant,))
        return int(rows[0][0]) if rows else 0

    def last_seq(self, tenant: int) -> int:
        """The sequence number of the newest record stored for the tenant (0 if none)."""
        rows = self._all("SELECT record_seq FROM tenants WHERE id = ?", (tenant,))
        return int(rows[0][0]) if rows else 0

    def records_after(
        self, tenant: int, position: int, limit: int
    ) -> list[tuple[int, AuditRecord]]:
        """Up to ``limit`` records stored after ``position``, in insertion order."""
        rows = self._all(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE tenant_id = ? AND seq > ?"  # noqa: S608 - fixed columns, values are parameters
            f" ORDER BY seq LIMIT {int(limit)}",
            (tenant, position),
        )
        return [
            (
                int(row[0]),
                AuditRecord.of(
                    key=bytes(row[1]).hex(),
                    when=from_us(row[2]),
                    category=row[3],
                    activity=row[4],
                    result=row[5],
                    kind=RecordKind(row[6]),
                    principal=row[7],
                    account_id=row[8],
                    raw=row[9],
                ),
            )
            for row in rows
        ]

    # -- history the rules ask about -------------------------------------------------------

    def last_logon_before(
        self, tenant: int, principals: Sequence[str], ids: Sequence[str], before: datetime
    ) -> datetime | None:
        """The newest successful logon of the identity logged before ``before``."""
        newest: int | None = None
        for column, values in (("principal", principals), ("account_id", ids)):
            if not values:
                continue
            row = self._all(
                f"SELECT MAX(logged_at + 0) FROM records WHERE tenant_id = ? AND {_LOGONS}"  # noqa: S608 - fixed columns, values are parameters
                f" AND kind = 'logon-ok' AND {column} IN ({_in(values)}) AND +logged_at < ?",
                (tenant, *values, to_us(before)),
            )[0][0]
            if row is not None and (newest is None or row > newest):
                newest = int(row)
        return from_us(newest)

    def logon_times(
        self, tenant: int, column: str, values: Iterable[str], chunk: int = 500
    ) -> dict[str, list[int]]:
        """Every dated successful logon (microseconds, sorted) of each ``column`` value.

        ``column`` is ``principal`` or ``account_id``; one query per ``chunk`` values, so a
        batch of records needs a few round trips instead of one per record.
        """
        if column not in ("principal", "account_id"):
            raise ValueError(column)
        wanted = sorted(set(values))
        times: dict[str, list[int]] = {value: [] for value in wanted}
        for i in range(0, len(wanted), chunk):
            part = wanted[i : i + chunk]
            for value, logged_at in self._all(
                f"SELECT {column}, logged_at FROM records WHERE tenant_id = ? AND {_LOGONS}"  # noqa: S608 - fixed columns, values are parameters
                f" AND kind = 'logon-ok' AND {column} IN ({_in(part)})"
                " AND logged_at IS NOT NULL",
                (tenant, *part),
            ):
                times[value].append(int(logged_at))
        for found in times.values():
            found.sort()
        return times

    def failed_logons(
        self,
        tenant: int,
        principals: Sequence[str],
        ids: Sequence[str],
        after: datetime,
        until: datetime,
    ) -> int:
        """Failed logons of the identity logged in ``(after, until]`` (each record once)."""
        selects, params = [], []
        for column, values in (("principal", principals), ("account_id", ids)):
            if values:
                selects.append(
                    f"SELECT key FROM records WHERE tenant_id = ? AND {_LOGONS}"  # noqa: S608 - fixed columns, values are parameters
                    f" AND kind = 'logon-failed' AND {column} IN ({_in(values)})"
                    " AND +logged_at > ? AND +logged_at <= ?"
                )
                params += [tenant, *values, to_us(after), to_us(until)]
        if not selects:
            return 0
        # UNION, not a sum: a record naming the account both ways counts once.
        query = f"SELECT COUNT(*) FROM ({' UNION '.join(selects)}) AS failed"  # noqa: S608 - fixed columns, values are parameters
        return int(self._all(query, params)[0][0])

    def signalled(
        self, tenant: int, kind: str, subject: str, since: datetime, until: datetime
    ) -> bool:
        """True when a ``kind`` signal about ``subject`` occurred within ``[since, until]``."""
        rows = self._all(
            "SELECT 1 FROM watch_signals WHERE tenant_id = ? AND kind = ? AND subject = ?"
            " AND occurred_at >= ? AND occurred_at <= ? LIMIT 1",
            (tenant, kind, subject, to_us(since), to_us(until)),
        )
        return bool(rows)

    def accounts(self, tenant: int) -> list[KnownAccount]:
        """Every account the snapshots saw, as last seen."""
        rows = self._all(
            "SELECT account_id, email, role, status, last_seen FROM accounts WHERE tenant_id = ?"
            " ORDER BY account_id, last_seen",
            (tenant,),
        )
        latest: dict[str, KnownAccount] = {}
        for account_id, email, role, status, _ in rows:
            latest[account_id] = KnownAccount(account_id, email, role, status)
        return list(latest.values())

    # -- storing signals ------------------------------------------------------------------

    def save(
        self, tenant: int, signals: Iterable[Signal], position: int, detected_at: datetime
    ) -> int:
        """Store new signals and move the read position, in one transaction; return how many.

        A signal already stored (found again after a crash, or by another watcher) is
        kept as it was.
        """
        rows = [
            (
                tenant,
                s.id,
                s.kind,
                s.subject,
                to_us(s.occurred_at),
                to_us(detected_at),
                json.dumps(s.to_json(), sort_keys=True, ensure_ascii=False),
            )
            for s in signals
        ]
        inserted = 0
        with self._transaction():
            if rows:
                inserted = self.archive.dialect.insert_many(
                    self.archive.conn,
                    self.archive.dialect.sql(
                        "INSERT INTO watch_signals (tenant_id, id, kind, subject, occurred_at,"
                        " detected_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (tenant_id, id) DO NOTHING"
                    ),
                    rows,
                )
                # Every sink known now owes each new signal a delivery.
                self.archive.dialect.insert_many(
                    self.archive.conn,
                    self.archive.dialect.sql(
                        "INSERT INTO watch_deliveries (tenant_id, signal_id, sink, state,"
                        " attempts, updated_at) SELECT tenant_id, ?, sink, 'pending', 0, ?"
                        " FROM watch_sinks WHERE tenant_id = ?"
                        " ON CONFLICT (tenant_id, signal_id, sink) DO NOTHING"
                    ),
                    [(row[1], row[5], tenant) for row in rows],
                )
            self._execute(
                "INSERT INTO watch_state (tenant_id, position, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (tenant_id) DO UPDATE SET position = excluded.position,"
                " updated_at = excluded.updated_at",
                (tenant, position, to_us(detected_at)),
            )
        return inserted

    def watched(self, tenant: int) -> bool:
        """True once a watch has run on the tenant."""
        return bool(self._all("SELECT 1 FROM watch_state WHERE tenant_id = ?", (tenant,)))

    def signals(
        self, tenant: int, since: datetime | None = None, until: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Stored signals that occurred in ``[since, until)``, oldest first."""
        where, params = "tenant_id = ?", [tenant]
        if since is not None:
            where += " AND occurred_at >= ?"
            params.append(to_us(since))
        if until is not None:
            where += " AND occurred_at < ?"
            params.append(to_us(until))
        rows = self._all(
            f"SELECT body FROM watch_signals WHERE {where} ORDER BY occurred_at, id",  # noqa: S608 - fixed SQL fragments, values are parameters
            params,
        )
        return [json.loads(row[0]) for row in rows]

    # -- deliveries -----------------------------------------------------------------------

    def register_sink(self, tenant: int, sink: str, at: datetime) -> None:
        """Start delivering to ``sink``: it receives the signals stored from now on."""
        with self._transaction():
            self._execute(
                "INSERT INTO watch_sinks (tenant_id, sink, registered_at) VALUES (?, ?, ?)"
                " ON CONFLICT (tenant_id, sink) DO NOTHING",
                (tenant, sink, to_us(at)),
            )

    def pending(self, tenant: int, sink: str) -> list[Pending]:
        """Signals ``sink`` has not confirmed yet, oldest first."""
        rows = self._all(
            "SELECT s.id, s.body, d.state FROM watch_deliveries d"
            " JOIN watch_signals s ON s.tenant_id = d.tenant_id AND s.id = d.signal_id"
            " WHERE d.tenant_id = ? AND d.sink = ? AND d.state <> 'sent'"
            " ORDER BY s.occurred_at, s.id",
            (tenant, sink),
        )
        return [Pending(row[0], json.loads(row[1]), row[2]) for row in rows]

    def mark(self, tenant: int, sink: str, ids: Sequence[str], state: str, at: datetime) -> None:
        """Record the delivery ``state`` of signals ``ids`` at ``sink`` (one transaction)."""
        if not ids:
            return
        with self._transaction():
            self.archive.dialect.insert_many(
                self.archive.conn,
                self.archive.dialect.sql(
                    "INSERT INTO watch_deliveries (tenant_id, signal_id, sink, state, attempts,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (tenant_id, signal_id, sink) DO UPDATE SET"
                    " state = excluded.state, updated_at = excluded.updated_at,"
                    " attempts = watch_deliveries.attempts + excluded.attempts"
                ),
                [
                    (tenant, signal_id, sink, state, int(state == SENDING), to_us(at))
                    for signal_id in ids
                ],
            )

    def delivery_states(self, tenant: int, sink: str) -> dict[str, tuple[str, int]]:
        """``signal id -> (state, attempts)`` of every delivery to ``sink``."""
        rows = self._all(
            "SELECT signal_id, state, attempts FROM watch_deliveries"
            " WHERE tenant_id = ? AND sink = ?",
            (tenant, sink),
        )
        return {row[0]: (row[1], int(row[2])) for row in rows}

    # -- audit notices --------------------------------------------------------------------

    def told(self, tenant: int, sink: str) -> list[str] | None:
        """The accounts to remove that ``sink`` was last told about (None: never told)."""
        rows = self._all(
            "SELECT remove FROM audit_notices WHERE tenant_id = ? AND sink = ?", (tenant, sink)
        )
        return list(json.loads(rows[0][0])) if rows else None

    def remember_told(self, tenant: int, sink: str, users: Sequence[str], at: datetime) -> None:
        """Record that ``sink`` now knows of ``users`` (only after it accepted the message)."""
        with self._transaction():
            self._execute(
                "INSERT INTO audit_notices (tenant_id, sink, told_at, remove) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (tenant_id, sink) DO UPDATE SET told_at = excluded.told_at,"
                " remove = excluded.remove",
                (tenant, sink, to_us(at), json.dumps(sorted(users))),
            )
