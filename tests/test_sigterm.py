"""SIGTERM ends a run as Ctrl-C does (143), and no run leaves an empty folder behind."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from login_audit.simulator import build_tenant
from tests.test_exits_and_signals import AS_IN_A_TERMINAL

DEMO = ["--accounts", "20", "--faults", "0"]


def test_sigterm_during_an_audit_exits_143_with_one_json_document(
    start_sim, process_env, tmp_path: Path
) -> None:
    """A real process and a real SIGTERM, sent when the run's second request arrives."""
    sim = start_sim(build_tenant(seed=5, accounts=1500))
    archive = tmp_path / "store" / "a.sqlite3"
    archive.parent.mkdir()
    args = ["audit", "--json", "--base-url", sim.base_url, "--archive", str(archive)]
    proc = subprocess.Popen(
        [sys.executable, "-c", AS_IN_A_TERMINAL, *args, "--output-dir", "reports"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=process_env(TMV1_TOKEN=sim.token),
        cwd=tmp_path,
    )
    seen = itertools.count(1)
    sim.on_request = lambda path: proc.send_signal(signal.SIGTERM) if next(seen) == 2 else None
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert b"login-audit: error: terminated" in err and b"Traceback" not in err
    document = json.loads(out)  # one document, nothing else
    assert document["exitCode"] == 143 and document["complete"] is False
    left = {p.name for p in archive.parent.iterdir()}
    assert "a.sqlite3" in left and not {"a.sqlite3-wal", "a.sqlite3-shm"} & left, left
    assert not (tmp_path / "reports").exists()


def test_sigterm_during_the_demo_removes_its_scratch_folder(process_env, tmp_path: Path) -> None:
    """The demo is held, deterministically, where it moves its reports into the output
    folder (the test holds that folder's lock), and terminated there."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = tmp_path / "demo"
    out.mkdir()
    held = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", AS_IN_A_TERMINAL, "demo", *DEMO, "--output-dir", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=process_env(TMPDIR=str(scratch)),
            cwd=tmp_path,
        )
        deadline = time.monotonic() + 60
        while not any(out.glob(".login-audit-run-*/audit_report.json")):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)  # a process test: waits for the child to reach the lock
        assert list(scratch.iterdir())  # its scratch archive is there while it runs
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(held)
    assert proc.returncode == 143, err
    assert b"login-audit: error: terminated" in err and b"Traceback" not in err
    assert list(scratch.iterdir()) == []
    assert list(out.iterdir()) == []


def test_ctrl_c_during_the_demo_leaves_no_folder(cli, tmp_path, monkeypatch) -> None:
    from login_audit import service

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the audit runs

    monkeypatch.setattr(service, "audit_and_report", interrupted)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = tmp_path / "demo" / "reports"
    result = cli(["demo", "--accounts", "5", "--output-dir", str(out)])
    assert result.code == 130, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_failed_audit_all_leaves_no_empty_folder(cli, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "tenants.toml"
    config.write_text(
        '[[tenant]]\nname = "a"\nplatform = "visionone"\nbase_url = "http://127.0.0.1:9"\n'
        'token_env = "NO_SUCH_TOKEN"\n'
    )
    (tmp_path / "notes.txt").write_text("not an archive\n")
    args = ["audit", "--all", "--config", str(config), "--output-dir", "out"]
    result = cli([*args, "--archive", "notes.txt"])
    assert result.code == 2, result.stderr
    assert not (tmp_path / "out").exists()
