"""Shared fixtures: simulated tenants served over loopback HTTP, and a CLI runner."""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import settings

from login_audit.archive import open_archive
from login_audit.archive.sql import SqlArchive
from login_audit.simulator import FaultConfig, Simulator, Tenant, build_tenant
from tests.postgres import postgres_server

REPO = Path(__file__).resolve().parent.parent
_NAMED = "LOGIN_AUDIT_TEST_POSTGRES"
_SERVER = pytest.StashKey[ExitStack]()

# A property test is judged by what it finds, not by how fast a shared machine runs an
# example; and the same examples every run, so a red run can be run again and stays red.
settings.register_profile("project", deadline=None, derandomize=True, database=None)
settings.load_profile("project")


@pytest.fixture(scope="session")
def tenant() -> Tenant:
    """A tenant of 400 accounts with every hard case, shared read-only by the tests."""
    return build_tenant(seed=11, accounts=400)


def pytest_configure(config: pytest.Config) -> None:
    """With several workers, start one PostgreSQL server for all of them.

    Each worker would otherwise make and start its own (seconds of ``initdb`` each); the
    workers inherit the server's URL from the environment, and create their own
    databases in it, named after their process.
    """
    workers = getattr(config.option, "numprocesses", None)
    if not workers or hasattr(config, "workerinput") or os.environ.get(_NAMED):
        return
    stack = ExitStack()
    url = stack.enter_context(postgres_server())
    if url is None:
        stack.close()
        return
    os.environ[_NAMED] = url
    config.stash[_SERVER] = stack


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the server :func:`pytest_configure` started, if it did."""
    stack = config.stash.get(_SERVER, None)
    if stack is not None:
        os.environ.pop(_NAMED, None)
        stack.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A PostgreSQL server for the whole session (None when none can be had)."""
    with postgres_server() as url:
        yield url


_database_counter = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty archive of each backend: a SQLite path, or a fresh PostgreSQL database.

    PostgreSQL tests are skipped only outside CI when no server can be started; in CI
    (``CI=true``) a missing server is a failure.
    """
    if request.param == "sqlite":
        return str(tmp_path / "archive.sqlite3")
    postgres_url = request.getfixturevalue("postgres_url")
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


class CliResult(NamedTuple):
    """What a CLI run left behind (also unpacks as ``code, stdout, stderr``)."""

    code: int
    stdout: str
    stderr: str


#: Prefixes of the variables a CLI run never inherits from the shell that runs the tests.
_CLEARED = ("TMV1_", "LOGIN_AUDIT_", "C1_", "XDG_")


@pytest.fixture(autouse=True)
def _private_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The user state folder (the lock of ``apply``) of library calls is the test's own."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))


@pytest.fixture(autouse=True)
def _signals_left_as_found() -> Iterator[None]:
    """No test leaves a signal handler of its own behind (nor the CLI's interrupt handling
    half-installed): the next test in the same worker would see Ctrl-C ignored or held."""
    import signal

    from login_audit import interrupts

    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGALRM)
    before = [signal.getsignal(s) for s in watched]
    yield
    assert [signal.getsignal(s) for s in watched] == before
    assert not interrupts._delivery.installed and not interrupts._delivery.holding
    assert interrupts._delivery.pending is None


@pytest.fixture
def process_env(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """The environment of a real CLI process: no inherited login-audit or vendor settings.

    The user data and config directories point into ``tmp_path`` (one home per call), so
    the default archive of one run never leaks into another, nor into the real home, and
    pytest removes them with the test's other files.
    """
    homes = iter(range(1, 1_000_000))

    def make(**extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_CLEARED) and k != "COLUMNS"}
        home = tmp_path / f"home-{next(homes)}"
        env["XDG_DATA_HOME"] = str(home / "data")
        env["XDG_CONFIG_HOME"] = str(home / "config")
        env["XDG_STATE_HOME"] = str(home / "state")
        env.update(extra)
        return env

    return make


def truth_rows(tenant: Tenant) -> set[tuple[str, str, str]]:
    """The cleanup CSV rows the default policy must produce for ``tenant``."""
    return {(r["UserId"], r["RoleName"], "Remove") for r in tenant.truth()["remove"]}


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Callable[..., CliResult]:
    """Run ``login-audit ARGS`` in this process through ``main``, as the console script does.

    Each call sees an environment cleared of login-audit and vendor settings, with ``env``
    added, user directories inside ``tmp_path``, and ``stdin`` (if given) as its standard
    input; nothing of one call's environment is left for the next.
    """
    from login_audit.cli import main

    def run(
        args: Sequence[str], env: Mapping[str, str] | None = None, *, stdin: str | None = None
    ) -> CliResult:
        with monkeypatch.context() as m:
            for name in list(os.environ):
                if name.startswith(_CLEARED) or name == "COLUMNS":
                    m.delenv(name)
            m.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
            m.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
            m.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
            for name, value in (env or {}).items():
                m.setenv(name, value)
            if stdin is not None:
                m.setattr(sys, "stdin", io.StringIO(stdin))
            capsys.readouterr()
            try:
                time.tzset()  # a TZ in ``env`` applies to this run as it would to a process
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            finally:
                out, err = capsys.readouterr()
        time.tzset()
        return CliResult(code, out, err)

    return run
