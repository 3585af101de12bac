"""The archive as a new administrator meets it: typed paths, links, modes, connection strings."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from login_audit.archive import TenantKey, open_archive
from login_audit.simulator import build_tenant

FAST = ["--backoff-base", "0.01", "--max-attempts", "2"]


@pytest.fixture
def synced(cli, start_sim, tmp_path: Path):
    """A synced archive in its own folder, and the options that name its tenant."""
    sim = start_sim(build_tenant(seed=5, accounts=60))
    folder = tmp_path / "store"
    folder.mkdir()
    archive = folder / "archive.sqlite3"
    where = ["--base-url", sim.base_url, "--archive", str(archive)]
    assert cli(["sync", *where, *FAST], {"TMV1_TOKEN": sim.token}).code == 0
    return sim, archive, where


@pytest.mark.parametrize(
    "args",
    [
        ["archive", "info"],
        ["archive", "prune", "--before", "2020-01-01", "--yes"],
        ["export", "--no-sync", "--base-url", "http://127.0.0.1:9"],
    ],
)
def test_read_commands_refuse_a_path_that_does_not_exist(cli, tmp_path: Path, args) -> None:
    typo = tmp_path / "archvie.sqlite3"
    result = cli([*args, "--archive", str(typo)])
    assert result.code == 2
    assert (
        f"no archive at {typo}" in result.stderr
        and "'sync' or 'audit' creates one" in result.stderr
    )
    assert list(tmp_path.iterdir()) == []


def test_an_archive_in_a_read_only_folder_can_be_read(cli, synced, monkeypatch) -> None:
    _, archive, where = synced
    folder = archive.parent
    if os.geteuid() == 0:
        # Root ignores file modes: play SQLite's answer in a folder it cannot write, where
        # read-only mode cannot create the WAL index beside the file.
        import sqlite3

        real_connect = sqlite3.connect

        def connect(target, *args, **kwargs):
            if str(target).startswith("file:") and "immutable=1" not in str(target):
                raise sqlite3.OperationalError("unable to open database file")
            return real_connect(target, *args, **kwargs)

        monkeypatch.setattr(sqlite3, "connect", connect)
    os.chmod(archive, 0o400)
    os.chmod(folder, 0o500)
    try:
        info = cli(["archive", "info", "--archive", str(archive)])
        export = cli(["export", "--no-sync", *where, "--format", "jsonl"])
        listing = sorted(p.name for p in folder.iterdir())
    finally:
        os.chmod(folder, 0o700)
        os.chmod(archive, 0o600)
    assert info.code == 0, info.stderr
    assert "1 tenants" in info.stdout
    assert export.code == 0, export.stderr
    assert len(export.stdout.splitlines()) > 100
    assert listing == [archive.name, f"{archive.name}.tenant-1.lock"]  # nothing written


def test_an_archive_readable_by_others_is_tightened(cli, synced) -> None:
    sim, archive, where = synced
    os.chmod(archive, 0o644)
    info = cli(["archive", "info", "--archive", str(archive)])
    assert "can be read by other users; restrict it with: chmod 600" in info.stderr
    result = cli(["sync", *where, *FAST], {"TMV1_TOKEN": sim.token})
    assert result.code == 0, result.stderr
    assert "could be read by other users (mode 0644); it is now 0600" in result.stderr
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600


def sync_while_locked(cli, sim, holder, path: Path):
    """'sync' through ``path`` while ``holder``, another run, holds the tenant's sync lock."""
    key = TenantKey("visionone", sim.base_url.removeprefix("http://"), "default")
    try:
        with holder.lock(holder.tenant_id(key)):
            args = ["sync", "--base-url", sim.base_url, "--archive", str(path), *FAST]
            return cli(args, {"TMV1_TOKEN": sim.token})
    finally:
        holder.close()


def test_a_symlink_to_the_archive_meets_the_same_sync_lock(cli, synced, tmp_path) -> None:
    sim, archive, _ = synced
    link = tmp_path / "link.sqlite3"
    link.symlink_to(archive)
    result = sync_while_locked(cli, sim, open_archive(str(archive)), link)
    assert result.code == 4
    assert "another login-audit process is syncing this tenant" in result.stderr


def test_a_libpq_keyword_string_is_a_postgresql_archive(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = "host=127.0.0.1 port=9 dbname=audit user=la password=hunter2-Secret connect_timeout=2"
    result = cli(["archive", "info", "--archive", spec])
    assert result.code == 2
    assert "cannot connect to the archive host=127.0.0.1 port=9" in result.stderr
    assert "password=********" in result.stderr and "hunter2" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no SQLite file named after the string


def test_a_libpq_keyword_string_opens_the_server(cli, postgres_url) -> None:
    if postgres_url is None:
        pytest.skip("no PostgreSQL server")
    from urllib.parse import urlsplit

    url = urlsplit(postgres_url)
    spec = f"host={url.hostname} port={url.port} dbname={url.path.lstrip('/')} user={url.username}"
    if url.password:
        spec += f" password={url.password}"
    result = cli(["archive", "info", "--archive", spec])
    assert result.code == 0, result.stderr
    assert "archive host=" in result.stdout
    if url.password:
        assert url.password not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        ("mysql://la:hunter2@db.example:3306/audit", "mysql://la:********@db.example:3306"),
        ("postgresq://la:hunter2@db.example/audit", "postgresq://la:********@db.example"),
        ("mysql://db.example/audit?password=hunter2&sslmode=on", "mysql://db.example/audit"),
        ("sqlite:///tmp/a.db", "sqlite:///tmp/a.db"),
    ],
)
def test_an_archive_url_of_another_kind_is_refused_without_its_password(cli, spec, shown):
    """The user sees what they typed wrong (the scheme and the host), never the password."""
    result = cli(["archive", "info", "--archive", spec])
    assert result.code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "neither a file path nor a PostgreSQL" in line
    assert shown in line, line
    assert "hunter2" not in line


