"""Progress is drawn on a terminal and absent otherwise."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from login_audit.simulator import build_tenant

pytestmark = pytest.mark.e2e


def test_progress_on_a_terminal_only(cli, process_env, start_sim, tmp_path: Path) -> None:
    sim = start_sim(build_tenant(seed=141, accounts=400), latency_ms=30)
    args = ["audit", "--base-url", sim.base_url, "--no-archive"]
    master, slave = pty.openpty()
    env = process_env(TMV1_TOKEN=sim.token, TERM="xterm", COLUMNS="100")
    proc = subprocess.Popen(
        [sys.executable, "-m", "login_audit", *args, "--output-dir", str(tmp_path / "tty")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=60)
    os.close(master)
    terminal = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert "reading accounts" in terminal or "reading logon events" in terminal
    piped = cli([*args, "--output-dir", str(tmp_path / "pipe")], env={"TMV1_TOKEN": sim.token})
    assert piped.code == 0 and "reading" not in piped.stderr
    quiet = cli(
        [*args, "--output-dir", str(tmp_path / "q"), "--quiet"], env={"TMV1_TOKEN": sim.token}
    )
    assert quiet.code == 0 and quiet.stderr == ""
