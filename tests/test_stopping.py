"""An interrupted run stops its helper threads within a request.

Time slices, account listings, tenants of ``audit --all`` and pages read ahead run on
threads the process waits for before it exits. Before, a Ctrl-C under the rate limit left
them reading on (and waiting out the limit): an interrupted sync took a minute to end, and
went on storing pages. A client now stops waiting when it is cancelled or the command
line's handlers have seen the signal.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from login_audit import interrupts
from login_audit.config import HttpSettings, Secret
from login_audit.errors import Cancelled, Terminated
from login_audit.http import BearerAuth, HttpClient, cancel_all
from login_audit.simulator import Simulator, build_tenant
from login_audit.syncstate import SliceState
from tests.test_exits_and_signals import AS_IN_A_TERMINAL

#: A limit the test never waits out: one request, then an hour's wait.
ONE_AN_HOUR = HttpSettings(rate_limit=1, rate_window=3600.0, max_attempts=1)
WAIT = 30.0


def _waiting_request(client: HttpClient, url: str) -> tuple[threading.Thread, list[object]]:
    """A request on a thread of its own, blocked by the pacer; what it raised, once ended."""
    outcome: list[object] = []

    def run() -> None:
        try:
            client.request_json("GET", url)
        except BaseException as exc:  # what the thread ended with is the test's subject
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _blocked(client: HttpClient) -> bool:
    return client.pacer.waited > 0


def _until(condition: Callable[[], bool]) -> None:
    event = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("never happened")


@pytest.fixture
def sim(start_sim: Callable[..., Simulator]) -> Simulator:
    return start_sim(build_tenant(seed=3, accounts=5))


def test_a_cancelled_client_stops_waiting_for_the_rate_limit(sim: Simulator) -> None:
    url = f"{sim.base_url}/v3.0/iam/accounts"
    with HttpClient(BearerAuth(Secret(sim.token)), ONE_AN_HOUR) as client:
        client.request_json("GET", url)
        thread, outcome = _waiting_request(client, url)
        _until(lambda: _blocked(client))
        client.cancel()
        thread.join(WAIT)
        assert not thread.is_alive(), "the request still waits out the hour"
        assert [type(exc) for exc in outcome] == [Cancelled]
        with pytest.raises(Cancelled):
            client.request_json("GET", url)  # and sends nothing after
    assert sim.stats.requests == 1


def test_cancel_all_reaches_every_client_of_the_process(sim: Simulator) -> None:
    url = f"{sim.base_url}/v3.0/iam/accounts"
    auth = BearerAuth(Secret(sim.token))
    with HttpClient(auth, ONE_AN_HOUR) as one, HttpClient(auth, ONE_AN_HOUR) as two:
        one.request_json("GET", url)
        two.request_json("GET", url)
        waiting = [_waiting_request(one, url), _waiting_request(two, url)]
        _until(lambda: _blocked(one) and _blocked(two))
        cancel_all()
        for thread, outcome in waiting:
            thread.join(WAIT)
            assert not thread.is_alive() and [type(e) for e in outcome] == [Cancelled]
    with HttpClient(auth, HttpSettings()) as later:
        assert later.request_json("GET", url)  # a client made afterwards works


@pytest.mark.parametrize(
    ("signum", "stopped_by"), [("SIGINT", KeyboardInterrupt), ("SIGTERM", Terminated)]
)
def test_the_handlers_stop_every_client_the_moment_the_signal_comes(
    sim: Simulator, signum: str, stopped_by: type[KeyboardInterrupt]
) -> None:
    """No lock is taken in a signal handler: the clients read a flag it sets."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed from the main thread only")
    url = f"{sim.base_url}/v3.0/iam/accounts"
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with HttpClient(BearerAuth(Secret(sim.token)), ONE_AN_HOUR) as client:
            client.request_json("GET", url)
            thread, outcome = _waiting_request(client, url)
            _until(lambda: _blocked(client))
            with interrupts.handled():
                with pytest.raises(stopped_by):
                    signal.raise_signal(getattr(signal, signum))
                assert interrupts.stopping() is stopped_by
                thread.join(WAIT)
                assert not thread.is_alive() and [type(e) for e in outcome] == [Cancelled]
            assert interrupts.stopping() is None  # the next run in this process starts afresh
    finally:
        signal.signal(signal.SIGINT, previous)
    assert sim.stats.requests == 1


#: A limit that lets 15 requests through, then holds the next for ten minutes.
HELD_AFTER_15 = ["--rate-limit", "15", "--rate-window", "600"]