@pytest.mark.parametrize("command", ["audit", "sync"])
def test_an_archive_in_a_folder_that_does_not_exist_is_refused(cli, tmp_path, command) -> None:
    """A typo in the folder must not become a new, empty archive and a full re-read."""
    typo = tmp_path / "missing" / "dir" / "a.sqlite3"
    args = [command, "--base-url", "http://127.0.0.1:9", "--archive", str(typo)]
    if command == "audit":
        args += ["--output-dir", str(tmp_path / "out")]
    result = cli(args, {"TMV1_TOKEN": "a-token-value-0123456789"})
    assert result.code == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"the folder {tmp_path / 'missing' / 'dir'} of the archive does not exist" in line
    assert "mkdir -p" in line
    assert not (tmp_path / "missing").exists()


def test_the_default_archive_folder_is_still_created(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    archive = open_archive(None)
    try:
        assert archive.location == str(tmp_path / "data" / "login-audit" / "archive.sqlite3")
    finally:
        archive.close()
    assert stat.S_IMODE((tmp_path / "data" / "login-audit").stat().st_mode) == 0o700


def test_reading_commands_leave_no_wal_or_shm_files(cli, synced) -> None:
    """A command that only reads the archive leaves its folder as it found it."""
    sim, archive, where = synced
    before = sorted(p.name for p in archive.parent.iterdir())
    assert before == [archive.name, f"{archive.name}.tenant-1.lock"]
    info = cli(["archive", "info", "--archive", str(archive)])
    assert info.code == 0, info.stderr
    assert sorted(p.name for p in archive.parent.iterdir()) == before
    doctor = cli(["doctor", *where, *FAST], {"TMV1_TOKEN": sim.token})
    assert f"archive readable ({archive})" in doctor.stdout, doctor.stdout
    assert sorted(p.name for p in archive.parent.iterdir()) == before
    export = cli(["export", "--no-sync", *where, "--format", "jsonl"])
    assert export.code == 0, export.stderr
    assert sorted(p.name for p in archive.parent.iterdir()) == before


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self, on_sleep=None) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.on_sleep = on_sleep

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        if self.on_sleep is not None:
            self.on_sleep(len(self.slept))

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def held(tmp_path: Path):
    """A new database file that another program holds with an exclusive lock."""
    import sqlite3

    path = tmp_path / "busy.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("CREATE TABLE other_program (x)")
    yield path, holder
    holder.close()


def test_a_busy_archive_is_waited_for_a_bounded_time_then_refused(held) -> None:
    from login_audit.archive.sqlite import OPEN_WAIT, open_sqlite
    from login_audit.errors import ArchiveBusyError

    path, _ = held
    clock = FakeClock()
    with pytest.raises(ArchiveBusyError) as info:
        open_sqlite(path, sleep=clock.sleep, clock=clock.monotonic)
    assert OPEN_WAIT <= sum(clock.slept) <= OPEN_WAIT + max(clock.slept)
    assert info.value.exit_code == 4
    message = str(info.value)
    assert f"the archive {path} is locked by another program" in message
    assert f"for {OPEN_WAIT:g} s" in message and "run again" in message


def test_a_busy_archive_opens_once_the_other_program_lets_go(held) -> None:
    from login_audit.archive.sqlite import open_sqlite

    path, holder = held
    clock = FakeClock(on_sleep=lambda n: holder.execute("ROLLBACK") if n == 3 else None)
    archive = open_sqlite(path, sleep=clock.sleep, clock=clock.monotonic)
    try:
        assert archive.info() == []
    finally:
        archive.close()
    assert len(clock.slept) == 3


def test_a_hard_link_to_the_archive_is_refused(cli, synced, tmp_path) -> None:
    """The tenant locks sit beside the file's path: a second name would get round them."""
    sim, archive, _ = synced
    holder = open_archive(str(archive))  # a run through the first name
    link = tmp_path / "hard.sqlite3"
    os.link(archive, link)
    before = sim.stats.requests
    result = sync_while_locked(cli, sim, holder, link)
    assert result.code == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert f"the archive {link} has 2 hard links" in line and "symbolic link" in line
    assert sim.stats.requests == before


def test_an_archive_path_that_is_a_folder_is_said_as_such(cli, tmp_path) -> None:
    result = cli(["sync", "--base-url", "http://127.0.0.1:9", "--archive", str(tmp_path)])
    assert result.code == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"the archive {tmp_path} is a folder" in line and "archive.sqlite3" in line
    assert "hard link" not in line


@pytest.mark.parametrize(
    "spec",
    ["postgresql:/la:hunter2@db.example/audit", "postgres:la:hunter2@db.example/audit"],
)
def test_a_postgresql_url_without_its_slashes_is_refused_without_its_password(
    cli, tmp_path, monkeypatch, spec
) -> None:
    """Not a path whose folder is missing: the message would show the password."""
    monkeypatch.chdir(tmp_path)
    result = cli(["sync", "--base-url", "http://127.0.0.1:9", "--archive", spec])
    assert result.code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "://" in line and "hunter2" not in line, line
    assert list(tmp_path.iterdir()) == []
