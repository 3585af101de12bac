"""The archive layer, the same tests against SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from login_audit.archive import open_archive
from login_audit.archive.base import TenantKey, from_us, to_us
from login_audit.archive.sql import LOGON_AGGREGATES_SQL, SqlArchive
from login_audit.errors import ArchiveBusyError, ConfigError
from login_audit.models import Account, AccountStatus
from login_audit.platforms.visionone import parse_record
from login_audit.syncstate import Checkpoint

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
KEY = TenantKey("visionone", "eu", "prod")


def item(
    minutes: int,
    user: str = "a@example.com",
    activity: str = "Log on",
    result: str = "Successful",
    category: str = "Logon and Logoff",
) -> dict:
    return {
        "loggedDateTime": (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "loggedUser": user,
        "category": category,
        "activity": activity,
        "result": result,
        "details": {"n": minutes},
    }


def records(*items: dict):
    return [parse_record(i) for i in items]


def cp(pages: int = 1, link: str | None = None) -> Checkpoint:
    return Checkpoint.single(T0, T0 + timedelta(days=1), link, pages)


@given(st.datetimes(min_value=datetime(1, 1, 2), timezones=st.just(timezone.utc)))
def test_time_conversion_round_trips(moment: datetime) -> None:
    assert from_us(to_us(moment)) == moment
    assert from_us(None) is None


def test_migrations_are_named_recorded_and_applied_once(archive: SqlArchive) -> None:
    assert archive.migrations() == [
        "0001_initial",
        "0002_audit_runs_and_apply_journal",
        "0003_watch_signals",
        "0004_records_by_time_and_key",
        "0005_records_keyed_by_time",
    ]
    assert archive.migrate() == []


def test_export_batches_cross_ties_in_time_without_losing_or_repeating(
    archive: SqlArchive,
) -> None:
    """Many records share a second: the keyset resumes inside the tie, by key."""
    tenant = archive.tenant_id(KEY)
    same = [item(5, user=f"u{n}@example.com") for n in range(23)]
    page = records(*same, *(item(m) for m in (1, 9, 30)))
    archive.commit_page(tenant, "all", page, cp())
    for batch in (1, 4, 7, 100):
        got = list(archive.iter_records(tenant, batch=batch))
        assert sorted(r.key for r in got) == sorted(r.key for r in page)
        assert [(r.when, r.key) for r in got] == sorted((r.when, r.key) for r in page)


def test_export_batches_seek_the_index_instead_of_sorting(tmp_path: Path) -> None:
    """Each batch of an export starts at the last key returned, from the index: no
    sort of what remains, so the hundredth batch costs what the first did."""
    store = open_archive(str(tmp_path / "plan.sqlite3"))
    assert isinstance(store, SqlArchive)
    plan = " ".join(
        str(row[-1])
        for row in store._all(
            "EXPLAIN QUERY PLAN SELECT key FROM records WHERE tenant_id = ?"
            " AND logged_at IS NOT NULL AND (logged_at, key) > (?, ?)"
            " ORDER BY logged_at, key LIMIT 5000",
            (1, 0, ""),
        )
    )
    store.close()
    assert "records_by_time_key" in plan and "TEMP B-TREE" not in plan, plan


def test_pages_are_deduplicated_and_counted(archive: SqlArchive) -> None:
    tenant = archive.tenant_id(KEY)
    assert archive.tenant_id(KEY) == tenant
    first = records(item(1), item(2), item(3))
    assert archive.commit_page(tenant, "all", first, cp(1, "next")) == 3
    again = records(item(2), item(3), item(4))
    assert archive.commit_page(tenant, "all", again, cp(2, "next2")) == 1
    state = archive.state(tenant, "all")
    assert state is not None and state.checkpoint == cp(2, "next2")
    assert state.watermark is None  # the window is not finished
    raws = [r.raw for r in archive.iter_records(tenant)]
    assert [json.loads(r)["details"]["n"] for r in raws] == [1, 2, 3, 4]


def test_tenants_are_kept_apart(archive: SqlArchive) -> None:
    a = archive.tenant_id(KEY)
    b = archive.tenant_id(TenantKey("visionone", "eu", "staging"))
    archive.commit_page(a, "all", records(item(1)), cp())
    archive.commit_page(b, "all", records(item(1)), cp())
    assert len(list(archive.iter_records(a))) == 1
    assert len(list(archive.iter_records(b))) == 1
    assert {i.key.name for i in archive.info()} == {"prod", "staging"}


def test_coverage_extends_and_restarts_after_a_gap(archive: SqlArchive) -> None:
    tenant = archive.tenant_id(KEY)
    day = timedelta(days=1)
    archive.finish_window(tenant, "all", T0, T0 + day, T0 + day)
    state = archive.state(tenant, "all")
    assert (state.covered_from, state.watermark, state.checkpoint) == (T0, T0 + day, None)
    # Overlapping window: coverage extends.
    archive.finish_window(tenant, "all", T0 + day / 2, T0 + 2 * day, T0 + 2 * day)
    state = archive.state(tenant, "all")
    assert (state.covered_from, state.watermark) == (T0, T0 + 2 * day)
    # A window after a gap restarts coverage.
    archive.finish_window(tenant, "all", T0 + 5 * day, T0 + 6 * day, T0 + 6 * day)
    state = archive.state(tenant, "all")
    assert (state.covered_from, state.watermark) == (T0 + 5 * day, T0 + 6 * day)


def test_logon_aggregates(archive: SqlArchive) -> None:
    tenant = archive.tenant_id(KEY)
    undated = item(0)
    undated["loggedDateTime"] = "not a time"
    archive.commit_page(
        tenant,
        "all",
        records(
            item(1),
            item(5),
            item(7, result="Unsuccessful"),
            item(9, activity="Log off"),
            item(3, user="b@example.com"),
            item(4, category="Account Management", activity="x"),
            undated,
        ),
        cp(),
    )
    rows = {
        (a.principal, a.successful): (a.last, a.undated) for a in archive.logon_aggregates(tenant)
    }
    assert rows == {
        ("a@example.com", True): (T0 + timedelta(minutes=5), 1),
        ("a@example.com", False): (T0 + timedelta(minutes=7), 0),
        ("b@example.com", True): (T0 + timedelta(minutes=3), 0),
    }


def test_iter_records_filters_and_streams_in_batches(archive: SqlArchive) -> None:
    tenant = archive.tenant_id(KEY)
    archive.commit_page(
        tenant,
        "all",
        records(*[item(m, category="Logon and Logoff" if m % 2 else "Other") for m in range(25)]),
        cp(),
    )
    got = list(archive.iter_records(tenant, batch=4))
    assert [r.when for r in got] == [T0 + timedelta(minutes=m) for m in range(25)]
    since, until = T0 + timedelta(minutes=5), T0 + timedelta(minutes=15)
    window = list(archive.iter_records(tenant, since, until, "logon and logoff", batch=3))
    assert [r.when.minute for r in window] == [5, 7, 9, 11, 13]


def account(role: str = "Operator", status: AccountStatus = AccountStatus.ENABLED) -> Account:
    return Account(id="acc-1", email="a@example.com", role=role, auth_type="local", status=status)


def test_account_snapshots_keep_history(archive: SqlArchive) -> None:
    tenant = archive.tenant_id(KEY)
    archive.store_accounts(tenant, [account()], T0)
    archive.store_accounts(tenant, [account()], T0 + timedelta(days=1))
    archive.store_accounts(tenant, [account("Master Administrator")], T0 + timedelta(days=2))
    history = archive.account_history(tenant, "acc-1")
    assert [h["role"] for h in history] == ["Operator", "Master Administrator"]
    assert history[0]["first_seen"] == T0
    assert history[0]["last_seen"] == T0 + timedelta(days=1)
    seen, first_snapshot = archive.first_seen(tenant)
    assert seen == {"acc-1": T0} and first_snapshot == T0
    other = Account("acc-2", "b@example.com", "Operator", "local", AccountStatus.ENABLED)
    archive.store_accounts(tenant, [other], T0 + timedelta(days=3))
    assert archive.known_account_ids(tenant) == {"acc-1", "acc-2"}
    assert archive.last_snapshot_ids(tenant) == {"acc-2"}


def test_prune_deletes_old_records_and_moves_coverage(archive: SqlArchive) -> None:
    tenant = archive.tenant_id(KEY)
    archive.commit_page(tenant, "all", records(item(1), item(60), item(120)), cp())
    archive.finish_window(tenant, "all", T0, T0 + timedelta(days=1), T0)
    assert archive.prune(T0 + timedelta(minutes=30)) == 1
    assert len(list(archive.iter_records(tenant))) == 2
    assert archive.state(tenant, "all").covered_from == T0 + timedelta(minutes=30)


def test_a_second_sync_of_the_same_tenant_is_refused(archive_url: str) -> None:
    first, second = open_archive(archive_url), open_archive(archive_url)
    try:
        tenant = first.tenant_id(KEY)
        other = first.tenant_id(TenantKey("visionone", "us", "other"))
        with first.lock(tenant):
            with (
                pytest.raises(ArchiveBusyError, match="another login-audit process"),
                second.lock(tenant),
            ):
                pass
            with second.lock(other):  # other tenants are not blocked
                pass
        with second.lock(tenant):  # released
            pass
    finally:
        first.close()
        second.close()


def test_logon_query_uses_the_index(archive: SqlArchive) -> None:
    tenant = archive.tenant_id(KEY)
    archive.commit_page(tenant, "all", records(*[item(m) for m in range(50)]), cp())
    sql, params = LOGON_AGGREGATES_SQL, (tenant,)
    if archive.dialect.name == "sqlite":
        plan = " ".join(str(r) for r in archive.conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "records_logons" in plan and "COVERING INDEX" in plan
    else:
        archive.conn.execute("SET enable_seqscan = off")
        plan = " ".join(
            str(r) for r in archive.conn.execute("EXPLAIN " + sql.replace("?", "%s"), params)
        )
        assert "records_logons" in plan


def test_the_watch_looks_logons_up_by_account_id_in_the_index(tmp_path: Path) -> None:
    """The index of logons by account id leaves out logons without one (most Vision One
    logons): the watch's look-ups by id still read it, not the table."""
    from login_audit.archive.signals import SignalStore

    store = open_archive(str(tmp_path / "plan.sqlite3"))
    assert isinstance(store, SqlArchive)
    tenant = store.tenant_id(KEY)
    with_id = item(1)
    with_id["loggedUserId"] = "id-1"
    store.commit_page(tenant, "all", records(with_id, item(2)), cp())
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)
    signals = SignalStore(store)
    assert signals.logon_times(tenant, "account_id", ["id-1"]) == {"id-1": [to_us(T0) + 60_000_000]}
    assert signals.last_logon_before(tenant, [], ["id-1"], T0 + timedelta(days=1)) == T0 + (
        timedelta(minutes=1)
    )
    store.conn.set_trace_callback(None)
    queries = [q for q in statements if q.startswith("SELECT") and "account_id IN" in q]
    assert len(queries) == 2
    for query in queries:
        plan = " ".join(str(r[-1]) for r in store.conn.execute("EXPLAIN QUERY PLAN " + query))
        assert "records_logons_by_id" in plan, plan
    store.close()


