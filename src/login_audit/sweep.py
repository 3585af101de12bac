"""Reading a window of audit records as fast as the rate limit allows, without a gap.

A sweep first reads one page, which tells how dense the records are, hence how many
pages the window holds. A window of more than a few pages is then split into time slices
read in parallel, each following its own page links. The planner does not decide how
fast: the shared pacer of the HTTP client keeps all slices inside the vendor's limit, so
under the limit more slices only change the order of the requests, and far from it they
divide the wait by the number of slices. Each slice costs about half a page more (its
last page is partly filled), so a slice gets at least ``PAGES_PER_SLICE`` pages.

No page is trusted to be sorted: a record indexed late can sit on the first page with a
time far ahead of its neighbours. Slice boundaries, "done" and watermarks therefore come
only from the time windows the requests asked for, never from the times of the records
returned. On a long window (a first pull) the first page read is that of a slice fixed in
advance, the most recent ``1/MAX_SLICES`` of the window (the tail), which then reads on
as one of the slices, so no page is read twice; the rest of the window is split by what
that page shows. A shorter window (an incremental pull, usually one page) is probed
whole; when it is split, its first slice reads the probe page again from the window's
start (one request more), so whatever the order of the records, every slice asks the
vendor for every record of its own window.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import Protocol

from login_audit import interrupts
from login_audit.errors import Cancelled, ProtocolError, RetryLaterError
from login_audit.models import RecordPage, TimeWindow
from login_audit.syncstate import SliceState

log = logging.getLogger(__name__)

#: The fewest pages worth a slice of their own. A slice costs about half a request (its
#: partly filled last page), so a window of 7 pages is read by 2 chains of 4 for about
#: one request more, and one of 24 pages or more by 8 chains for about four more.
PAGES_PER_SLICE = 3
MAX_SLICES = 8
#: A window at least this long starts with its tail (see the module docstring).
TAIL_FROM = timedelta(days=7)
#: Records per page, to turn a density into pages.
PAGE_RECORDS = 200

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


def _records_per_second(window: TimeWindow, first: RecordPage) -> float | None:
    """How dense the records of ``window`` are, judged from its first page, or None.

    A last page counts its records over the whole window; a page that links on is judged
    from its own span, its latest tenth ignored (a record out of order must not make the
    window look nearly empty). None when the page holds too little to judge.
    """
    times = sorted(
        r.when for r in first.records if r.when is not None and window.start <= r.when < window.end
    )
    if first.next_link is None:
        seconds = (window.end - window.start).total_seconds()
        return len(times) / seconds if len(times) >= 2 and seconds > 0 else None
    if len(times) < 2:
        return None
    gaps = max(1, (len(times) - 1) * 9 // 10)
    span = (times[gaps] - times[0]).total_seconds()
    return gaps / span if span > 0 else float("inf")


def tail_of(window: TimeWindow, max_slices: int) -> TimeWindow | None:
    """The slice a long window is probed with: its most recent ``1/max_slices``, from a
    whole second; None for a window too short to start that way."""
    if max_slices <= 1 or window.end - window.start < TAIL_FROM:
        return None
    start = (window.end - (window.end - window.start) / max_slices).replace(microsecond=0)
    return TimeWindow(start, window.end) if window.start < start < window.end else None


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
        #: Set when the run is interrupted: no slice commits a page after it.
        self.stopped = threading.Event()
        self.problems: list[str] = []

    def run(self, commit: Commit) -> list[str]:
        """Read every page, handing each to ``commit``; return the failures (empty if none)."""
        if self.states is None:
            self._probe(commit)
            if self.problems:
                # The first page failed after every retry: the slices would fail alike. The
                # checkpoint keeps them pending for the next run.
                return self.problems
        pending = [i for i, s in enumerate(self.states or []) if not s.done]
        if len(pending) == 1:
            self._slice(pending[0], commit)
        elif pending:
            with ThreadPoolExecutor(
                max_workers=len(pending),
                thread_name_prefix="slice",
                initializer=interrupts.spare_this_thread,
            ) as pool:
                try:
                    for future in [pool.submit(self._slice, i, commit) for i in pending]:
                        future.result()
                except KeyboardInterrupt:
                    # The run ends: the other slices must neither read on nor commit while
                    # it unwinds (and closes the archive), and the pool is waited for.
                    self.stopped.set()
                    from login_audit.http import cancel_all

                    cancel_all()
                    raise
        return self.problems

    def _record(self, index: int, page: RecordPage, commit: Commit) -> None:
        with self.lock:
            if self.stopped.is_set():
                raise Cancelled("the sweep was stopped")
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
        tail = tail_of(self.window, self.max_slices)
        if tail is None:
            self._probe_whole(self.window, commit, [])
        else:
            self._probe_tail(tail, commit)

    def _probe_whole(self, window: TimeWindow, commit: Commit, kept: list[SliceState]) -> None:
        """Read the first page of ``window`` and split it by what the page shows.

        ``kept`` are slices after ``window`` (a tail already probed), left as they are.
        """
        self.states = [SliceState(window.start, window.end), *kept]
        pages = self.source.record_pages(window, logons_only=self.logons_only)
        try:
            first = next(pages, None)
            if first is None:
                with self.lock:
                    self.states[0] = replace(self.states[0], done=True)
                    commit(RecordPage((), None), tuple(self.states))
                return
            self._record(0, first, commit)
            count = slices_for(window, first, self.max_slices - len(kept), self.pages_per_slice)
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
        planned = slice_windows(window, first, count)
        log.debug("sweep: %d slices after the first page", len(planned))
        with self.lock:
            self.states = [*(SliceState(w.start, w.end) for w in planned), *kept]
            commit(RecordPage((), None), tuple(self.states))

    def _probe_tail(self, tail: TimeWindow, commit: Commit) -> None:
        """Read the first page of ``tail`` and plan the rest of the window from it.

        The tail stays a slice of its own and reads on from its page link; the rest is
        split by the tail's density, or probed whole when the tail's page holds too little
        to judge.
        """
        rest = TimeWindow(self.window.start, tail.start)
        self.states = [SliceState(rest.start, rest.end), SliceState(tail.start, tail.end)]
        pages = self.source.record_pages(tail, logons_only=self.logons_only)
        try:
            first = next(pages, None)
        except RetryLaterError as exc:
            self.problems.append(str(exc))
            return  # both slices stay pending in the checkpoint
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()  # the tail reads on as a slice, from its page link
        self._record(1, first or RecordPage((), None), commit)
        density = _records_per_second(tail, first) if first is not None else None
        if density is None:
            self._probe_whole(rest, commit, self.states[1:])
            return
        if density == float("inf"):
            count = self.max_slices - 1
        else:
            pages_left = density * (rest.end - rest.start).total_seconds() / PAGE_RECORDS
            count = max(1, min(self.max_slices - 1, int(pages_left // self.pages_per_slice)))
        planned = plan_slices(rest, count)
        log.debug("sweep: the tail and %d slices after its first page", len(planned))
        with self.lock:
            self.states = [*(SliceState(w.start, w.end) for w in planned), self.states[-1]]
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
