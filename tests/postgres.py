"""A throw-away PostgreSQL server for the archive tests.

Uses ``LOGIN_AUDIT_TEST_POSTGRES`` when set; otherwise starts Debian's server binaries
on 127.0.0.1 in a temporary directory (as the ``postgres`` user when run as root).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _start(prefix: list[str], bindir: str, data: str, root: str) -> int:
    """Start the server on a free port; return the port.

    A port found free can be taken by another program before the server binds it: then
    the start fails, and another port is tried.
    """
    for attempt in range(5):
        port = _free_port()
        options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
        started = subprocess.run(
            [
                *prefix,
                f"{bindir}/pg_ctl",
                "-D",
                data,
                "-o",
                options,
                "-l",
                os.path.join(root, "log"),
                "-w",
                "start",
            ],
            check=attempt == 4,
            capture_output=True,
            timeout=120,
        )
        if started.returncode == 0:
            return port
    raise AssertionError("unreachable")  # pragma: no cover - the last attempt raises


@contextmanager
def postgres_server() -> Iterator[str | None]:
    """Yield a server URL (database ``postgres``), or None when no server can be had."""
    named = os.environ.get("LOGIN_AUDIT_TEST_POSTGRES")
    if named:
        yield named
        return
    bindir = _bin_dir()
    if bindir is None:
        yield None
        return
    root = tempfile.mkdtemp(prefix="login-audit-pg-")
    data = os.path.join(root, "data")
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    run = {"check": True, "capture_output": True, "timeout": 120}
    subprocess.run(
        [*prefix, f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        **run,  # type: ignore[call-overload]
    )
    port = _start(prefix, bindir, data, root)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)
