"""The team archive: PostgreSQL through psycopg 3."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from login_audit.archive.base import busy_message
from login_audit.archive.sql import RECORD_COLUMNS, SqlArchive
from login_audit.config import Secret
from login_audit.errors import ArchiveBusyError, ConfigError
from login_audit.redaction import MASK, redact_dsn

_LOCK_SPACE = 0x4C41  # "LA": keeps our advisory locks apart from other applications'
_WATCH_LOCK_SPACE = 0x4C57  # "LW": the watch lock of a tenant, apart from its sync lock


class PostgresDialect:
    """PostgreSQL specifics: ``%s`` placeholders, advisory locks."""

    name = "postgresql"
    id_column = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    bytes_column = "BYTEA"
    unhex_key = "decode(key, 'hex')"
    row_lock = " FOR UPDATE"  # writers of one tenant queue on its counter row

    def sql(self, text: str) -> str:
        """psycopg takes ``%s`` where SQLite takes ``?``."""
        return text.replace("?", "%s")

    def start_checkpoint(self) -> Callable[[], None]:
        """Nothing to do: the server checkpoints on its own schedule."""
        return lambda: None

    @contextlib.contextmanager
    def transaction(self, conn: Any) -> Iterator[None]:
        """psycopg's transaction block (commit on success, rollback on error)."""
        with conn.transaction():
            yield

    @contextlib.contextmanager
    def tenant_lock(
        self, conn: Any, location: str, tenant: int, purpose: str = "sync"
    ) -> Iterator[None]:
        """A session advisory lock; PostgreSQL releases it if the process dies."""
        space = _LOCK_SPACE if purpose == "sync" else _WATCH_LOCK_SPACE
        got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (space, tenant)).fetchone()
        if not got[0]:
            raise ArchiveBusyError(busy_message(location, purpose))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (space, tenant))

    def release(self) -> None:
        """Nothing runs beside the connection."""

    def size_bytes(self, conn: Any) -> int:
        """``pg_database_size`` of the current database."""
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])

    def insert_many(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """``executemany`` (pipelined by psycopg); its row count sums the inserts."""
        with conn.cursor() as cursor:
            cursor.executemany(sql, rows)
            return int(cursor.rowcount)

    def stored_records(
        self, conn: Any, tenant: int, records: Sequence[tuple[int, bytes]]
    ) -> set[tuple[int | None, bytes]]:
        """Those of ``records`` stored: a join on the whole unique key, which the planner
        answers with one probe of the unique index per record even before the table has
        statistics. (A list of times, as on SQLite, made a fresh table's first minute scan
        every record for every page until autovacuum analyzed it: 1,000 records/s.)"""
        if not records:
            return set()
        rows = conn.execute(
            "SELECT r.logged_at, r.key FROM unnest(%s::bigint[], %s::bytea[]) AS p (at, k)"
            " JOIN records r ON r.tenant_id = %s AND r.logged_at = p.at AND r.key = p.k",
            ([at for at, _ in records], [key for _, key in records], tenant),
        )
        return {(int(at), bytes(key)) for at, key in rows}

    def insert_records(self, conn: Any, rows: Sequence[Sequence[Any]]) -> int:
        """``COPY``: one stream instead of a statement per row. It has no ``ON CONFLICT``,
        so a record stored meanwhile would fail the page; the locked counter row keeps
        every other writer of the tenant out until the commit."""
        with (
            conn.cursor() as cursor,
            cursor.copy(f"COPY records ({RECORD_COLUMNS}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return len(rows)


def open_postgres(dsn: Secret) -> SqlArchive:
    """Connect to the PostgreSQL archive at ``dsn`` and apply pending migrations."""
    from login_audit.archive import archive_secrets

    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "a PostgreSQL archive needs psycopg: pip install 'login-audit[postgres]'"
        ) from None
    shown = redact_dsn(dsn.reveal())
    try:
        conn = psycopg.connect(dsn.reveal(), autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        message = str(exc).replace(dsn.reveal(), shown).splitlines()[0]
        for secret in archive_secrets(dsn.reveal())[1:]:
            message = message.replace(secret, MASK)
        raise ConfigError(f"cannot connect to the archive {shown}: {message}") from None
    return SqlArchive(conn, PostgresDialect(), shown)