def test_sqlite_file_is_private_and_corruption_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    store = open_archive(str(path))
    store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    bad = tmp_path / "corrupt.sqlite3"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="not a usable SQLite database"):
        open_archive(str(bad))


def test_postgres_connection_errors_hide_the_password() -> None:
    url = "postgresql://user:hunter2-secret@127.0.0.1:1/db"
    with pytest.raises(ConfigError) as info:
        open_archive(url)
    assert "hunter2-secret" not in str(info.value)
    assert "cannot connect to the archive" in str(info.value)


def test_prune_one_tenant_from_the_command_line(cli, tmp_path: Path) -> None:

    path = str(tmp_path / "a.sqlite3")
    store = open_archive(path)
    for name in ("keep", "trim"):
        tenant = store.tenant_id(TenantKey("visionone", "eu", name))
        store.commit_page(tenant, "all", records(item(1), item(60 * 24 * 400)), cp())
    store.close()
    cutoff = (T0 + timedelta(days=10)).strftime("%Y-%m-%d")
    result = cli(
        ["archive", "prune", "--archive", path, "--before", cutoff, "--tenant", "trim", "--yes"]
    )
    assert result.code == 0, result.stderr
    assert "deleted 1 records" in result.stderr
    info = cli(["archive", "info", "--archive", path, "--json"])
    tenants = {t["tenant"]: t for t in json.loads(info.stdout)["tenants"]}
    assert tenants["keep"]["records"] == 2 and tenants["trim"]["records"] == 1
    assert tenants["keep"]["rawBytes"] > tenants["trim"]["rawBytes"] > 0
    missing = cli(
        ["archive", "prune", "--archive", path, "--before", cutoff, "--tenant", "nope", "--yes"]
    )
    assert missing.code == 2 and "no tenant named 'nope'" in missing.stderr


