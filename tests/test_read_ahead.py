"""Pages requested one ahead: a chain of linked pages waits on the vendor, not on us."""

from __future__ import annotations

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
