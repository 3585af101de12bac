"""Shared fixtures: simulated tenants served over loopback HTTP, and a CLI runner."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from login_audit.archive import open_archive
from login_audit.archive.sql import SqlArchive
from login_audit.simulator import FaultConfig, Simulator, Tenant, build_tenant
from tests.postgres import postgres_server

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tenant() -> Tenant:
    """A tenant of 400 accounts with every hard case, shared read-only by the tests."""
    return build_tenant(seed=11, accounts=400)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A PostgreSQL server for the whole session (None when none can be had)."""
    with postgres_server() as url:
        yield url


_database_counter = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request, tmp_path: Path, postgres_url: str | None) -> str:
    """An empty archive of each backend: a SQLite path, or a fresh PostgreSQL database.

    PostgreSQL tests are skipped only outside CI when no server can be started; in CI
    (``CI=true``) a missing server is a failure.
    """
    if request.param == "sqlite":
        return str(tmp_path / "archive.sqlite3")
    if postgres_url is None:
        if os.environ.get("CI"):
            pytest.fail("no PostgreSQL server could be started for the archive tests")
        pytest.skip("no PostgreSQL server binaries (run scripts/ensure-postgres.sh)")
    import psycopg

    name = f"la_test_{os.getpid()}_{next(_database_counter)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return postgres_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def archive(archive_url: str) -> Iterator[SqlArchive]:
    """An opened empty archive of each backend."""
    store = open_archive(archive_url)
    assert isinstance(store, SqlArchive)
    yield store
    store.close()


@pytest.fixture
def start_sim() -> Iterator[Callable[..., Simulator]]:
    """Start simulators on loopback; all are stopped at the end of the test."""
    running: list[Simulator] = []

    def start(tenant: Tenant, **kwargs: Any) -> Simulator:
        faults = kwargs.pop("faults", None)
        if isinstance(faults, float):
            faults = FaultConfig(rate=faults, seed=kwargs.pop("fault_seed", 1))
        sim = Simulator(tenant, faults=faults, **kwargs).start()
        running.append(sim)
        return sim

    yield start
    for sim in running:
        sim.stop()


@dataclass
class CliResult:
    """What a CLI run left behind."""

    code: int
    stdout: str
    stderr: str


@functools.cache
def _homes() -> str:
    """One folder for every run's fake home, removed when the test session ends."""
    folder = tempfile.mkdtemp(prefix="login-audit-test-homes-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI run: no inherited login-audit or vendor settings.

    The user data and config directories point to a fresh temporary directory, so the
    default archive of one run never leaks into another, nor into the real home.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TMV1_", "LOGIN_AUDIT_", "C1_", "XDG_")) and k != "COLUMNS"
    }
    home = tempfile.mkdtemp(prefix="home-", dir=_homes())
    env["XDG_DATA_HOME"] = os.path.join(home, "data")
    env["XDG_CONFIG_HOME"] = os.path.join(home, "config")
    env.update(extra)
    return env


def run_cli(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    stdin: str | None = None,
    timeout: float = 120,
) -> CliResult:
    """Run ``python -m login_audit ARGS`` as a user would, and capture everything."""
    proc = subprocess.run(
        [sys.executable, "-m", "login_audit", *args],
        env=env if env is not None else clean_env(),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def truth_rows(tenant: Tenant) -> set[tuple[str, str, str]]:
    """The cleanup CSV rows the default policy must produce for ``tenant``."""
    return {(r["UserId"], r["RoleName"], "Remove") for r in tenant.truth()["remove"]}


_CLEARED = ("TMV1_", "LOGIN_AUDIT_", "C1_", "XDG_")


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Callable[..., CliResult]:
    """Run ``login-audit ARGS`` in this process through ``main``, as the console script does.

    The environment is cleared of login-audit and vendor settings (as :func:`clean_env`)
    for the duration of each call, with ``env`` added; user directories point into
    ``tmp_path``.
    """
    from login_audit.cli import main

    def run(args: list[str], env: dict[str, str] | None = None) -> CliResult:
        with monkeypatch.context() as m:
            for name in list(os.environ):
                if name.startswith(_CLEARED) or name == "COLUMNS":
                    m.delenv(name)
            m.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
            m.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
            for name, value in (env or {}).items():
                m.setenv(name, value)
            capsys.readouterr()
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run