def test_a_record_older_than_the_newest_stored_is_still_found_stored(archive: SqlArchive) -> None:
    from login_audit.archive.signals import SignalStore

    tenant = archive.tenant_id(KEY)
    assert archive.commit_page(tenant, "all", records(item(1), item(2), item(3)), cp()) == 3
    assert archive.commit_page(tenant, "all", records(item(9)), cp()) == 1
    mixed = records(item(2), item(4), item(9), item(10), item(4))
    assert archive.commit_page(tenant, "all", mixed, cp()) == 2
    store = SignalStore(archive)
    stored = [
        (seq, json.loads(r.raw)["details"]["n"]) for seq, r in store.records_after(tenant, 0, 99)
    ]
    assert stored == [(1, 1), (2, 2), (3, 3), (4, 9), (5, 4), (6, 10)]
    # A pruned record read again is stored again, as before.
    archive.prune(T0 + timedelta(minutes=3))
    assert archive.commit_page(tenant, "all", records(item(2), item(3)), cp()) == 1


PAGES = st.lists(
    st.lists(
        st.tuples(st.integers(0, 40), st.booleans(), st.sampled_from(["Log on", "Log off"])),
        max_size=12,
    ),
    max_size=6,
)


@settings(max_examples=60)
@given(PAGES)
def test_pages_in_any_order_store_each_record_once_numbered_densely(pages) -> None:
    """Out of order, repeated, undated: every distinct record stored once, numbered 1..n in
    the order first seen, and each page's count says how many of its records were new."""
    from login_audit.archive.signals import SignalStore

    with tempfile.TemporaryDirectory() as folder:
        store = open_archive(str(Path(folder) / "a.sqlite3"))
        assert isinstance(store, SqlArchive)
        tenant = store.tenant_id(KEY)
        seen: list[str] = []
        for page in pages:
            made = []
            for minute, dated, activity in page:
                raw = item(minute, activity=activity)
                if not dated:
                    raw["loggedDateTime"] = "unknown"
                made.append(parse_record(raw))
            new = [r.key for r in made if r.key not in seen]
            new = list(dict.fromkeys(new))
            assert store.commit_page(tenant, "all", made, cp()) == len(new)
            seen += new
        numbered = SignalStore(store).records_after(tenant, 0, 1000)
        assert [(seq, r.key) for seq, r in numbered] == list(enumerate(seen, 1))
        assert sorted(r.key for r in store.iter_records(tenant)) == sorted(seen)
        store.close()


