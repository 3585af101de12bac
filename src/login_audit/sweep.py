"""Reading a window of audit records as fast as the rate limit allows, without a gap.

A sweep first reads one page of the whole window, oldest first. That page tells how
dense the records are, hence how many pages the window holds. A window of more than a
few pages is then split into time slices read in parallel, each following its own page
links. The planner does not decide how fast: the shared pacer of the HTTP client keeps
all slices inside the vendor's limit, so under the limit more slices only change the
order of the requests, and far from it they divide the wait by the number of slices.
Each slice costs about half a page more (its last page is partly filled), so a slice
gets at least ``PAGES_PER_SLICE`` pages.

No page is trusted to be sorted: a record indexed late can sit on the first page with a
time far ahead of its neighbours. Slice boundaries, "done" and watermarks therefore come
only from the time windows the requests asked for, never from the times of the records
returned. The probe page is an estimate; when the window is split, the first slice reads
it again from the window's start (one request more), so whatever the order of the
records, every slice asks the vendor for every record of its own window.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol

from login_audit.errors import ProtocolError, RetryLaterError
from login_audit.models import RecordPage, TimeWindow
from login_audit.syncstate import SliceState

log = logging.getLogger(__name__)

#: The fewest pages worth a slice of their own. A slice costs about half a request (its
#: partly filled last page), so a window of 7 pages is read by 2 chains of 4 for about
#: one request more, and one of 24 pages or more by 8 chains for about four more.
PAGES_PER_SLICE = 3
MAX_SLICES = 8

#: Called, under the sweep's lock, with each page and the state of every slice after it.
Commit = Callable[[RecordPage, tuple[SliceState, ...]], None]


class PagedSource(Protocol):
    """What a sweep reads: pages of records of a time window."""

    supports_time_slices: bool

    def record_pages(
        self, window: TimeWindow, *, logons_only: bool, resume_link: str | None = None
    ) -> Iterator[RecordPage]:
        """Pages of ``window``, oldest first where the platform can order them."""
        ...


def plan_slices(window: TimeWindow, count: int) -> list[TimeWindow]:
    """Split ``window`` into ``count`` adjacent slices with whole-second boundaries.

    The API takes times without fractions, so inner boundaries fall on whole seconds;
    each slice ends exactly where the next begins and together they cover the window.
    """
    if count <= 1:
        return [window]
    step = (window.end - window.start) / count
    bounds = [window.start]
    for i in range(1, count):
        bound = (window.start + step * i).replace(microsecond=0)
        if bound > bounds[-1]:
            bounds.append(bound)
    bounds.append(window.end)
    return [TimeWindow(a, b) for a, b in itertools.pairwise(bounds) if a < b]


def _estimate_pages(window: TimeWindow, first: RecordPage) -> float:
    """How many pages ``window`` holds, judged from the first page's own span.

    The page's records are assumed to be spread like the rest of the window from their
    earliest time on (tenants often have no records in the oldest days). The latest tenth
    of the page is ignored, so one record out of order cannot shrink the estimate to
    nothing; an estimate only changes the number of slices, never what is read.
    """
    times = sorted(r.when for r in first.records if r.when is not None and r.when < window.end)
    if len(times) < 2:
        return 1.0
    earliest = max(times[0], window.start)
    gaps = max(1, (len(times) - 1) * 9 // 10)
    span = (times[gaps] - earliest).total_seconds()
    if span <= 0:
        return float("inf")
    records_per_second = gaps / span
    return (window.end - earliest).total_seconds() * records_per_second / len(first.records)


def slices_for(
    window: TimeWindow, first: RecordPage, max_slices: int, pages_per_slice: int = PAGES_PER_SLICE
) -> int:
    """How many slices ``window`` deserves, judged from its first page."""
    if first.next_link is None or max_slices <= 1:
        return 1
    estimated = _estimate_pages(window, first)
    if estimated == float("inf"):
        return max_slices
    return max(1, min(max_slices, int(estimated // pages_per_slice)))


def slice_windows(window: TimeWindow, first: RecordPage, count: int) -> list[TimeWindow]:
    """``count`` adjacent slices that cover ``window`` exactly, from its start to its end.

    Inner boundaries are spread over the part of the window that holds records (from the
    first page's earliest record on), so the slices carry similar loads; the first slice
    always begins at the window's start, whatever the records say.
    """
    times = [r.when for r in first.records if r.when is not None]
    anchor = min((t for t in times if window.start <= t < window.end), default=window.start)
    anchor = max(window.start, anchor.replace(microsecond=0))
    slices = plan_slices(TimeWindow(anchor, window.end), count)
    return [TimeWindow(window.start, slices[0].end), *slices[1:]]


class Sweep:
    """One window read by one or more slices; see the module's docstring."""

    def __init__(
        self,
        source: PagedSource,
        window: TimeWindow,
        *,
        logons_only: bool,
        max_slices: int = MAX_SLICES,
        states: list[SliceState] | None = None,
        pages_per_slice: int = PAGES_PER_SLICE,
    ) -> None:
        self.source = source
        self.window = window
        self.logons_only = logons_only
        self.max_slices = max_slices if source.supports_time_slices else 1
        self.states = states
        self.pages_per_slice = pages_per_slice
        self.lock = threading.Lock()
        self.problems: list[str] = []

    def run(self, commit: Commit) -> list[str]:
        """Read every page, handing each to ``commit``; return the failures (empty if none)."""
        if self.states is None:
            self._probe(commit)
        pending = [i for i, s in enumerate(self.states or []) if not s.done]
        if len(pending) == 1:
            self._slice(pending[0], commit)
        elif pending:
            with ThreadPoolExecutor(max_workers=len(pending), thread_name_prefix="slice") as pool:
                for future in [pool.submit(self._slice, i, commit) for i in pending]:
                    future.result()
        return self.problems

    def _record(self, index: int, page: RecordPage, commit: Commit) -> None:
        with self.lock:
            assert self.states is not None
            state = self.states[index]
            self.states[index] = replace(
                state,
                next_link=page.next_link,
                pages=state.pages + 1,
                done=page.next_link is None,
            )
            commit(page, tuple(self.states))

    def _probe(self, commit: Commit) -> None:
        self.states = [SliceState(self.window.start, self.window.end)]
        pages = self.source.record_pages(self.window, logons_only=self.logons_only)
        try:
            first = next(pages, None)
            if first is None:
                self.states = [replace(self.states[0], done=True)]
                commit(RecordPage((), None), tuple(self.states))
                return
            self._record(0, first, commit)
            count = slices_for(self.window, first, self.max_slices, self.pages_per_slice)
            if count == 1:
                for page in pages:
                    self._record(0, page, commit)
                return
        except RetryLaterError as exc:
            self.problems.append(str(exc))
            return
        close = getattr(pages, "close", None)
        if close is not None:
            close()  # the whole window goes to the slices
        planned = slice_windows(self.window, first, count)
        log.debug("sweep: %d slices after the first page", len(planned))
        with self.lock:
            self.states = [SliceState(w.start, w.end) for w in planned]
            commit(RecordPage((), None), tuple(self.states))

    def _slice(self, index: int, commit: Commit) -> None:
        assert self.states is not None
        state = self.states[index]
        window = TimeWindow(state.start, state.end)
        try:
            try:
                for page in self.source.record_pages(
                    window, logons_only=self.logons_only, resume_link=state.next_link
                ):
                    self._record(index, page, commit)
            except ProtocolError as exc:
                if state.next_link is None or exc.status != 400:
                    raise
                # The stored link expired: read the slice again; duplicates are dropped.
                log.info("a stored page link was refused; reading its slice again")
                for page in self.source.record_pages(window, logons_only=self.logons_only):
                    self._record(index, page, commit)
        except RetryLaterError as exc:
            with self.lock:
                self.problems.append(str(exc))
