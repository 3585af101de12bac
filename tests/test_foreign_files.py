"""Files that are not ours are refused before anything touches them: no chmod, no write."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from login_audit.simulator import build_tenant

FAST = ["--backoff-base", "0.01", "--max-attempts", "2"]


@pytest.fixture
def where(start_sim):
    """A running simulator and the commands that open an archive, with their options."""
    sim = start_sim(build_tenant(seed=5, accounts=20))
    base = ["--base-url", sim.base_url, *FAST]
    commands = {
        "archive info": ["archive", "info"],
        "archive prune": ["archive", "prune", "--before", "2000-01-01", "--yes"],
        "export": ["export", "--no-sync", "--base-url", sim.base_url, "-o", "-"],
        "sync": ["sync", *base],
        "audit": ["audit", *base, "--output-dir", "reports"],
        "watch": ["watch", *base, "--jsonl", "signals.jsonl"],
        "doctor": ["doctor", *base],
    }
    return sim, commands


def shared_text(path: Path) -> Path:
    path.write_text("a shopping list, not an archive\n")
    path.chmod(0o644)
    return path


def other_program_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE recipes (name TEXT)")
    conn.execute("INSERT INTO recipes VALUES ('bread')")
    conn.commit()
    conn.close()
    path.chmod(0o644)
    return path


def snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry of ``folder``: its mode, and its bytes when it is a regular file."""
    seen = {}
    for entry in sorted(folder.iterdir()):
        info = entry.lstat()
        data = entry.read_bytes() if stat.S_ISREG(info.st_mode) else b""
        seen[entry.name] = (info.st_mode, data)
    return seen


@pytest.mark.parametrize(
    "command", ["archive info", "archive prune", "export", "sync", "audit", "watch", "doctor"]
)
@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (shared_text, "is not a usable SQLite database"),
        (other_program_db, "is a SQLite database of another program"),
        (lambda p: (os.mkfifo(p, 0o644), p)[1], "is not a regular file"),
        (lambda p: (p.mkdir(mode=0o755), p)[1], "is a folder"),
    ],
    ids=["text file", "other program's database", "fifo", "folder"],
)
def test_a_file_that_is_not_an_archive_is_refused_untouched(
    cli, where, tmp_path, monkeypatch, command, make, needle
) -> None:
    sim, commands = where
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    target = make(store / "thing")
    before = snapshot(store)
    result = cli([*commands[command], "--archive", str(target)], {"TMV1_TOKEN": sim.token})
    assert result.code == 2, result.stderr
    said = result.stdout if command == "doctor" else result.stderr  # doctor's checks: stdout
    line = [ln for ln in said.splitlines() if str(target) in ln][-1]
    assert "can be read by other users" not in result.stderr  # not ours to advise on
    assert needle in line and "--archive" in line, said
    assert "now 0600" not in result.stderr
    assert snapshot(store) == before  # not chmodded, nothing written into or beside it
    assert not (tmp_path / "reports").exists()


