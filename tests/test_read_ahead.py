"""Pages requested one ahead: a chain of linked pages waits on the vendor, not on us."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import pytest

from login_audit.config import HttpSettings, Secret
from login_audit.errors import RetryLaterError
from login_audit.http import BearerAuth, HttpClient
from login_audit.platforms.pagination import read_ahead
from login_audit.platforms.visionone import VisionOne
from login_audit.simulator import build_tenant

WAIT = 10.0  # a bound for a thread that should answer at once; never reached when it works


class Source:
    """Pages 1..count, recording each one asked for; ``fail_after`` raises instead."""

    def __init__(self, count: int, fail_after: int | None = None) -> None:
        self.count = count
        self.fail_after = fail_after
        self.asked: list[int] = []
        self.asked_for = {n: threading.Event() for n in range(1, count + 2)}
        self.closed = threading.Event()

    def pages(self) -> Iterator[int]:
        try:
            for n in range(1, self.count + 1):
                self.asked.append(n)
                self.asked_for[n].set()
                if self.fail_after is not None and n > self.fail_after:
                    raise RetryLaterError("the vendor kept answering 503 (HTTP 503)")
                yield n
        finally:
            self.closed.set()


def test_the_next_page_is_asked_for_while_the_caller_handles_this_one() -> None:
    source = Source(5)
    pages = read_ahead(source.pages())
    assert next(pages) == 1
    assert source.asked == [1]  # nothing ahead of the first page: a probe costs nothing
    assert next(pages) == 2
    # The caller still holds page 2, and page 3 is on its way already.
    assert source.asked_for[3].wait(WAIT)
    assert list(pages) == [3, 4, 5]
    assert source.asked == [1, 2, 3, 4, 5]
    assert source.closed.wait(WAIT)


def test_a_caller_that_reads_one_page_costs_one_request() -> None:
    source = Source(5)
    pages = read_ahead(source.pages())
    assert next(pages) == 1
    pages.close()
    assert source.asked == [1] and source.closed.is_set()


def test_an_error_reaches_the_caller_after_the_pages_before_it() -> None:
    source = Source(6, fail_after=3)
    got = []
    with pytest.raises(RetryLaterError, match="503"):
        for page in read_ahead(source.pages()):
            got.append(page)
    assert got == [1, 2, 3]


def test_a_caller_that_stops_leaves_at_most_one_request_and_no_thread() -> None:
    source = Source(50)
    pages = read_ahead(source.pages())
    assert [next(pages), next(pages)] == [1, 2]
    assert source.asked_for[3].wait(WAIT)
    pages.close()
    assert source.closed.wait(WAIT)  # the worker handed its page over, saw the stop, ended
    assert len(source.asked) <= 4, source.asked
    workers = [t for t in threading.enumerate() if t.name == "read-ahead"]
    for worker in workers:
        worker.join(WAIT)
    assert not any(t.is_alive() for t in workers)


def test_an_empty_source_yields_nothing() -> None:
    assert list(read_ahead(iter([]))) == []


def test_the_account_list_asks_for_the_next_page_before_the_last_is_read(start_sim) -> None:
    """End to end: the vendor sees the request of page 3 while the caller still holds the
    accounts of page 2 (200 accounts a page)."""
    sim = start_sim(build_tenant(seed=43, accounts=1000))
    asked = []
    third = threading.Event()

    def count(path: str) -> None:
        if path == "/v3.0/iam/accounts":
            asked.append(path)
            if len(asked) == 3:
                third.set()

    sim.on_request = count
    http = HttpClient(BearerAuth(Secret(sim.token)), HttpSettings())
    accounts = VisionOne(http, sim.base_url, "sim").list_accounts()
    first_two = [next(accounts) for _ in range(201)]  # every account of page 1, one of page 2
    assert len({a.id for a in first_two}) == 201
    assert third.wait(WAIT)
    rest = list(accounts)
    assert len({a.id for a in first_two + rest}) == 1000
    assert len(asked) == 5  # read ahead, never more than the pages there are
    http.close()


def _new_workers(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "read-ahead" and t not in before]


def _all_end(workers: list[threading.Thread]) -> bool:
    for worker in workers:
        worker.join(WAIT)
    return not any(t.is_alive() for t in workers)


class Handled(Exception):
    """The caller's own failure while it handles a page (a full disk, say)."""


def test_a_caller_that_fails_while_the_next_page_waits_leaves_no_thread_behind() -> None:
    before = set(threading.enumerate())
    source = Source(50)
    with pytest.raises(Handled):
        for page in read_ahead(source.pages()):
            if page == 2:
                # Page 3 is read and waits in the handoff; page 4 is being asked for.
                assert source.asked_for[4].wait(WAIT)
                raise Handled
    assert source.closed.wait(WAIT)
    assert _all_end(_new_workers(before))
    assert source.asked == [1, 2, 3, 4]  # page 3 waited, page 4 was in flight: no more


def test_a_reader_dropped_without_close_ends_its_thread() -> None:
    before = set(threading.enumerate())
    source = Source(50)
    pages = read_ahead(source.pages())
    assert [next(pages), next(pages)] == [1, 2]
    assert source.asked_for[4].wait(WAIT)  # the worker holds page 4, waiting for room
    del pages  # no close(): the generator's finaliser must free the worker
    assert source.closed.wait(WAIT)
    assert _all_end(_new_workers(before))
    assert source.asked == [1, 2, 3, 4]


def test_an_error_at_the_moment_the_caller_stops_is_dropped_quietly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The caller has stopped: the error of the page it no longer wants is nobody's, and
    must not surface as a thread's traceback."""
    failures: list[object] = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    before = set(threading.enumerate())
    source = Source(10, fail_after=2)
    pages = read_ahead(source.pages())
    assert [next(pages), next(pages)] == [1, 2]
    assert source.asked_for[3].wait(WAIT)  # page 3 fails as the caller stops
    pages.close()
    assert source.closed.wait(WAIT)
    assert _all_end(_new_workers(before))
    assert failures == []


def test_an_interrupt_while_the_caller_waits_for_a_page_reaches_it_and_ends_the_thread() -> None:
    """Ctrl-C (or SIGTERM, which the CLI turns into the same) arrives while the main thread
    waits for the worker's page: the caller sees it, and the worker does not stay blocked."""
    before = set(threading.enumerate())
    main = threading.main_thread()
    assert threading.current_thread() is main

    waiting = threading.Event()

    class Interrupting(Source):
        def pages(self) -> Iterator[int]:
            for n in super().pages():
                if n == 4:
                    assert waiting.wait(WAIT)
                    signal.pthread_kill(main.ident or 0, signal.SIGINT)
                yield n

    source = Interrupting(50)
    pages = read_ahead(source.pages())
    assert [next(pages), next(pages)] == [1, 2]
    # As a terminal's foreground command: a suite run in the background inherits SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            waiting.set()  # from here on the caller waits for page 3, then page 4
            for _ in pages:
                pass
    finally:
        signal.signal(signal.SIGINT, previous)
    pages.close()  # the interrupt may land just before the caller entered the generator
    assert source.closed.wait(WAIT)
    assert _all_end(_new_workers(before))
    assert len(source.asked) < 50  # it stopped, not read the listing to its end
