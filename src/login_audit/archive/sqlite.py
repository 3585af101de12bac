"""The embedded default archive: one SQLite file, WAL mode, mode 0600."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from login_audit.archive.sql import SqlArchive, busy_message
from login_audit.errors import ArchiveBusyError, ConfigError


class SqliteDialect:
    """SQLite specifics: ``?`` placeholders, ``BEGIN IMMEDIATE``, lock files."""

    name = "sqlite"
    id_column = "INTEGER PRIMARY KEY"

    def sql(self, text: str) -> str:
        """SQLite takes ``?`` as it is."""
        return text

    @contextlib.contextmanager
    def transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any error."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextlib.contextmanager
    def tenant_lock(
        self, conn: Any, location: str, tenant: int, purpose: str = "sync"
    ) -> Iterator[None]:
        """An ``flock`` on ``<archive>.tenant-<id>.lock``, released by the OS if we die."""
        suffix = "" if purpose == "sync" else f".{purpose}"
        path = f"{location}.tenant-{tenant}{suffix}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ArchiveBusyError(busy_message(purpose, location)) from None
            yield
        finally:
            os.close(fd)

    def size_bytes(self, conn: sqlite3.Connection) -> int:
        """Pages times page size (the WAL file is not counted)."""
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        return int(pages) * int(size)

    def insert_many(self, conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """``executemany``; SQLite's change counter gives the rows really inserted."""
        before = conn.total_changes
        conn.executemany(sql, rows)
        return conn.total_changes - before


def open_sqlite(path: Path) -> SqlArchive:
    """Open (creating, mode 0600) the SQLite archive at ``path``."""
    path = path.expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.close(fd)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the archive {path}: {exc.strerror}; choose another with --archive"
        ) from None
    for attempt in range(50):
        try:
            return _connect(path)
        except sqlite3.OperationalError as exc:
            # Another process is creating or migrating the same file: wait for it.
            if "locked" not in str(exc) or attempt == 49:
                raise ConfigError(
                    f"the archive {path} cannot be opened ({exc}); check that no other "
                    "program holds it"
                ) from None
            time.sleep(0.2)
    raise AssertionError("unreachable")


def _connect(path: Path) -> SqlArchive:
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode keeps every committed transaction through a process crash.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        # A 32 MiB page cache keeps most of the key index in memory while large syncs insert.
        conn.execute("PRAGMA cache_size = -32768")
        # Fewer, larger WAL checkpoints: each one fsyncs, and they dominate ingest time.
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        return SqlArchive(conn, SqliteDialect(), str(path))
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as exc:
        raise ConfigError(
            f"the archive {path} is not a usable SQLite database ({exc}); move it aside or "
            "choose another with --archive"
        ) from None