def test_a_device_is_refused_without_being_opened(cli, tmp_path, monkeypatch) -> None:
    """A character device stands for /dev/null: its mode must not change, and no -journal
    may appear beside it. The real /dev/null is not used, and opening is watched."""
    device = tmp_path / "null"
    device.touch()
    device.chmod(0o666)
    real_stat = os.stat

    def as_a_device(path, *args, **kwargs):
        info = real_stat(path, *args, **kwargs)
        if os.fspath(path) == str(device):
            mode = stat.S_IFCHR | 0o666
            return os.stat_result((mode, *tuple(info)[1:]))
        return info

    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(os, "stat", as_a_device)
    monkeypatch.setattr(os, "lstat", as_a_device)
    monkeypatch.setattr(
        os, "open", lambda p, *a, **k: (opened.append(os.fspath(p)), real_open(p, *a, **k))[1]
    )
    result = cli(["archive", "info", "--archive", str(device)])
    sync = cli(
        ["sync", "--archive", str(device), "--base-url", "http://127.0.0.1:9"],
        {"TMV1_TOKEN": "x" * 20},
    )
    monkeypatch.undo()
    for run in (result, sync):
        assert run.code == 2 and "is not a regular file" in run.stderr, run.stderr
    assert str(device) not in opened
    assert stat.S_IMODE(device.stat().st_mode) == 0o666
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_an_empty_file_is_adopted_and_made_private(cli, start_sim, tmp_path) -> None:
    sim = start_sim(build_tenant(seed=5, accounts=20))
    archive = tmp_path / "empty.sqlite3"
    archive.touch()
    archive.chmod(0o644)
    result = cli(
        ["sync", "--base-url", sim.base_url, "--archive", str(archive), *FAST],
        {"TMV1_TOKEN": sim.token},
    )
    assert result.code == 0, result.stderr
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_an_empty_file_of_another_user_is_not_adopted(cli, start_sim, tmp_path) -> None:
    """Run as root, the archive would fill a file its owner controls (and reads) with every
    account's logon history; left untouched, with the way out named."""
    sim = start_sim(build_tenant(seed=5, accounts=20))
    archive = tmp_path / "theirs.sqlite3"
    archive.touch()
    archive.chmod(0o644)
    os.chown(archive, 4321, 4321)
    result = cli(
        ["sync", "--base-url", sim.base_url, "--archive", str(archive), *FAST],
        {"TMV1_TOKEN": sim.token},
    )
    assert result.code == 2, result.stderr
    assert "empty file of another user" in result.stderr and "--archive" in result.stderr
    assert archive.stat().st_size == 0 and archive.stat().st_uid == 4321
    assert stat.S_IMODE(archive.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.sqlite3"]


def test_our_own_shared_archive_is_still_made_private(cli, start_sim, tmp_path) -> None:
    sim = start_sim(build_tenant(seed=5, accounts=20))
    archive = tmp_path / "a.sqlite3"
    where = ["--base-url", sim.base_url, "--archive", str(archive), *FAST]
    assert cli(["sync", *where], {"TMV1_TOKEN": sim.token}).code == 0
    archive.chmod(0o644)
    again = cli(["sync", *where], {"TMV1_TOKEN": sim.token})
    assert again.code == 0, again.stderr
    assert "it is now 0600" in again.stderr
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_log_file_that_is_not_a_regular_file_is_refused_untouched(cli, tmp_path, kind) -> None:
    target = tmp_path / "log"
    if kind == "fifo":
        os.mkfifo(target, 0o644)
    else:
        target.mkdir(mode=0o755)
    target.chmod(0o644 if kind == "fifo" else 0o755)
    before = snapshot(tmp_path)
    args = ["sync", "--base-url", "http://127.0.0.1:9", "--archive", str(tmp_path / "a.sqlite3")]
    result = cli([*args, "--log-file", str(target)], {"TMV1_TOKEN": "x" * 20})
    assert result.code == 2, result.stderr
    said = "not a regular file" if kind == "fifo" else "is a directory"
    assert "--log-file" in result.stderr and said in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_export_never_replaces_what_is_not_a_regular_file(cli, tmp_path, force) -> None:
    fifo = tmp_path / "out.jsonl"
    os.mkfifo(fifo, 0o644)
    fifo.chmod(0o644)
    before = snapshot(tmp_path)
    result = cli(["export", "--no-sync", "--archive", "x.sqlite3", "-o", str(fifo), *force])
    assert result.code == 2
    assert f"{fifo} is not a regular file" in result.stderr, result.stderr
    assert "-o -" in result.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["{t}.jsonl", "{t}", "out/{t}.csv"])
def test_export_never_echoes_an_output_name_that_looks_like_a_token(
    cli, tmp_path, monkeypatch, name
) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9" + "Abc123" * 6
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    output = name.format(t=token)
    result = cli(["export", "--no-sync", "--archive", "a.sqlite3", "-o", output])
    assert result.code == 2
    assert "looks like a token (not shown)" in result.stderr and "--output" in result.stderr
    assert token not in result.stderr + result.stdout and token[:24] not in result.stderr
    assert not (tmp_path / output).exists()


@pytest.mark.parametrize("companion", ["-wal", "-shm", "-journal"])
def test_a_link_planted_beside_the_archive_is_refused(cli, start_sim, tmp_path, companion) -> None:
    """SQLite would write its WAL through the link into the file it points to."""
    sim = start_sim(build_tenant(seed=5, accounts=20))
    archive = tmp_path / "a.sqlite3"
    where = ["--base-url", sim.base_url, "--archive", str(archive), *FAST]
    assert cli(["sync", *where], {"TMV1_TOKEN": sim.token}).code == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    Path(f"{archive}{companion}").symlink_to(victim)
    result = cli(["sync", *where], {"TMV1_TOKEN": sim.token})
    assert result.code == 2, result.stderr
    assert f"{archive}{companion}" in result.stderr and "remove it" in result.stderr
    assert victim.read_text() == "precious\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


def sqlite_bytes(path: Path) -> Path:
    """Another program's SQLite database, shared (0644)."""
    return other_program_db(path)


def text_without_newline(path: Path) -> Path:
    path.write_bytes(b"line one\nprecious no newline")
    path.chmod(0o644)
    return path