def test_two_writers_of_a_postgres_tenant_store_a_record_once(archive_url: str) -> None:
    """A second writer of the same records waits for the first to commit, then finds them
    stored: no duplicate, no failed COPY, no gap in the numbers."""
    import threading

    if not archive_url.startswith("postgresql"):
        pytest.skip("SQLite writers exclude each other for the whole transaction")
    first, second = open_archive(archive_url), open_archive(archive_url)
    assert isinstance(first, SqlArchive) and isinstance(second, SqlArchive)
    tenant = first.tenant_id(KEY)
    page = records(item(1), item(2), item(3))
    pid = second.conn.info.backend_pid
    got: list[int] = []
    with first.dialect.transaction(first.conn):
        # The first writer holds the tenant's counter row, as commit_page does.
        first._one("SELECT record_seq FROM tenants WHERE id = ? FOR UPDATE", (tenant,))
        writer = threading.Thread(
            target=lambda: got.append(second.commit_page(tenant, "all", page, cp()))
        )
        writer.start()
        while not first._one(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ? AND wait_event_type = 'Lock'",
            (pid,),
        )[0]:
            assert writer.is_alive()
        first.commit_page(tenant, "all", page, cp())  # the same transaction: it commits last
    writer.join()
    assert got == [0]
    from login_audit.archive.signals import SignalStore

    assert [seq for seq, _ in SignalStore(first).records_after(tenant, 0, 10)] == [1, 2, 3]
    first.close()
    second.close()


