"""The embedded default archive: one SQLite file, WAL mode, mode 0600."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from login_audit import interrupts
from login_audit.archive.base import busy_message
from login_audit.archive.sql import RECORD_COLUMNS, SqlArchive
from login_audit.errors import ArchiveBusyError, ConfigError
from login_audit.locks import file_lock

log = logging.getLogger(__name__)

#: Words of SQLite's errors when it cannot write (see :func:`login_audit.archive.archive_failure`).
_WRITE_FAILURES = ("full", "i/o error", "too large", "readonly", "read-only")
#: How long opening waits for another program that holds the file (one creating or
#: migrating it, say), and the pause between two attempts.
OPEN_WAIT = 30.0
OPEN_RETRY = 0.2
#: Rows a connection changes before its write-ahead log is copied into the database file
#: by the background checkpointer (a few pages of records; small writes leave it to the
#: connection's own checkpoints).
CHECKPOINT_ROWS = 1000
#: Pages of write-ahead log past which the background checkpointer also truncates it. A
#: copy that runs while the writer goes on leaves the log in use, so it would otherwise
#: only grow (to hundreds of MiB over a large sync); truncating waits for the writer's
#: transaction in progress and holds the next one back for the short rest of the copy.
WAL_LIMIT_PAGES = 10_000
#: How long truncating waits for the writer's transaction and for readers still on the
#: log; the writer waits for it meanwhile, so this stays far below the writer's 10 s.
TRUNCATE_WAIT_MS = 250


class Checkpointer:
    """Copies committed transactions from the write-ahead log into the database file on a
    thread of its own, so the writer goes on parsing and inserting meanwhile (the log is
    truncated once it holds ``WAL_LIMIT_PAGES``).

    A checkpoint (SQLite's ``PASSIVE``: it never blocks the writer nor waits for it) copies
    pages and fsyncs the log and the database file; done by the writer's connection, as
    SQLite does every 10,000 pages, it stops the ingest for the whole copy and both
    fsyncs. Durability does not change: a transaction is durable against a process crash
    once committed to the log whoever checkpoints it, and since the log is fsynced at each
    checkpoint, one done after each large commit leaves less to a power loss, not more.

    The thread runs only while there is something to copy, on a connection opened for
    that, so an archive never closed leaves no thread or file handle behind. A failure
    (say a full disk) is logged once and ends the background copies: the writer's own
    checkpoints, which stay enabled, take over as before.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.failure: str | None = None
        self._cond = threading.Condition()
        self._pending = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        """Have the log copied soon; returns at once."""
        with self._cond:
            if self.failure is not None:
                return
            self._pending = True
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sqlite-checkpoint", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        interrupts.spare_this_thread()
        try:
            while self._take():
                self._copy()
        except Exception as exc:  # whatever failed, the writer's own checkpoints remain
            with self._cond:
                self.failure = str(exc) or type(exc).__name__
                self._thread = None
                self._cond.notify_all()
            log.warning(
                "copying the archive's write-ahead log in the background failed (%s); "
                "the archive goes on copying it itself",
                self.failure,
            )

    def _take(self) -> bool:
        """Whether to copy again; if not, the thread ends (in the same step, under the lock,
        so that a request made meanwhile starts a new one)."""
        with self._cond:
            if self._pending and self.failure is None:
                self._pending = False
                return True
            self._thread = None
            self._cond.notify_all()
            return False

    def _copy(self) -> None:
        # mode=rw: an archive moved away meanwhile is not created again, empty.
        conn = sqlite3.connect(
            _uri(str(self.path), "rw"),
            uri=True,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {TRUNCATE_WAIT_MS}")
            _, pages, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if pages >= WAL_LIMIT_PAGES:
                # With a reader still on the log (another process's long query) this gives
                # up after TRUNCATE_WAIT_MS, reporting "busy"; tried again next time.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        finally:
            conn.close()

    def wait(self) -> None:
        """Return once no copy is running or pending (before the archive closes)."""
        with self._cond:
            while self._thread is not None:
                self._cond.wait()


class SqliteDialect:
    """SQLite specifics: ``?`` placeholders, ``BEGIN IMMEDIATE``, lock files."""

    name = "sqlite"
    id_column = "INTEGER PRIMARY KEY"
    bytes_column = "BLOB"
    #: SQLite gained ``unhex`` in 3.41; older ones get :func:`bytes.fromhex` at connection.
    unhex_key = "login_audit_unhex(key)"
    row_lock = ""  # BEGIN IMMEDIATE already holds the only write lock

    def __init__(self, checkpointer: Checkpointer | None = None) -> None:
        self.checkpointer = checkpointer
        self._changes = 0  # the connection's change count at the last checkpoint asked for

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
        if self.checkpointer is not None and conn.total_changes - self._changes >= CHECKPOINT_ROWS:
            self._changes = conn.total_changes
            self.checkpointer.request()

    def release(self) -> None:
        """Let a running background checkpoint finish (the connection closes next)."""
        if self.checkpointer is not None:
            self.checkpointer.wait()

    def tenant_lock(
        self, conn: Any, location: str, tenant: int, purpose: str = "sync"
    ) -> AbstractContextManager[None]:
        """An ``flock`` on ``<archive>.tenant-<id>[.<purpose>].lock``, released by the OS if
        we die; the sync lock keeps the name it always had, so older versions still meet it."""
        suffix = "" if purpose == "sync" else f".{purpose}"
        path = f"{location}.tenant-{tenant}{suffix}.lock"
        return file_lock(path, busy_message(location, purpose))

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

    def stored_records(
        self, conn: sqlite3.Connection, tenant: int, records: Sequence[tuple[int, bytes]]
    ) -> set[tuple[int | None, bytes]]:
        """Every record stored at the times of ``records``: one seek of the unique index per
        distinct time (SQLite would look each digest up again under each time)."""
        times = list({at for at, _ in records})
        found: set[tuple[int | None, bytes]] = set()
        for start in range(0, len(times), 500):
            chunk = times[start : start + 500]
            found.update(
                conn.execute(
                    "SELECT logged_at, key FROM records WHERE tenant_id = ?"  # noqa: S608 - placeholders only
                    f" AND logged_at IN ({', '.join('?' * len(chunk))})",
                    (tenant, *chunk),
                )
            )
        return found

    def start_checkpoint(self) -> Callable[[], None]:
        """Have the :class:`Checkpointer` copy the log now; the function returned waits for
        it (nothing to wait for on a connection without one, opened read-only)."""
        if self.checkpointer is None:
            return lambda: None
        self.checkpointer.request()
        return self.checkpointer.wait

    def insert_records(self, conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> int:
        """One ``executemany``; a record stored meanwhile (none can be) would be skipped."""
        marks = ", ".join("?" * len(rows[0])) if rows else ""
        return self.insert_many(
            conn,
            f"INSERT INTO records ({RECORD_COLUMNS}) VALUES ({marks}) ON CONFLICT DO NOTHING",  # noqa: S608 - fixed columns, values are parameters
            rows,
        )


def _uri(path: str, mode: str) -> str:
    """SQLite's ``file:`` URI of ``path``: the name's bytes as the file system holds them,
    percent-encoded, so that a name in another encoding than UTF-8 opens the same file."""
    return f"file:{quote(os.fsencode(path))}?mode={mode}"


def open_sqlite(
    path: Path,
    *,
    existing: bool = False,
    read_only: bool = False,
    create_folder: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> SqlArchive:
    """Open (creating, mode 0600, unless ``existing``) the SQLite archive at ``path``.

    The path is resolved first: the per-tenant lock files sit beside the real file, so a
    symlink to the same archive meets the same locks. Its folder must exist unless
    ``create_folder`` (the default location). A file another program holds is waited for
    ``OPEN_WAIT`` seconds at most (``sleep`` and ``clock`` are injectable).
    """
    path = Path(os.path.realpath(path.expanduser()))
    refuse_unusual(path)
    if not create_folder and not path.parent.is_dir():
        raise ConfigError(
            f"the folder {path.parent} of the archive does not exist: check the path "
            f"(--archive or LOGIN_AUDIT_ARCHIVE), or create it with: mkdir -p {path.parent}"
        )
    if existing and not path.is_file():
        raise ConfigError(
            f"no archive at {path}: check the path (--archive or LOGIN_AUDIT_ARCHIVE); "
            "'sync' or 'audit' creates one"
        )
    if read_only:
        return _connect_read_only(path)
    refuse_hard_links(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Not through a link, and never blocking on a pipe swapped in since the check.
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        os.close(fd)
        if not regular:
            refuse_unusual(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the archive {path}: {exc.strerror}; choose another with --archive"
        ) from None
    from login_audit.archive import archive_failure

    deadline = clock() + OPEN_WAIT
    while True:
        try:
            return _connect(path)
        except sqlite3.OperationalError as exc:
            # Migrations write at opening too: a full disk, the file-size limit or a
            # read-only file is said as such, not as a file held by another program.
            if any(word in str(exc).lower() for word in _WRITE_FAILURES):
                failure = archive_failure(exc, str(path))
                assert failure is not None
                raise failure from None
            if "locked" not in str(exc):
                raise ConfigError(
                    f"the archive {path} cannot be opened ({exc}); check that no other "
                    "program holds it"
                ) from None
            # Another process is creating or migrating the same file: wait for it.
            if clock() >= deadline:
                raise ArchiveBusyError(
                    f"the archive {path} is locked by another program ({exc}) and stayed so "
                    f"for {OPEN_WAIT:g} s; run again when it has finished"
                ) from None
            sleep(OPEN_RETRY)


def refuse_unusual(path: Path) -> None:
    """Refuse a folder, device, pipe or socket before anything opens or changes it.

    Opening one as a database would block (a pipe), write a ``-journal`` beside a device
    and change its mode (``/dev/null``), or fail later with a misleading error.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISDIR(mode):
        raise ConfigError(
            f"the archive {path} is a folder: name a file in it, such as "
            f"{path / 'archive.sqlite3'} (--archive or LOGIN_AUDIT_ARCHIVE)"
        )
    if not stat.S_ISREG(mode):
        raise ConfigError(
            f"the archive {path} is not a regular file (a device, pipe or socket): name a "
            "file with --archive or LOGIN_AUDIT_ARCHIVE"
        )
    for suffix in ("-wal", "-shm", "-journal"):
        # SQLite would follow a link planted here and write into the file it points to.
        companion = Path(f"{path}{suffix}")
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISREG(companion.lstat().st_mode):
                raise ConfigError(
                    f"{companion} beside the archive is a symbolic link or not a regular "
                    "file, which SQLite would write through; remove it, then run again"
                )


def refuse_foreign(conn: sqlite3.Connection, path: Path, *, writing: bool = False) -> None:
    """Refuse a SQLite database that has tables but none of ours: another program's data
    must not get our tables added, nor its mode changed. An empty file is a new archive,
    unless another user owns it and we are ``writing``: run as root, we would fill a file
    someone else controls (and can read) with every account's logon history."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if tables and "schema_migrations" not in tables:
        conn.close()
        raise ConfigError(
            f"the archive {path} is a SQLite database of another program (it has no "
            "login-audit tables), left untouched; name a new file or an archive of "
            "login-audit with --archive"
        )
    if writing and not tables and os.stat(path).st_uid != os.geteuid():
        conn.close()
        raise ConfigError(
            f"the archive {path} is an empty file of another user, left untouched; name a "
            "new file with --archive, or have its owner run the first sync"
        )


def refuse_hard_links(path: Path) -> None:
    """Refuse a file with other hard links: the tenant locks sit beside one path, so a run
    through another name would not meet them and two runs could write one tenant at once.
    (Locking the inode instead would need a shared place for the locks that no path gives.)
    """
    with contextlib.suppress(FileNotFoundError):
        links = path.stat().st_nlink
        if links > 1:
            raise ConfigError(
                f"the archive {path} has {links} hard links, which would let two runs write "
                "one tenant at once; use one path to it (a symbolic link is fine), or copy it"
            )


def tighten(path: Path) -> None:
    """Make an existing file readable by its owner only, and say so when it was not.

    Files we create are 0600 from the start; one made earlier by hand (or by a version
    that did not) may be 0644 and hold every account's logon history.
    """
    try:
        info = path.lstat()  # a link is not followed to a file that is not ours
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(info.st_mode)
    if stat.S_ISREG(info.st_mode) and mode & 0o077:
        try:
            os.chmod(path, 0o600)
        except OSError:  # not ours to change (another user's file in a shared folder)
            log.warning("%s can be read by other users (mode %04o); restrict it", path, mode)
            return
        log.warning("%s could be read by other users (mode %04o); it is now 0600", path, mode)


def _connect_read_only(path: Path) -> SqlArchive:
    """Open for reading only: no write access to the file or its folder is needed.

    SQLite's read-only mode still wants the WAL index beside the file, and leaves it and
    the WAL behind; so where we may write, a writable connection that only queries is used,
    which removes both when it closes. In a folder we cannot write, a file without a
    pending WAL is opened as immutable.
    """
    uri = _uri(str(path), "ro")
    wal = Path(f"{path}-wal")
    attempts = [uri]
    if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK):
        attempts.insert(0, _uri(str(path), "rw"))
    if not wal.exists() or wal.stat().st_size == 0:
        attempts.append(f"{uri}&immutable=1")
    problem: Exception | None = None
    for target in attempts:
        try:
            conn = sqlite3.connect(target, uri=True, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA query_only = 1")
            archive = SqlArchive(conn, SqliteDialect(), str(path), migrate=False)
            archive.size_bytes()
        except sqlite3.OperationalError as exc:
            problem = exc
            continue
        check_integrity(conn, path)
        refuse_foreign(conn, path)
        if stat.S_IMODE(path.stat().st_mode) & 0o077:  # advice only once it is known ours
            log.warning("%s can be read by other users; restrict it with: chmod 600 %s", path, path)
        if archive.pending_migrations():
            archive.close()
            raise ConfigError(
                f"the archive {path} is not a login-audit archive or needs upgrading; run "
                "'sync' once with write access to it"
            )
        return archive
    raise ConfigError(
        f"the archive {path} cannot be read ({problem}); check its permissions, or that its "
        "folder is writable when it has a -wal file beside it"
    )


def check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a damaged file before anything is read from it or written into it.

    A damaged page may sit where a given command never reads (so it would succeed, and a
    sync would write on top of the damage); ``quick_check`` reads every page, about a
    second per gigabyte.
    """
    from login_audit.archive import archive_failure

    try:
        rows = conn.execute("PRAGMA quick_check(3)").fetchall()
        lines = [ln for r in rows for ln in str(r[0]).splitlines() if not ln.startswith("***")]
        problem = None if rows == [("ok",)] else "integrity check: " + "; ".join(lines[:3])
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            conn.close()
            raise  # another process is creating the file: the caller waits and retries
        problem = str(exc)
    except sqlite3.DatabaseError as exc:
        problem = str(exc)
    if problem is not None:
        conn.close()
        failure = archive_failure(sqlite3.DatabaseError(problem), str(path))
        assert failure is not None
        raise failure


def _connect(path: Path) -> SqlArchive:
    conn: sqlite3.Connection | None = None
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # While opening, a busy file fails at once: open_sqlite waits, for a bounded time.
        conn.execute("PRAGMA busy_timeout = 0")
        conn.create_function("login_audit_unhex", 1, bytes.fromhex, deterministic=True)
        check_integrity(conn, path)
        refuse_foreign(conn, path, writing=True)
        # Proven ours (or new) only now: before, the file might be anybody's.
        for private in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            tighten(private)
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode keeps every committed transaction through a process crash.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
        # A 32 MiB page cache keeps most of the key index in memory while large syncs insert.
        conn.execute("PRAGMA cache_size = -32768")
        # Fewer, larger WAL checkpoints: each one fsyncs. Large writes have the log copied
        # in the background (see Checkpointer); this is for the rest, and a fallback.
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        archive = SqlArchive(conn, SqliteDialect(Checkpointer(path)), str(path))
        conn.execute("PRAGMA busy_timeout = 10000")
        return archive
    except BaseException as exc:  # an interrupt too: no connection is left to the collector
        if conn is not None:
            conn.close()
        if isinstance(exc, sqlite3.OperationalError) or not isinstance(exc, sqlite3.DatabaseError):
            raise
        raise ConfigError(
            f"the archive {path} is not a usable SQLite database ({exc}); move it aside or "
            "choose another with --archive"
        ) from None
