"""Failures that used to end as "unexpected error" (exit 1): each is expected, said, coded."""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from login_audit.config import HttpSettings, Secret
from login_audit.errors import EXIT_INCOMPLETE, ProtocolError, RetryLaterError
from login_audit.http import BearerAuth, HttpClient
from login_audit.platforms.pagination import MAX_LINK, NextLinkPager
from login_audit.simulator import FaultConfig, Tenant, build_tenant
from tests.conftest import REPO

BASE = "https://api.example"
FAST = ["--backoff-base", "0.01", "--max-attempts", "2"]
#: A shell without job control starts background commands with SIGINT ignored, and a child
#: inherits that: runs are started as a terminal's foreground command would be.
AS_IN_A_TERMINAL = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
    "sys.argv[0] = 'login-audit'; runpy.run_module('login_audit', run_name='__main__')"
)


def client(handler) -> HttpClient:
    settings = HttpSettings(max_attempts=2, backoff_base=0)
    return HttpClient(
        BearerAuth(Secret("a-token-value-0123456789")),
        settings,
        transport=httpx.MockTransport(handler),
        sleep=lambda s: None,
    )


def test_json_nested_too_deep_is_an_unusable_page() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"[" * 200_000 + b"]" * 200_000)

    with client(handler) as http, pytest.raises(RetryLaterError, match="nested too deep"):
        http.get_json(f"{BASE}/v3.0/iam/accounts")


