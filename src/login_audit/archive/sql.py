"""The archive over SQL: one implementation, two dialects (SQLite and PostgreSQL).

The layer is thin on purpose: plain SQL over the driver, one transaction per page of
records together with its checkpoint, and named migrations recorded in the database.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict
from datetime import datetime
from typing import Any, Protocol

from login_audit.archive.base import LogonAggregate, TenantInfo, TenantKey, from_us, to_us
from login_audit.archive.signals import WATCH_MIGRATION
from login_audit.models import Account, AuditRecord, RecordKind, ReportedAccount
from login_audit.syncstate import Checkpoint, SliceState, SyncState

#: Named migrations, applied in order and recorded in ``schema_migrations``.
#: ``{id}`` is the dialect's auto-increment primary key, ``{blob}`` its text type.
MIGRATIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "0001_initial",
        (
            """CREATE TABLE tenants (
                id {id},
                platform TEXT NOT NULL,
                region TEXT NOT NULL,
                name TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                UNIQUE (platform, region, name))""",
            """CREATE TABLE records (
                tenant_id BIGINT NOT NULL REFERENCES tenants (id),
                key TEXT NOT NULL,
                logged_at BIGINT,
                category TEXT NOT NULL,
                activity TEXT NOT NULL,
                result TEXT NOT NULL,
                kind TEXT NOT NULL,
                principal TEXT NOT NULL,
                account_id TEXT,
                raw TEXT NOT NULL,
                PRIMARY KEY (tenant_id, key))""",
            "CREATE INDEX records_by_time ON records (tenant_id, logged_at)",
            """CREATE INDEX records_logons ON records
                (tenant_id, kind, principal, account_id, logged_at)
                WHERE kind IN ('logon-ok', 'logon-failed')""",
            """CREATE TABLE sync_state (
                tenant_id BIGINT NOT NULL REFERENCES tenants (id),
                stream TEXT NOT NULL,
                covered_from BIGINT,
                watermark BIGINT,
                last_sync_at BIGINT,
                checkpoint TEXT,
                PRIMARY KEY (tenant_id, stream))""",
            """CREATE TABLE accounts (
                tenant_id BIGINT NOT NULL REFERENCES tenants (id),
                account_id TEXT NOT NULL,
                version TEXT NOT NULL,
                email TEXT NOT NULL,
                role TEXT NOT NULL,
                auth_type TEXT NOT NULL,
                status TEXT NOT NULL,
                first_seen BIGINT NOT NULL,
                last_seen BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, account_id, version))""",
            """CREATE TABLE account_snapshots (
                tenant_id BIGINT NOT NULL REFERENCES tenants (id),
                taken_at BIGINT NOT NULL,
                accounts BIGINT NOT NULL,
                PRIMARY KEY (tenant_id, taken_at))""",
        ),
    ),
    (
        "0002_audit_runs_and_apply_journal",
        (
            """CREATE TABLE audit_runs (
                tenant_id BIGINT NOT NULL REFERENCES tenants (id),
                finished_at BIGINT NOT NULL,
                window_end BIGINT NOT NULL,
                complete INTEGER NOT NULL,
                days INTEGER NOT NULL,
                remove TEXT NOT NULL,
                PRIMARY KEY (tenant_id, finished_at))""",
            """CREATE TABLE apply_journal (
                tenant_id BIGINT NOT NULL REFERENCES tenants (id),
                at BIGINT NOT NULL,
                action TEXT NOT NULL,
                user_id TEXT NOT NULL,
                account_id TEXT NOT NULL,
                outcome TEXT NOT NULL,
                reason TEXT NOT NULL)""",
            "CREATE INDEX apply_journal_by_time ON apply_journal (tenant_id, at)",
        ),
    ),
    WATCH_MIGRATION,
    (
        # Export pages through the records in (time, key) order: with the key in the index,
        # each batch starts where the last ended instead of sorting every tie again.
        "0004_records_by_time_and_key",
        (
            "CREATE INDEX records_by_time_key ON records (tenant_id, logged_at, key)",
            "DROP INDEX records_by_time",
        ),
    ),
    (
        # Records keyed by time: a unique (tenant, time, 32-byte digest) replaces the primary
        # key on the hex digest and the separate time index. New records land at the end of
        # the index instead of at random places in it, and the export reads the same index.
        # A record's time is read from its raw JSON, whose digest is the key, so the pair
        # identifies a record as the digest alone did. Rows are copied in storage order.
        "0005_records_keyed_by_time",
        (
            """CREATE TABLE records_keyed (
                tenant_id BIGINT NOT NULL REFERENCES tenants (id),
                key {bytes} NOT NULL,
                logged_at BIGINT,
                category TEXT NOT NULL,
                activity TEXT NOT NULL,
                result TEXT NOT NULL,
                kind TEXT NOT NULL,
                principal TEXT NOT NULL,
                account_id TEXT,
                raw TEXT NOT NULL,
                seq BIGINT)""",
            """INSERT INTO records_keyed (tenant_id, key, logged_at, category, activity, result,
                kind, principal, account_id, raw, seq)
                SELECT tenant_id, {unhex_key}, logged_at, category, activity, result, kind,
                principal, account_id, raw, seq FROM records ORDER BY tenant_id, seq""",
            "DROP TABLE records",
            "ALTER TABLE records_keyed RENAME TO records",
            "CREATE UNIQUE INDEX records_by_time_key ON records (tenant_id, logged_at, key)",
            # At or after the newest time stored, so a record later than it (most records of
            # a first sync, read in time order) needs no look-up to be known as new.
            "ALTER TABLE tenants ADD COLUMN newest_record_at BIGINT",
            """UPDATE tenants SET newest_record_at =
                (SELECT MAX(logged_at) FROM records WHERE records.tenant_id = tenants.id)""",
            "CREATE INDEX records_by_seq ON records (tenant_id, seq)",
            """CREATE INDEX records_logons ON records
                (tenant_id, kind, principal, account_id, logged_at)
                WHERE kind IN ('logon-ok', 'logon-failed')""",
            # Only logons that name an account id: looking one up implies it is not null.
            """CREATE INDEX records_logons_by_id ON records
                (tenant_id, kind, account_id, logged_at)
                WHERE kind IN ('logon-ok', 'logon-failed') AND account_id IS NOT NULL""",
        ),
    ),
)


class Dialect(Protocol):
    """What differs between the SQL engines."""

    name: str
    id_column: str
    #: The column type of raw bytes, and the expression that turns the hex ``key`` into them.
    bytes_column: str
    unhex_key: str
    #: What makes a ``SELECT`` lock the rows it reads until the commit ("" where a write
    #: transaction already excludes every other writer).
    row_lock: str

    def sql(self, text: str) -> str:
        """Rewrite ``?`` placeholders for the driver."""
        ...

    def transaction(self, conn: Any) -> AbstractContextManager[None]:
        """A write transaction on ``conn``."""
        ...

    def tenant_lock(
        self, conn: Any, location: str, tenant: int, purpose: str = "sync"
    ) -> AbstractContextManager[None]:
        """An exclusive, non-waiting lock of one tenant's ``purpose`` (sync or watch)."""
        ...

    def size_bytes(self, conn: Any) -> int:
        """Space used by the database."""
        ...

    def release(self) -> None:
        """Stop what the dialect runs beside the connection, before it closes."""
        ...

    def insert_many(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run ``sql`` for every row; return how many rows were actually inserted."""
        ...

    def insert_records(self, conn: Any, rows: Sequence[Sequence[Any]]) -> int:
        """Insert new rows of :data:`RECORD_COLUMNS` (none stored yet); return how many."""
        ...

    def stored_records(
        self, conn: Any, tenant: int, records: Sequence[tuple[int, bytes]]
    ) -> set[tuple[int | None, bytes]]:
        """Those of ``(logged_at, key)`` the tenant holds (and maybe others of their times)."""
        ...

    def start_checkpoint(self) -> Callable[[], None]:
        """Start moving committed changes into the database file in the background; the
        function returned waits until that has ended (a no-op where there is nothing to do)."""
        ...


def _checkpoint_json(checkpoint: Checkpoint | None) -> str | None:
    if checkpoint is None:
        return None
    return json.dumps(
        {
            "start": to_us(checkpoint.start),
            "end": to_us(checkpoint.end),
            "slices": [
                {
                    "start": to_us(s.start),
                    "end": to_us(s.end),
                    "next_link": s.next_link,
                    "pages": s.pages,
                    "done": s.done,
                }
                for s in checkpoint.slices
            ],
        }
    )


def _checkpoint_from(text: str | None) -> Checkpoint | None:
    if not text:
        return None
    data = json.loads(text)

    def moment(value: int) -> datetime:
        result = from_us(value)
        assert result is not None
        return result

    slices = tuple(
        SliceState(moment(s["start"]), moment(s["end"]), s["next_link"], s["pages"], s["done"])
        for s in data["slices"]
    )
    return Checkpoint(start=moment(data["start"]), end=moment(data["end"]), slices=slices)


#: Newest logon per identity and kind. The literal kinds match the partial index's
#: condition word for word, which lets both engines answer from the index alone.
LOGON_AGGREGATES_SQL = (
    "SELECT kind, principal, account_id, MAX(logged_at),"
    " SUM(CASE WHEN logged_at IS NULL THEN 1 ELSE 0 END)"
    " FROM records WHERE tenant_id = ? AND kind IN ('logon-ok', 'logon-failed')"
    " GROUP BY kind, principal, account_id"
)

_COLUMNS = "key, logged_at, category, activity, result, kind, principal, account_id, raw"

#: A record with what identifies it in the archive: its time (microseconds) and digest.
_Identified = tuple[int | None, bytes, AuditRecord]

#: The stored text of each kind of record.
_KIND_TEXT = {kind: kind.value for kind in RecordKind}

#: The columns :meth:`Dialect.insert_records` fills, in order.
RECORD_COLUMNS = f"tenant_id, {_COLUMNS}, seq"


def _record(row: Sequence[Any]) -> AuditRecord:
    return AuditRecord.of(
        key=bytes(row[0]).hex(),
        when=from_us(row[1]),
        category=row[2],
        activity=row[3],
        result=row[4],
        kind=RecordKind(row[5]),
        principal=row[6],
        account_id=row[7],
        raw=row[8],
    )


def _account_version(account: Account) -> str:
    text = json.dumps(
        [account.email, account.role, account.auth_type, account.status.value], sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class SqlArchive:
    """The :class:`~login_audit.archive.base.Archive` over a DB-API connection."""

    def __init__(self, conn: Any, dialect: Dialect, location: str, *, migrate: bool = True):
        self.conn = conn
        self.dialect = dialect
        self.location = location
        if migrate:
            self.migrate()

    def pending_migrations(self) -> list[str]:
        """Names of the migrations this archive still lacks (all of them when it is empty)."""
        try:
            done = set(self.migrations())
        except Exception:
            done = set()
        return [name for name, _ in MIGRATIONS if name not in done]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(location={self.location!r})"

    # -- plumbing -----------------------------------------------------------------------

    def _execute(self, text: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self.dialect.sql(text), params)

    def _all(self, text: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(self._execute(text, params).fetchall())

    def _one(self, text: str, params: Sequence[Any] = ()) -> Any:
        return self._execute(text, params).fetchone()

    def migrate(self) -> list[str]:
        """Apply the migrations not yet recorded; return their names."""
        applied: list[str] = []
        with self.dialect.transaction(self.conn):
            self._execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)"
            )
            done = {row[0] for row in self._all("SELECT name FROM schema_migrations")}
            for name, statements in MIGRATIONS:
                if name in done:
                    continue
                for statement in statements:
                    self._execute(
                        statement.replace("{id}", self.dialect.id_column)
                        .replace("{bytes}", self.dialect.bytes_column)
                        .replace("{unhex_key}", self.dialect.unhex_key)
                    )
                self._execute(
                    "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                    (name, to_us(datetime.now().astimezone())),
                )
                applied.append(name)
        return applied

    def migrations(self) -> list[str]:
        """Names of the applied migrations, in order."""
        return [row[0] for row in self._all("SELECT name FROM schema_migrations ORDER BY name")]

    # -- tenants and locks ----------------------------------------------------------------

    def find_tenant(self, key: TenantKey) -> int | None:
        """The id of ``key``, or None when the archive has never seen it."""
        find = "SELECT id FROM tenants WHERE platform = ? AND region = ? AND name = ?"
        row = self._one(find, (key.platform, key.region, key.name))
        return None if row is None else int(row[0])

    def tenant_id(self, key: TenantKey) -> int:
        """The id of ``key``, created on first use."""
        find = "SELECT id FROM tenants WHERE platform = ? AND region = ? AND name = ?"
        params = (key.platform, key.region, key.name)
        row = self._one(find, params)
        if row is None:
            with self.dialect.transaction(self.conn):
                self._execute(
                    "INSERT INTO tenants (platform, region, name, created_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (platform, region, name) DO NOTHING",
                    (*params, to_us(datetime.now().astimezone())),
                )
            row = self._one(find, params)
        return int(row[0])

    def lock(self, tenant: int, purpose: str = "sync") -> AbstractContextManager[None]:
        """Hold the tenant's sync (or watch) lock; refuses at once if another process holds it."""
        return self.dialect.tenant_lock(self.conn, self.location, tenant, purpose)

    # -- sync state -----------------------------------------------------------------------

    def state(self, tenant: int, stream: str) -> SyncState | None:
        """The stream's sync state, or None before its first sync."""
        row = self._one(
            "SELECT covered_from, watermark, last_sync_at, checkpoint FROM sync_state "
            "WHERE tenant_id = ? AND stream = ?",
            (tenant, stream),
        )
        if row is None:
            return None
        return SyncState(
            covered_from=from_us(row[0]),
            watermark=from_us(row[1]),
            last_sync_at=from_us(row[2]),
            checkpoint=_checkpoint_from(row[3]),
        )

    def _ensure_state(self, tenant: int, stream: str) -> None:
        self._execute(
            "INSERT INTO sync_state (tenant_id, stream) VALUES (?, ?) "
            "ON CONFLICT (tenant_id, stream) DO NOTHING",
            (tenant, stream),
        )

    def commit_page(
        self, tenant: int, stream: str, records: Iterable[AuditRecord], checkpoint: Checkpoint
    ) -> int:
        """Store a page of records and its checkpoint in one transaction; return new rows."""
        fromhex = bytes.fromhex
        page = [(None if r.when is None else to_us(r.when), fromhex(r.key), r) for r in records]
        inserted = 0
        with self.dialect.transaction(self.conn):
            # Numbers in insertion order, from a per-tenant counter whose row stays locked
            # until the commit: a watcher reading "after N" never skips a late commit, and
            # no other writer can store one of these records between the check and the insert.
            last, newest = self._one(
                "SELECT record_seq, newest_record_at FROM tenants WHERE id = ?"  # noqa: S608 - a fixed clause
                + self.dialect.row_lock,
                (tenant,),
            )
            # Records already stored get no number: a sweep reads some pages twice (its
            # probe page, an overlap), and the numbers stay dense, one per stored record.
            fresh = self._new_records(tenant, page, newest)
            if fresh:
                times = [at for at, _, _ in fresh if at is not None]
                if times and (newest is None or max(times) > newest):
                    newest = max(times)
                kinds = _KIND_TEXT  # a dict look-up: an enum's .value is a slow property
                inserted = self.dialect.insert_records(
                    self.conn,
                    [
                        (
                            tenant,
                            key,
                            at,
                            r.category,
                            r.activity,
                            r.result,
                            kinds[r.kind],
                            r.principal,
                            r.account_id,
                            r.raw,
                            seq,
                        )
                        for seq, (at, key, r) in enumerate(fresh, int(last) + 1)
                    ],
                )
                self._execute(
                    "UPDATE tenants SET record_seq = ?, newest_record_at = ? WHERE id = ?",
                    (int(last) + len(fresh), newest, tenant),
                )
            self._ensure_state(tenant, stream)
            self._execute(
                "UPDATE sync_state SET checkpoint = ? WHERE tenant_id = ? AND stream = ?",
                (_checkpoint_json(checkpoint), tenant, stream),
            )
        return inserted

    def _new_records(
        self, tenant: int, page: list[_Identified], newest: int | None
    ) -> list[_Identified]:
        """The records of ``page`` the tenant does not hold yet, each once.

        A record is its time and digest: the stored ones are found in the unique index by
        time, where recent pages sit in memory; only records no later than ``newest`` (at
        or after the newest time stored) can be among them. Undated records (no time to
        look up) are found by digest among the undated ones.
        """
        dated: list[tuple[int, bytes]] = []  # none can be stored before a dated one is
        if newest is not None:
            dated = list({(at, key) for at, key, _ in page if at is not None and at <= newest})
        known = self.dialect.stored_records(self.conn, tenant, dated)
        undated = list({key for at, key, _ in page if at is None})
        for start in range(0, len(undated), 500):
            chunk = undated[start : start + 500]
            known.update(
                (None, bytes(found[0]))
                for found in self._all(
                    "SELECT key FROM records WHERE tenant_id = ? AND logged_at IS NULL"  # noqa: S608 - placeholders only
                    f" AND key IN ({', '.join('?' * len(chunk))})",
                    (tenant, *chunk),
                )
            )
        # Each record once, in the order first seen (a dict keeps the first position).
        once = list({(entry[0], entry[1]): entry for entry in page}.values())
        if not known:
            return once
        return [entry for entry in once if (entry[0], entry[1]) not in known]

    def finish_window(
        self, tenant: int, stream: str, start: datetime, end: datetime, at: datetime
    ) -> None:
        """Record that every record of ``[start, end)`` is stored; clear the checkpoint.

        A window that starts at or before the current watermark extends the covered range;
        one that starts after it (a gap, such as after a long pause beyond the vendor's
        retention) restarts coverage at ``start``.
        """
        with self.dialect.transaction(self.conn):
            self._ensure_state(tenant, stream)
            row = self._one(
                "SELECT covered_from, watermark FROM sync_state WHERE tenant_id = ? AND stream = ?",
                (tenant, stream),
            )
            covered, mark = row[0], row[1]
            start_us, end_us = to_us(start), to_us(end)
            if covered is None or mark is None or start_us > mark:
                # First window, or a gap before it: coverage restarts at this window.
                covered = start_us
            else:
                covered = min(covered, start_us)
            self._execute(
                "UPDATE sync_state SET covered_from = ?, watermark = ?, last_sync_at = ?,"
                " checkpoint = NULL WHERE tenant_id = ? AND stream = ?",
                (covered, max(end_us, mark or end_us), to_us(at), tenant, stream),
            )

    # -- accounts -------------------------------------------------------------------------

    def store_accounts(self, tenant: int, accounts: Iterable[Account], at: datetime) -> None:
        """Store a snapshot of the account list taken at ``at``."""
        now = to_us(at)
        rows = [
            (
                tenant,
                a.id,
                _account_version(a),
                a.email,
                a.role,
                a.auth_type,
                a.status.value,
                now,
                now,
            )
            for a in accounts
        ]
        with self.dialect.transaction(self.conn):
            if rows:
                self.dialect.insert_many(
                    self.conn,
                    self.dialect.sql(
                        "INSERT INTO accounts (tenant_id, account_id, version, email, role,"
                        " auth_type, status, first_seen, last_seen)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (tenant_id, account_id, version)"
                        " DO UPDATE SET last_seen = excluded.last_seen"
                    ),
                    rows,
                )
            self._execute(
                "INSERT INTO account_snapshots (tenant_id, taken_at, accounts) VALUES (?, ?, ?)"
                " ON CONFLICT (tenant_id, taken_at) DO NOTHING",
                (tenant, now, len(rows)),
            )

    def last_snapshot_ids(self, tenant: int) -> set[str]:
        """Ids of the accounts in the tenant's latest snapshot (empty before the first)."""
        rows = self._all(
            "SELECT DISTINCT account_id FROM accounts WHERE tenant_id = ? AND last_seen = "
            "(SELECT MAX(taken_at) FROM account_snapshots WHERE tenant_id = ?)",
            (tenant, tenant),
        )
        return {row[0] for row in rows}

    def known_account_ids(self, tenant: int) -> set[str]:
        """Ids of every account any snapshot of the tenant held."""
        rows = self._all("SELECT DISTINCT account_id FROM accounts WHERE tenant_id = ?", (tenant,))
        return {row[0] for row in rows}

    def first_seen(self, tenant: int) -> tuple[dict[str, datetime], datetime | None]:
        """Each account's first-seen time and the time of the tenant's first snapshot."""
        first = self._one(
            "SELECT MIN(taken_at) FROM account_snapshots WHERE tenant_id = ?", (tenant,)
        )
        rows = self._all(
            "SELECT account_id, MIN(first_seen) FROM accounts WHERE tenant_id = ?"
            " GROUP BY account_id",
            (tenant,),
        )
        seen = {row[0]: from_us(row[1]) for row in rows}
        return {k: v for k, v in seen.items() if v is not None}, from_us(first[0])

    def account_history(self, tenant: int, account_id: str) -> list[dict[str, Any]]:
        """Every version of one account seen, oldest first."""
        rows = self._all(
            "SELECT email, role, auth_type, status, first_seen, last_seen FROM accounts"
            " WHERE tenant_id = ? AND account_id = ? ORDER BY first_seen",
            (tenant, account_id),
        )
        names = ("email", "role", "auth_type", "status", "first_seen", "last_seen")
        return [
            {
                **dict(zip(names[:4], row[:4], strict=True)),
                "first_seen": from_us(row[4]),
                "last_seen": from_us(row[5]),
            }
            for row in rows
        ]

    # -- queries --------------------------------------------------------------------------

    def logon_aggregates(self, tenant: int) -> Iterator[LogonAggregate]:
        """The newest successful and failed logon per identity, from the logon index."""
        rows = self._execute(LOGON_AGGREGATES_SQL, (tenant,))
        for kind, principal, account_id, last, undated in rows:
            yield LogonAggregate(
                principal=principal,
                account_id=account_id,
                successful=kind == RecordKind.LOGON_OK.value,
                last=from_us(last),
                undated=int(undated or 0),
            )

    def iter_records(
        self,
        tenant: int,
        since: datetime | None = None,
        until: datetime | None = None,
        category: str | None = None,
        *,
        batch: int = 5000,
    ) -> Iterator[AuditRecord]:
        """Archived records, oldest first, streamed in keyset-paged batches."""
        conditions = ["tenant_id = ?"]
        params: list[Any] = [tenant]
        if since is not None:
            conditions.append("logged_at >= ?")
            params.append(to_us(since))
        if until is not None:
            conditions.append("logged_at < ?")
            params.append(to_us(until))
        if category is not None:
            conditions.append("LOWER(category) = LOWER(?)")
            params.append(category)
        where = " AND ".join(conditions)
        # Undated records first (they cannot be placed in time), then keyset pagination
        # on (logged_at, key) so memory stays flat whatever the archive's size.
        if since is None and until is None:
            for row in self._all(
                f"SELECT {_COLUMNS} FROM records WHERE {where} AND logged_at IS NULL ORDER BY key",  # noqa: S608 - fixed SQL fragments, values are parameters
                params,
            ):
                yield _record(row)
        last: tuple[int, str] | None = None
        while True:
            page_where = where + " AND logged_at IS NOT NULL"
            page_params = list(params)
            if last is not None:
                # A row value, so both engines seek the (tenant, time, key) index to the
                # last row returned: every batch costs the same, however far in it is.
                page_where += " AND (logged_at, key) > (?, ?)"
                page_params += [last[0], last[1]]
            rows = self._all(
                f"SELECT {_COLUMNS} FROM records WHERE {page_where}"  # noqa: S608 - fixed SQL fragments, values are parameters
                f" ORDER BY logged_at, key LIMIT {int(batch)}",
                page_params,
            )
            for row in rows:
                yield _record(row)
            if len(rows) < batch:
                return
            last = (rows[-1][1], rows[-1][0])

    def info(self) -> list[TenantInfo]:
        """One entry per tenant."""
        result = []
        for tid, platform, region, name in self._all(
            "SELECT id, platform, region, name FROM tenants ORDER BY platform, region, name"
        ):
            count, first, last, size = self._one(
                "SELECT COUNT(*), MIN(logged_at), MAX(logged_at), SUM(LENGTH(raw)) FROM records"
                " WHERE tenant_id = ?",
                (tid,),
            )
            streams = {}
            for (stream,) in self._all(
                "SELECT stream FROM sync_state WHERE tenant_id = ? ORDER BY stream", (tid,)
            ):
                state = self.state(tid, stream)
                if state is not None:
                    streams[stream] = state
            accounts = self._one(
                "SELECT COUNT(DISTINCT account_id) FROM accounts WHERE tenant_id = ?", (tid,)
            )[0]
            result.append(
                TenantInfo(
                    key=TenantKey(platform, region, name),
                    records=int(count),
                    first_record=from_us(first),
                    last_record=from_us(last),
                    streams=streams,
                    accounts=int(accounts),
                    raw_bytes=int(size or 0),
                )
            )
        return result

    def prune(self, before: datetime, tenant: int | None = None) -> int:
        """Delete records logged before ``before``; coverage moves up accordingly."""
        cutoff = to_us(before)
        with self.dialect.transaction(self.conn):
            where, params = "logged_at < ?", [cutoff]
            if tenant is not None:
                where += " AND tenant_id = ?"
                params.append(tenant)
            cursor = self._execute(f"DELETE FROM records WHERE {where}", params)  # noqa: S608 - fixed SQL fragments, values are parameters
            deleted = int(cursor.rowcount)
            state_where = "covered_from < ?" + (" AND tenant_id = ?" if tenant is not None else "")
            self._execute(
                f"UPDATE sync_state SET covered_from = ? WHERE {state_where}",  # noqa: S608 - fixed SQL fragments, values are parameters
                [cutoff, *params],
            )
        return deleted

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
        with self.dialect.transaction(self.conn):
            self._execute(
                "INSERT INTO audit_runs (tenant_id, finished_at, window_end, complete, days,"
                " remove) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_id, finished_at)"
                " DO NOTHING",
                (
                    tenant,
                    to_us(finished_at),
                    to_us(window_end),
                    int(complete),
                    days,
                    json.dumps([asdict(entry) for entry in remove]),
                ),
            )

    def last_audit(self, tenant: int) -> tuple[datetime, bool, int, list[ReportedAccount]] | None:
        """``(window end, complete, days, accounts to remove)`` of the tenant's last audit.

        Audits recorded before the accounts were kept whole give user ids only.
        """
        row = self._one(
            "SELECT window_end, complete, days, remove FROM audit_runs WHERE tenant_id = ?"
            " ORDER BY finished_at DESC LIMIT 1",
            (tenant,),
        )
        if row is None:
            return None
        end = from_us(row[0])
        assert end is not None
        remove = [
            ReportedAccount(entry) if isinstance(entry, str) else ReportedAccount(**entry)
            for entry in json.loads(row[3])
        ]
        return end, bool(row[1]), int(row[2]), remove

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
        with self.dialect.transaction(self.conn):
            self._execute(
                "INSERT INTO apply_journal (tenant_id, at, action, user_id, account_id, outcome,"
                " reason) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (tenant, to_us(at), action, user_id, account_id, outcome, reason),
            )

    def journal_entries(self, tenant: int) -> list[tuple[str, str, str, str]]:
        """``(action, user id, outcome, reason)`` of every journalled change, oldest first."""
        return [
            (row[0], row[1], row[2], row[3])
            for row in self._all(
                "SELECT action, user_id, outcome, reason FROM apply_journal WHERE tenant_id = ?"
                " ORDER BY at",
                (tenant,),
            )
        ]

    def size_bytes(self) -> int:
        """Space the archive takes."""
        return self.dialect.size_bytes(self.conn)

    def checkpoint_in_background(self) -> Callable[[], None]:
        """Let the engine tidy up while the caller does other work (writes reports, say).

        Closing a SQLite archive copies its write-ahead log into the file first, which takes
        a noticeable pause after a large sync; started here, that runs while the caller works
        and :meth:`close` finds little left to do. Nothing changes for the data: the records
        are committed already, and a failed checkpoint is done again by :meth:`close`.
        Returns a function that waits for the checkpoint to end.
        """
        return self.dialect.start_checkpoint()

    def close(self) -> None:
        """Release the connection (once a checkpoint running in the background has ended)."""
        self.dialect.release()
        self.conn.close()