def _large_page(count: int) -> list:
    return records(*(item(n, user=f"u{n % 50}@example.com") for n in range(count)))


def test_a_large_commit_reaches_the_database_file_in_the_background(tmp_path: Path) -> None:
    """The write-ahead log is copied by the background checkpointer: the database file
    alone, copied without its log, holds the records; closing leaves no log behind."""
    from login_audit.archive.sqlite import CHECKPOINT_ROWS

    path = tmp_path / "a.sqlite3"
    archive = open_archive(str(path))
    assert isinstance(archive, SqlArchive)
    tenant = archive.tenant_id(KEY)
    page = _large_page(CHECKPOINT_ROWS + 10)
    assert archive.commit_page(tenant, "all", page, cp()) == len(page)
    archive.dialect.release()  # the copy asked for by that commit is done
    assert not [t for t in threading.enumerate() if t.name == "sqlite-checkpoint"]
    alone = tmp_path / "copy.sqlite3"
    alone.write_bytes(path.read_bytes())  # the file only: no -wal beside it
    copy = open_archive(str(alone))
    assert len(list(copy.iter_records(copy.tenant_id(KEY)))) == len(page)
    copy.close()
    archive.close()
    assert not {p.name for p in tmp_path.iterdir()} & {"a.sqlite3-wal", "a.sqlite3-shm"}


def _unexpected() -> None:
    raise RuntimeError("unexpected")