def json_document(path: Path) -> Path:
    """A pretty-printed JSON file: its last line is ``}``, not an object."""
    path.write_text('{\n  "keep": true\n}\n')
    path.chmod(0o644)
    return path


@pytest.mark.parametrize("option", ["--jsonl", "--ocsf"])
@pytest.mark.parametrize(
    "make",
    [sqlite_bytes, text_without_newline, shared_text, json_document],
    ids=["sqlite", "text without newline", "text", "json document"],
)
def test_a_signal_file_that_is_not_ours_is_refused_untouched(
    cli, start_sim, tmp_path, option, make
) -> None:
    sim = start_sim(build_tenant(seed=5, accounts=20))
    store = tmp_path / "store"
    store.mkdir()
    target = make(store / "o.db")
    before = snapshot(store)
    args = ["watch", "--base-url", sim.base_url, *FAST, "--archive", str(tmp_path / "w.sqlite3")]
    result = cli([*args, option, str(target)], {"TMV1_TOKEN": sim.token})
    assert result.code == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert f"{target} is not a signal file written by login-audit" in line
    assert f"give a new file name with {option}" in line
    assert snapshot(store) == before


def shared_sink(target: Path, text: str):
    """A signal file holding ``text``, readable by others, and its sink."""
    from login_audit.delivery import FileSink

    target.write_text(text)
    target.chmod(0o644)
    return FileSink(str(target))


def test_a_signal_file_turned_foreign_after_start_is_not_written(tmp_path) -> None:
    from login_audit.errors import ConfigError

    target = tmp_path / "s.jsonl"
    sink = shared_sink(target, '{"id": "a"}\n')
    other_program_db(tmp_path / "db")
    os.replace(tmp_path / "db", target)
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError, match="is not a signal file written by login-audit"):
        sink.deliver([{"id": "b"}], lambda ids: pytest.fail("confirmed"))
    assert snapshot(tmp_path) == before


def test_our_signal_file_is_appended_to_and_made_private(tmp_path) -> None:
    """Ours: its last whole line is a JSON object, even when a crash cut the next one."""
    from login_audit.delivery import FileSink

    target = tmp_path / "s.jsonl"
    shared_sink(target, '{"id": "a"}\n{"id": "b", "cut sh').deliver([{"id": "b"}], lambda ids: None)
    assert target.read_text() == '{"id": "a"}\n{"id": "b"}\n'
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    new = tmp_path / "new.jsonl"
    FileSink(str(new)).deliver([{"id": "c"}], lambda ids: None)
    assert stat.S_IMODE(new.stat().st_mode) == 0o600


def audit_with_log(cli, sim, tmp_path: Path, log: Path):
    args = ["audit", "--base-url", sim.base_url, *FAST, "--no-archive"]
    args += ["--output-dir", str(tmp_path / "reports"), "--log-file", str(log)]
    args += ["--log-level", "debug"]
    return cli(args, {"TMV1_TOKEN": sim.token})


@pytest.mark.parametrize("make", [sqlite_bytes, lambda p: (p.write_bytes(b"ab\x00cd"), p)[1]])
def test_a_binary_log_file_is_refused_untouched(cli, start_sim, tmp_path, make) -> None:
    sim = start_sim(build_tenant(seed=5, accounts=20))
    store = tmp_path / "store"
    store.mkdir()
    target = make(store / "o.db")
    target.chmod(0o644)
    before = snapshot(store)
    result = audit_with_log(cli, sim, tmp_path, target)
    assert result.code == 2, result.stderr
    assert "--log-file" in result.stderr and str(target) in result.stderr
    assert "holds binary data" in result.stderr and "name another file" in result.stderr
    assert snapshot(store) == before
    assert not (tmp_path / "reports").exists()


def test_a_shared_text_log_file_is_appended_to_not_chmodded(cli, start_sim, tmp_path) -> None:
    sim = start_sim(build_tenant(seed=5, accounts=20))
    log = text_without_newline(tmp_path / "shared.log")
    result = audit_with_log(cli, sim, tmp_path, log)
    assert result.code in (0, 1), result.stderr  # 1: stale accounts were found
    kept, _, added = log.read_text().partition("precious no newline\n")
    assert kept == "line one\n" and " login_audit" in added
    assert stat.S_IMODE(log.stat().st_mode) == 0o644
    warning = f"log file {log} can be read by other users; restrict it with: chmod 600 {log}"
    assert result.stderr.count(warning) == 1, result.stderr
    created = tmp_path / "new.log"
    again = audit_with_log(cli, sim, tmp_path, created)
    assert "can be read by other users" not in again.stderr
    assert stat.S_IMODE(created.stat().st_mode) == 0o600