@pytest.mark.parametrize(
    "link",
    [
        f"{BASE}/v3.0/iam/accounts?skipToken=" + "a" * MAX_LINK,
        f"{BASE}/v3.0/iam/accounts?skipToken=abc\r\nX-Injected: 1",
    ],
    ids=["over 64 kB", "CR/LF"],
)
def test_a_next_link_too_long_or_with_control_characters_is_refused(link: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": [], "nextLink": link})

    with client(handler) as http:
        pager = NextLinkPager(http, f"{BASE}/v3.0/iam/accounts", BASE)
        with pytest.raises(ProtocolError, match="refusing to follow it") as info:
            list(pager.pages())
    assert info.value.exit_code == EXIT_INCOMPLETE


def test_a_malformed_url_from_anywhere_is_a_protocol_error() -> None:
    with (
        client(lambda r: httpx.Response(200, json={})) as http,
        pytest.raises(ProtocolError, match="cannot be requested"),
    ):
        http.get_json(f"{BASE}/v3.0/x?" + "a" * 70_000)


@pytest.fixture
def synced(cli, start_sim, tmp_path: Path):
    """An archive holding one synced tenant, and the arguments that name that tenant."""
    tenant: Tenant = build_tenant(seed=5, accounts=120)
    sim = start_sim(tenant)
    archive = tmp_path / "archive.sqlite3"
    where = ["--base-url", sim.base_url, "--archive", str(archive)]
    assert cli(["sync", *where, *FAST], {"TMV1_TOKEN": sim.token}).code == 0
    return sim, archive, where


def corrupt(path: Path) -> None:
    """Overwrite a few pages in the middle of a SQLite file, as a failing disk would."""
    data = bytearray(path.read_bytes())
    page = 4096
    for number in range(len(data) // page // 2, len(data) // page // 2 + 3):
        data[number * page : (number + 1) * page] = b"\xde\xad" * (page // 2)
    path.write_bytes(bytes(data))


def test_a_damaged_sqlite_archive_is_detected_by_every_command(cli, synced, tmp_path) -> None:
    sim, archive, where = synced
    corrupt(archive)
    env = {"TMV1_TOKEN": sim.token}
    for args in (
        ["archive", "info", "--archive", str(archive)],
        ["export", "--no-sync", *where, "-o", str(tmp_path / "out.jsonl")],
        ["sync", *where, *FAST],
        ["audit", *where, "--output-dir", str(tmp_path / "reports"), *FAST],
        ["archive", "prune", "--before", "2000-01-01", "--yes", "--archive", str(archive)],
    ):
        result = cli(args, env)
        assert result.code == 2, (args, result.stderr)
        line = result.stderr.strip().splitlines()[-1]
        assert f"the archive {archive} is damaged" in line, line
        assert "PRAGMA integrity_check" in line and "move it aside" in line
        assert "unexpected" not in result.stderr
    doctor = cli(["doctor", *where, *FAST], env)
    assert doctor.code == 2
    assert "FAIL  archive readable: the archive" in doctor.stdout and "damaged" in doctor.stdout
    assert "ok    visionone" in doctor.stdout  # the other checks still ran and printed


@pytest.mark.parametrize("when", ["while syncing", "while creating the archive"])
def test_the_file_size_limit_is_a_local_problem(cli, start_sim, tmp_path: Path, when) -> None:
    import resource

    from login_audit.archive import open_archive

    sim = start_sim(build_tenant(seed=5, accounts=120))
    archive = tmp_path / "a.sqlite3"
    if when == "while syncing":
        # Room for the empty archive and its migrations, not for the sync's records.
        open_archive(str(archive)).close()
        limit = archive.stat().st_size + 64 * 1024
    else:
        limit = 16 * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        result = cli(
            ["sync", "--base-url", sim.base_url, "--archive", str(archive), *FAST],
            {"TMV1_TOKEN": sim.token},
        )
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert result.code == 2, result.stderr
    assert "file-size limit (ulimit -f)" in result.stderr
    assert "unexpected" not in result.stderr
    assert "no other program holds it" not in result.stderr


def test_a_lost_postgresql_connection_is_said(cli, postgres_url, tmp_path: Path) -> None:
    if postgres_url is None:
        pytest.skip("no PostgreSQL server")
    import psycopg

    from login_audit.archive import archive_failure, open_archive

    archive = open_archive(postgres_url)
    try:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            pid = archive.conn.info.backend_pid  # type: ignore[attr-defined]
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError) as info:
            archive.info()
    finally:
        archive.close()
    failure = archive_failure(info.value, archive.location)
    assert failure is not None and failure.exit_code == 2
    assert str(failure).startswith(f"lost the connection to the archive {archive.location}")


def test_a_simulator_port_in_use_is_said(cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli(["simulate", "--port", str(port)])
    assert result.code == 2
    assert f"cannot listen on 127.0.0.1 port {port}" in result.stderr and "--port" in result.stderr


def test_export_into_a_closed_pipe_exits_quietly(synced, process_env) -> None:
    """A real process: the pipe and the signal semantics are the point."""
    _, _, where = synced
    proc = subprocess.Popen(
        [sys.executable, "-m", "login_audit", "export", "--no-sync", *where, "--format", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=process_env(),
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.read(100)  # what `head -c 100` reads
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert first and err == ""


def test_doctor_honours_max_attempts_and_does_not_blame_the_region_for_a_502(
    cli, start_sim, tmp_path: Path
) -> None:
    tenant = build_tenant(seed=5, accounts=30)
    faults = FaultConfig(rate=1.0, kinds=("502",), paths=("/v3.0/iam/accounts",), limit=2)
    sim = start_sim(tenant, faults=faults)
    base = ["doctor", "--base-url", sim.base_url, "--archive", str(tmp_path / "a.sqlite3")]
    failed = cli([*base, "--max-attempts", "1"], {"TMV1_TOKEN": sim.token})
    assert failed.code == 2
    line = next(ln for ln in failed.stdout.splitlines() if "accounts readable" in ln)
    assert "HTTP 502" in line and "try again later" in line and "--region" not in line
    # The second 502 is the last one: three attempts ride it out.
    passed = cli([*base, "--max-attempts", "3"], {"TMV1_TOKEN": sim.token})
    assert passed.code == 0, passed.stdout
    assert sim.stats.by_path["/v3.0/iam/accounts"] == 3
    assert sim.stats.faults["502"] == 2


def test_export_refuses_to_overwrite_a_file_without_force(cli, synced, tmp_path: Path) -> None:
    _, _, where = synced
    out = tmp_path / "audit.jsonl"
    out.write_text("precious\n")
    refused = cli(["export", "--no-sync", *where, "-o", str(out)])
    assert refused.code == 2 and "already exists; add --force" in refused.stderr
    assert out.read_text() == "precious\n"
    forced = cli(["export", "--no-sync", *where, "-o", str(out), "--force"])
    assert forced.code == 0, forced.stderr
    assert out.read_text() != "precious\n" and json.loads(out.read_text().splitlines()[0])


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--since", "2026-06-01", "--until", "2026-05-01"], "is not before --until"),
        (["-o", "audit.xlsx"], "cannot tell the format of audit.xlsx from its suffix .xlsx"),
    ],
)
def test_export_refuses_what_cannot_be_meant(cli, synced, tmp_path, monkeypatch, extra, needle):
    _, _, where = synced
    monkeypatch.chdir(tmp_path)
    result = cli(["export", "--no-sync", *where, *extra])
    assert result.code == 2 and needle in result.stderr, result.stderr
    assert not (tmp_path / "audit.xlsx").exists()
    assert cli(["export", "--no-sync", *where, "-o", "audit.xlsx", "--format", "csv"]).code == 0


def test_ctrl_c_during_a_run_exits_130(start_sim, process_env, tmp_path: Path) -> None:
    """A real process and a real SIGINT: the signal is the point.

    The simulator sends the signal when the run's second request arrives, before answering
    it, so the run is always caught in the middle, however fast the machine.
    """
    import signal

    sim = start_sim(build_tenant(seed=5, accounts=1500))
    proc = subprocess.Popen(
        [sys.executable, "-c", AS_IN_A_TERMINAL, "audit", "--base-url", sim.base_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=process_env(TMV1_TOKEN=sim.token),
        cwd=tmp_path,
    )
    seen = itertools.count(1)
    sim.on_request = lambda path: proc.send_signal(signal.SIGINT) if next(seen) == 2 else None
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"login-audit: error: interrupted" in err and b"Traceback" not in err


def test_ctrl_c_stops_the_simulator_with_130(process_env, tmp_path: Path) -> None:
    """A real process and a real SIGINT: 'simulate' ends as every other command does."""
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-c", AS_IN_A_TERMINAL, "simulate", "--port", "0", "--accounts", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=process_env(),
        cwd=tmp_path,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # serving once it says how to stop it
        if line.startswith(b"Press Ctrl-C"):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"login-audit: error: interrupted" in err and b"Traceback" not in err