@pytest.mark.parametrize("failure", ["path is a folder", "unexpected error"])
def test_a_failing_background_checkpoint_is_said_once_and_loses_nothing(
    failure: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The checkpointer cannot open the file (its path names a folder), or fails in a way
    nobody foresaw: one warning, no traceback, no hang at closing, and every record is
    stored; the archive checkpoints on its own."""
    from login_audit.archive.sqlite import CHECKPOINT_ROWS

    tracebacks: list[object] = []
    monkeypatch.setattr(threading, "excepthook", tracebacks.append)
    archive = open_archive(str(tmp_path / "a.sqlite3"))
    assert isinstance(archive, SqlArchive)
    checkpointer = archive.dialect.checkpointer  # type: ignore[attr-defined]
    if failure == "path is a folder":
        checkpointer.path = tmp_path
    else:
        monkeypatch.setattr(checkpointer, "_copy", _unexpected)
    tenant = archive.tenant_id(KEY)
    stored = 0
    for start in range(0, 3 * CHECKPOINT_ROWS, CHECKPOINT_ROWS):
        page = records(*(item(start + n, user=f"u{n}@example.com") for n in range(CHECKPOINT_ROWS)))
        stored += archive.commit_page(tenant, "all", page, cp())
        archive.dialect.release()
    warnings = [r for r in caplog.records if "write-ahead log" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].exc_info is None and not tracebacks
    assert stored == 3 * CHECKPOINT_ROWS
    assert len(list(archive.iter_records(tenant))) == stored
    archive.close()


def test_an_archive_moved_away_while_open_is_not_created_again_by_the_checkpointer(
    tmp_path: Path,
) -> None:
    from login_audit.archive.sqlite import CHECKPOINT_ROWS

    path = tmp_path / "a.sqlite3"
    archive = open_archive(str(path))
    assert isinstance(archive, SqlArchive)
    tenant = archive.tenant_id(KEY)
    path.rename(tmp_path / "moved.sqlite3")
    page = _large_page(CHECKPOINT_ROWS)
    assert archive.commit_page(tenant, "all", page, cp()) == len(page)
    archive.dialect.release()
    assert not path.exists()
    archive.close()


_COMMITTING_CHILD = """
import sys
from datetime import datetime, timedelta, timezone
from login_audit.archive import open_archive
from login_audit.archive.base import TenantKey
from login_audit.platforms.visionone import parse_record
from login_audit.syncstate import Checkpoint

t0 = datetime(2026, 6, 1, tzinfo=timezone.utc)
archive = open_archive(sys.argv[1])
tenant = archive.tenant_id(TenantKey("visionone", "eu", "prod"))
size = int(sys.argv[2])
for page in range(1000):
    items = [
        {
            "loggedDateTime": (t0 + timedelta(seconds=page * size + n)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "loggedUser": f"u{n % 300}@example.com",
            "category": "Logon and Logoff",
            "activity": "Log on",
            "result": "Successful",
        }
        for n in range(size)
    ]
    checkpoint = Checkpoint.single(t0, t0 + timedelta(days=9), f"page-{page + 1}", page + 1)
    archive.commit_page(tenant, "all", [parse_record(i) for i in items], checkpoint)
    print(page + 1, flush=True)
"""


@pytest.mark.e2e
def test_a_process_killed_while_the_log_is_copied_keeps_every_committed_page(
    process_env, tmp_path: Path
) -> None:
    """SIGKILL once three large commits are reported, background copies of the log under
    way or not: every reported commit is there with its checkpoint, and no part of one."""
    from login_audit.archive.sqlite import CHECKPOINT_ROWS

    path = tmp_path / "a.sqlite3"
    size = CHECKPOINT_ROWS
    proc = subprocess.Popen(
        [sys.executable, "-c", _COMMITTING_CHILD, str(path), str(size)],
        env=process_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for expected in (1, 2, 3):
        assert proc.stdout.readline().strip() == str(expected)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    archive = open_archive(str(path))
    tenant = archive.tenant_id(KEY)
    stored = len(list(archive.iter_records(tenant)))
    state = archive.state(tenant, "all")
    assert state is not None and state.checkpoint is not None
    pages = state.checkpoint.slices[0].pages
    assert pages >= 3 and stored == pages * size
    archive.close()


def test_the_write_ahead_log_is_truncated_once_it_passes_its_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy running while the writer goes on cannot restart the log, which would grow
    without end over a large sync: past the limit the checkpointer truncates it."""
    from login_audit.archive import sqlite

    path = tmp_path / "a.sqlite3"
    wal = tmp_path / "a.sqlite3-wal"
    archive = open_archive(str(path))
    assert isinstance(archive, SqlArchive)
    tenant = archive.tenant_id(KEY)
    page = _large_page(sqlite.CHECKPOINT_ROWS)
    archive.commit_page(tenant, "all", page[:10], cp())  # below the rows that start a copy
    archive.dialect.release()
    assert wal.stat().st_size > 0
    monkeypatch.setattr(sqlite, "WAL_LIMIT_PAGES", 1)
    archive.commit_page(tenant, "all", page, cp())
    archive.dialect.release()
    assert wal.stat().st_size == 0
    assert len(list(archive.iter_records(tenant))) == len(page)
    archive.close()


def test_a_reader_on_the_log_holds_the_writer_back_only_briefly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another connection in the middle of a read (a watch's long query) keeps the log from
    being truncated: the truncation gives up after a moment, nothing fails, and the log is
    truncated after a later commit once the reader is done."""
    import sqlite3

    from login_audit.archive import sqlite

    monkeypatch.setattr(sqlite, "WAL_LIMIT_PAGES", 1)
    path = tmp_path / "a.sqlite3"
    archive = open_archive(str(path))
    assert isinstance(archive, SqlArchive)
    tenant = archive.tenant_id(KEY)
    archive.commit_page(tenant, "all", records(item(0)), cp())
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM records").fetchone() == (1,)
    page = _large_page(sqlite.CHECKPOINT_ROWS + 1)[1:]
    assert archive.commit_page(tenant, "all", page, cp()) == len(page)
    archive.dialect.release()
    assert Path(f"{path}-wal").stat().st_size > 0  # the reader still needs it
    assert reader.execute("SELECT COUNT(*) FROM records").fetchone() == (1,)
    reader.execute("COMMIT")
    reader.close()
    more = records(*(item(5000 + n, user=f"v{n}@example.com") for n in range(1000)))
    archive.commit_page(tenant, "all", more, cp())
    archive.dialect.release()
    assert Path(f"{path}-wal").stat().st_size == 0
    assert len(list(archive.iter_records(tenant))) == 1 + len(page) + len(more)
    assert not [r for r in caplog.records if "write-ahead log" in r.getMessage()]
    archive.close()