def _ctrl_c_at_request(
    sim: Simulator, args: list[str], env: dict[str, str], cwd: Path, nth: int = 15
) -> None:
    """Run ``login-audit ARGS`` as a real process, send SIGINT when the simulator sees its
    ``nth`` request, and check it ends at once as an interrupted run does."""
    proc = subprocess.Popen(
        [sys.executable, "-c", AS_IN_A_TERMINAL, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    seen = itertools.count(1)
    sim.on_request = lambda path: proc.send_signal(signal.SIGINT) if next(seen) == nth else None
    _, err = proc.communicate(timeout=40)
    assert proc.returncode == 130, err
    assert b"login-audit: error: interrupted" in err and b"Traceback" not in err


def test_ctrl_c_during_a_rate_limited_sync_ends_it_at_once(
    start_sim, process_env, tmp_path: Path
) -> None:
    """A real process and a real SIGINT, sent when the last request the limit allows (15 in
    ten minutes) arrives: the sync's slices are then held back by the pacer. The process
    used to wait out the ten minutes (and store the pages read meanwhile); it now ends at
    once, well within the test's timeout."""
    sim = start_sim(build_tenant(seed=4, accounts=2500), latency_ms=20)
    archive = tmp_path / "a.sqlite3"
    args = ["sync", "--base-url", sim.base_url, "--archive", str(archive), *HELD_AFTER_15]
    _ctrl_c_at_request(sim, args, process_env(TMV1_TOKEN=sim.token), tmp_path)
    assert not Path(f"{archive}-wal").exists()
    assert sim.stats.requests == 15, "the pacer let nothing more through"


def test_ctrl_c_during_audit_all_starts_no_further_tenant(
    start_sim, process_env, tmp_path: Path
) -> None:
    """A real process: six tenants audited four at a time, held back by a shared limit when
    SIGINT comes. The tenants not started never start and the running ones stop, instead
    of the run going on through every tenant."""
    sim = start_sim(build_tenant(seed=6, accounts=300), latency_ms=20)
    config = tmp_path / "config.toml"
    config.write_text(
        "".join(
            f'[[tenant]]\nname = "t{n}"\nbase_url = "{sim.base_url}"\ntoken_env = "TOKEN"\n'
            for n in range(6)
        )
    )
    out = tmp_path / "out"
    args = ["audit", "--all", "--config", str(config), "--output-dir", str(out)]
    _ctrl_c_at_request(
        sim, [*args, "--no-archive", *HELD_AFTER_15], process_env(TOKEN=sim.token), tmp_path
    )
    assert sim.stats.requests == 15
    assert not out.exists(), "the folder made for the reports that never came is gone"


def _stop_signals_blocked() -> bool:
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    return {signal.SIGINT, signal.SIGTERM} <= blocked


def test_the_threads_of_a_run_leave_ctrl_c_to_the_main_thread() -> None:
    """The kernel hands a signal to any thread that does not block it, and Python runs the
    handler only when the main thread runs again: a main thread waiting for the slices or
    the tenants was never told (an interrupted `audit --all` hung, one run in five). Every
    thread a run starts blocks the stop signals; the main thread keeps them."""
    from datetime import datetime, timezone

    from login_audit.models import RecordPage, TimeWindow
    from login_audit.platforms.pagination import read_ahead
    from login_audit.platforms.partitions import Partition, read_partitions
    from login_audit.sweep import Sweep

    seen: dict[str, bool] = {}

    def pages() -> Iterator[int]:
        yield 1
        seen["read ahead"] = _stop_signals_blocked()  # page 2 is made on the worker
        yield 2

    assert list(read_ahead(pages())) == [1, 2]

    class Source:
        supports_time_slices = True

        def record_pages(
            self, window: TimeWindow, *, logons_only: bool, resume_link: str | None = None
        ) -> Iterator[RecordPage]:
            if threading.current_thread() is not threading.main_thread():
                seen["time slice"] = _stop_signals_blocked()
            yield RecordPage((), None)

    day = TimeWindow(
        datetime(2026, 1, 1, tzinfo=timezone.utc), datetime(2026, 1, 2, tzinfo=timezone.utc)
    )
    states = [SliceState(day.start, day.end), SliceState(day.start, day.end)]
    Sweep(Source(), day, logons_only=True, states=states).run(lambda page, states: None)

    def lister(partition: Partition) -> Iterator[list[object]]:
        seen["account listing"] = _stop_signals_blocked()
        yield [{"id": "a"}]

    assert list(read_partitions((Partition(()),), lister)) == [{"id": "a"}]
    assert seen == {"read ahead": True, "time slice": True, "account listing": True}
    assert not _stop_signals_blocked(), "the main thread keeps them"


def test_an_interrupted_client_does_not_wait_for_its_connection_pool(sim: Simulator) -> None:
    """An interrupt raised inside the pool's own locking can leave its lock held: closing the
    pool then waited forever (a second Ctrl-C hung a run). An interrupted run leaves its
    connections to the end of the process."""
    client = HttpClient(BearerAuth(Secret(sim.token)), HttpSettings())
    client.request_json("GET", f"{sim.base_url}/v3.0/iam/accounts")

    def held_lock() -> None:
        raise AssertionError("closing waits for the pool's lock")

    pool_close = client._client.close
    client._client.close = held_lock  # type: ignore[method-assign]
    client.cancel()
    client.close()
    pool_close()


def test_a_signal_while_the_outcome_is_reported_is_only_recorded() -> None:
    """Once the run's last line is being written, a second Ctrl-C must not cut it short
    with a traceback; the console script then gives both signals their default action."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers are installed from the main thread only")
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with interrupts.handled(process=True):
            interrupts.finishing()
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGTERM)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_DFL
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_an_archive_interrupted_while_it_opens_is_closed(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C while the archive is being opened (its schema migrated) closes the connection
    there, rather than leaving it, and its -wal and -shm files, to the collector (a second
    Ctrl-C then ended the process first, and the files stayed)."""
    import sqlite3

    from login_audit.archive import open_archive, sqlite

    opened: list[sqlite3.Connection] = []

    def interrupted(conn: sqlite3.Connection, *args: object, **kwargs: object) -> None:
        opened.append(conn)
        raise KeyboardInterrupt

    monkeypatch.setattr(sqlite, "SqlArchive", interrupted)
    with pytest.raises(KeyboardInterrupt):
        open_archive(str(tmp_path / "a.sqlite3"))
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")
