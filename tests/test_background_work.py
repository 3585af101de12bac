"""Work started on a thread of its own while an audit waits: it must change no result."""

from __future__ import annotations

import os
import shutil
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from login_audit.archive import open_archive
from login_audit.archive.base import TenantKey
from login_audit.platforms.visionone import parse_record
from login_audit.reports import htmlreport, prepare_in_background
from login_audit.syncstate import Checkpoint

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
KEY = TenantKey("visionone", "eu", "prod")


def page(first: int, count: int) -> list:
    items = [
        {
            "loggedDateTime": (T0 + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "loggedUser": f"user{n % 7}@example.com",
            "category": "Logon and Logoff",
            "activity": "Log on",
            "result": "Successful",
            "details": {"n": n},
        }
        for n in range(first, first + count)
    ]
    return [parse_record(item) for item in items]


CHECKPOINT = Checkpoint.single(T0, T0 + timedelta(days=1), None, 1)


# A file name in a legacy encoding (Latin-1 here) is a valid archive path on Linux.
@pytest.mark.parametrize(
    "name", [b"archive.sqlite3", b"archiv\xe9.sqlite3"], ids=["utf8", "latin1"]
)
def test_a_background_checkpoint_copies_the_log_into_the_file(
    tmp_path: Path, name: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures: list[object] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    path = tmp_path / os.fsdecode(name)
    store = open_archive(str(path))
    tenant = store.tenant_id(KEY)
    store.commit_page(tenant, "all", page(0, 300), CHECKPOINT)
    store.checkpoint_in_background()()
    assert failures == []  # no thread's traceback amid the output
    # The file alone, without its write-ahead log, now holds every committed record.
    alone = tmp_path / "copy.sqlite3"
    shutil.copyfile(path, alone)
    copy = open_archive(str(alone))
    assert sum(1 for _ in copy.iter_records(copy.tenant_id(KEY))) == 300
    copy.close()
    store.close()
    reader = open_archive(str(path), read_only=True)  # by the same name, to read only
    assert sum(1 for _ in reader.iter_records(reader.tenant_id(KEY))) == 300
    reader.close()


def test_writes_during_a_background_checkpoint_are_all_kept(archive_url: str) -> None:
    store = open_archive(archive_url)
    tenant = store.tenant_id(KEY)
    store.commit_page(tenant, "all", page(0, 500), CHECKPOINT)
    store.checkpoint_in_background()
    store.commit_page(tenant, "all", page(500, 500), CHECKPOINT)
    store.checkpoint_in_background()()  # a second one, for what came since the first
    store.close()
    again = open_archive(archive_url)
    stored = [r.raw for r in again.iter_records(again.tenant_id(KEY))]
    again.close()
    assert len(stored) == 1000 and len(set(stored)) == 1000
    if not archive_url.startswith("postgresql"):
        assert not Path(f"{archive_url}-wal").exists()  # closed cleanly, log folded in


def test_reports_prepared_in_the_background_fail_silently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures: list[object] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)

    def broken() -> None:
        raise OSError("templates unreadable")

    monkeypatch.setattr(htmlreport, "load_templates", broken)
    prepare_in_background()()
    assert failures == []  # the report itself, written later, says what is wrong


def test_a_report_writer_that_cannot_be_loaded_prints_nothing_from_the_background(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A writer whose module fails to import (a broken install, say) must not show up as a
    thread's traceback in the middle of the audit's output; writing the reports says it."""
    failures: list[object] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    monkeypatch.setitem(sys.modules, "login_audit.reports.htmlreport", None)  # import fails
    with pytest.raises(ImportError):
        from login_audit.reports.htmlreport import load_templates  # noqa: F401
    prepare_in_background()()
    assert failures == []


def test_a_background_checkpoint_of_a_removed_archive_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file was deleted while the audit ran: the checkpoint must not make a new empty
    archive where the old one was, nor hang the close, nor print a thread's traceback."""
    failures: list[object] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    path = tmp_path / "archive.sqlite3"
    store = open_archive(str(path))
    store.commit_page(store.tenant_id(KEY), "all", page(0, 10), CHECKPOINT)
    for name in ("archive.sqlite3", "archive.sqlite3-wal", "archive.sqlite3-shm"):
        (tmp_path / name).unlink()
    store.checkpoint_in_background()()
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert failures == []
