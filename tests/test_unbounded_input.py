"""Numbers and files a careless user gives: one line naming the option and the fix, exit 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

BASE = ["audit", "--base-url", "http://127.0.0.1:9", "--max-attempts", "1"]
TOKEN = {"TMV1_TOKEN": "a-token-that-is-never-used-0123"}

FLOAT_OPTIONS = [
    (["audit", "--base-url", "http://127.0.0.1:9"], "--timeout"),
    (["audit", "--base-url", "http://127.0.0.1:9"], "--rate-window"),
    (["audit", "--base-url", "http://127.0.0.1:9"], "--backoff-base"),
    (["watch", "--base-url", "http://127.0.0.1:9"], "--interval"),
    (["simulate", "--port", "0"], "--faults"),
    (["simulate", "--port", "0"], "--latency-ms"),
    (["simulate", "--port", "0"], "--rate-window"),
    (["simulate", "--port", "0"], "--time-scale"),
    (["demo"], "--faults"),
]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e308", "NaN"])
@pytest.mark.parametrize(("args", "option"), FLOAT_OPTIONS, ids=lambda x: str(x))
def test_every_float_option_refuses_what_is_not_a_usable_number(
    cli, tmp_path, monkeypatch, args, option, value
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli([*args, option, value], TOKEN)
    assert result.code == 2, (option, value, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and option in lines[0], result.stderr
    assert "unexpected" not in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999", "http://127.0.0.1:-1", "http://[::1"])
def test_a_base_url_with_an_impossible_port_is_said(cli, tmp_path, url) -> None:
    result = cli([*BASE[:1], "--base-url", url, "--output-dir", str(tmp_path / "r")], TOKEN)
    assert result.code == 2, result.stderr
    assert "--base-url" in result.stderr and "unexpected" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_simulate_truth_in_a_missing_folder_is_said(cli, tmp_path) -> None:
    truth = tmp_path / "no-such-folder" / "truth.json"
    result = cli(["simulate", "--port", "0", "--accounts", "3", "--truth", str(truth)])
    assert result.code == 2, result.stderr
    assert "--truth" in result.stderr and "unexpected" not in result.stderr
    assert not truth.parent.exists()


@pytest.mark.parametrize(
    ("option", "name"),
    [
        ("--identity-map", "map.csv"),
        ("--exclude-file", "exclude.txt"),
        ("--config", "tenants.toml"),
        ("--token-file", "token"),
    ],
)
def test_a_configuration_file_is_read_only_up_to_a_limit(cli, tmp_path, option, name) -> None:
    """A huge regular file stands for /dev/zero: the read stops at the limit, said."""
    big = tmp_path / name
    with big.open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)  # sparse: costs no disk
    args = [*BASE, "--output-dir", str(tmp_path / "r"), option, str(big)]
    if option == "--config":
        args = ["audit", "--all", "--config", str(big), "--output-dir", str(tmp_path / "r")]
    result = cli(args, TOKEN)
    assert result.code == 2, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "larger than" in line and "MiB" in line and str(big) in line, line
    assert not (tmp_path / "r").exists()


def test_a_configuration_file_from_an_endless_pipe_stops_at_the_limit(cli, tmp_path) -> None:
    """A FIFO fed without end by a thread stands for /dev/zero."""
    import threading

    fifo = tmp_path / "exclude.fifo"
    os.mkfifo(fifo)
    stop = threading.Event()

    def feed() -> None:
        try:
            with fifo.open("wb") as handle:
                while not stop.is_set():
                    handle.write(b"x" * 65536)
        except BrokenPipeError:
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    result = cli([*BASE, "--output-dir", str(tmp_path / "r"), "--exclude-file", str(fifo)], TOKEN)
    stop.set()
    feeder.join(timeout=30)
    assert not feeder.is_alive()
    assert result.code == 2 and "larger than" in result.stderr, result.stderr


def test_ordinary_configuration_files_are_still_read(cli, tmp_path: Path) -> None:
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("svc-*\n")
    result = cli([*BASE, "--output-dir", str(tmp_path / "r"), "--exclude-file", str(exclude)])
    assert "exclusion file" not in result.stderr


@pytest.mark.parametrize("name", ["", "   ", "\t", " prod"])
@pytest.mark.parametrize(
    "args",
    [
        ["sync", "--base-url", "http://127.0.0.1:9"],
        ["export", "--no-sync", "--base-url", "http://127.0.0.1:9"],
        ["archive", "prune", "--before", "2000-01-01"],
    ],
    ids=["sync", "export", "prune"],
)
def test_an_empty_or_padded_tenant_name_is_refused(cli, tmp_path, args, name) -> None:
    archive = tmp_path / "a.sqlite3"
    result = cli([*args, "--archive", str(archive), "--tenant", name], TOKEN)
    assert result.code == 2, result.stderr
    assert "--tenant" in result.stderr and "tenant name" in result.stderr, result.stderr
    assert not archive.exists()


def test_an_empty_tenant_name_from_the_environment_is_refused(cli, tmp_path) -> None:
    archive = tmp_path / "a.sqlite3"
    args = ["sync", "--base-url", "http://127.0.0.1:9", "--archive", str(archive)]
    result = cli(args, {**TOKEN, "LOGIN_AUDIT_TENANT": " "})
    assert result.code == 2 and "tenant name" in result.stderr, result.stderr


@pytest.mark.parametrize("command", [["simulate", "--port", "0"], ["demo", "--output-dir", "d"]])
def test_a_simulated_tenant_too_large_to_build_is_refused(
    cli, tmp_path, monkeypatch, command
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli([*command, "--accounts", "1000000000"])
    assert result.code == 2 and "--accounts" in result.stderr, result.stderr
    assert not (tmp_path / "d").exists()
