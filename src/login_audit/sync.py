"""Incremental pulls into the archive: windows, watermarks, resumable checkpoints.

A stream is a kind of pull of one tenant: ``all`` (every record, what ``sync`` and
``export`` read) or ``logons`` (only logon events, what ``audit`` needs). A window is
split into time slices read in parallel (see ``sweep.py``), all paced by the one HTTP
client. Each page commits together with the checkpoint of every slice, so a run killed
at any point resumes each slice from its last committed page; the watermark moves only
when the whole window is complete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Protocol

from login_audit.archive.base import Archive
from login_audit.models import AuditRecord, RecordPage, TimeWindow
from login_audit.sweep import MAX_SLICES, Sweep
from login_audit.syncstate import Checkpoint, SliceState, SyncState
from login_audit.timeutil import Clock, utcnow

log = logging.getLogger(__name__)

ALL = "all"
LOGONS = "logons"
DEFAULT_OVERLAP = timedelta(minutes=30)
#: Pages stored per transaction, with the checkpoint of the last of them: a crash makes
#: the next run read at most this many pages again (their duplicates are dropped), and
#: the archive spends a tenth of the commits it would spend page by page.
COMMIT_PAGES = 10


class RecordSource(Protocol):
    """The part of a platform that sync needs."""

    retention_days: int
    supports_time_slices: bool

    def record_pages(
        self, window: TimeWindow, *, logons_only: bool, resume_link: str | None = None
    ) -> Iterator[RecordPage]:
        """Pages of records of ``window``, oldest first."""
        ...

    def requests_made(self) -> int:
        """HTTP requests sent so far."""
        ...


@dataclass
class SyncResult:
    """What one sync of one stream did."""

    stream: str
    window: TimeWindow
    pages: int = 0
    fetched: int = 0
    inserted: int = 0
    requests: int = 0
    slices: int = 1
    resumed: bool = False
    complete: bool = True
    problem: str = ""


def coverage(archive: Archive, tenant: int, stream: str) -> SyncState | None:
    """The effective state of ``stream``; ``logons`` also counts a contiguous ``all`` pull."""
    own = archive.state(tenant, stream)
    if stream != LOGONS:
        return own
    full = archive.state(tenant, ALL)
    if full is None or full.watermark is None or full.covered_from is None:
        return own
    if own is None or own.watermark is None or own.covered_from is None:
        checkpoint = own.checkpoint if own is not None else None
        return SyncState(full.covered_from, full.watermark, full.last_sync_at, checkpoint)
    # Merge the two ranges when they touch; otherwise keep the one that reaches further.
    if full.covered_from <= own.watermark and own.covered_from <= full.watermark:
        return SyncState(
            min(own.covered_from, full.covered_from),
            max(own.watermark, full.watermark),
            own.last_sync_at,
            own.checkpoint,
        )
    if own.watermark >= full.watermark:
        return own
    return SyncState(full.covered_from, full.watermark, own.last_sync_at, own.checkpoint)


def sync_stream(
    archive: Archive,
    source: RecordSource,
    tenant: int,
    stream: str,
    *,
    clock: Clock = utcnow,
    overlap: timedelta = DEFAULT_OVERLAP,
    slices: int = MAX_SLICES,
    progress: Callable[[str, int], None] = lambda stage, count: None,
    commit_pages: int = COMMIT_PAGES,
) -> SyncResult:
    """Bring ``stream`` of ``tenant`` up to now; vendor failures are reported, not raised.

    A failure leaves the checkpoint in place (the next run resumes there) and makes the
    result incomplete; slices that did not fail still read to their end.
    """
    now = clock()
    oldest = now - timedelta(days=source.retention_days)
    own = archive.state(tenant, stream)
    first_requests = source.requests_made()
    states: list[SliceState] | None = None
    if own is not None and own.checkpoint is not None:
        checkpoint = own.checkpoint
        window = TimeWindow(max(checkpoint.start, oldest), checkpoint.end)
        states = [
            s if s.end > oldest else replace(s, done=True)  # data past retention is gone
            for s in checkpoint.slices
        ]
        covered_from, resumed = window.start, True
    else:
        state = coverage(archive, tenant, stream)
        if state is not None and state.watermark is not None and state.covered_from is not None:
            start = max(state.watermark - overlap, oldest)
            covered_from = state.covered_from if start <= state.watermark else start
        else:
            start = covered_from = oldest
        window = TimeWindow(start, now)
        resumed = False
    result = SyncResult(stream, window, resumed=resumed)
    sweep = Sweep(source, window, logons_only=stream == LOGONS, max_slices=slices, states=states)

    # Pages waiting for their transaction, and the slices' state after the last of them.
    # Every page is handed over under the sweep's lock, so the latest state accounts for
    # every page held: storing them together with it is what one commit per page did.
    held: list[AuditRecord] = []
    latest: list[Checkpoint] = []

    def store() -> None:
        if latest:
            records, checkpoint = list(held), latest[-1]
            held.clear()
            latest.clear()  # a failed write is not tried again with the same pages
            result.inserted += archive.commit_page(tenant, stream, records, checkpoint)

    def commit(page: RecordPage, slice_states: tuple[SliceState, ...]) -> None:
        held.extend(page.records)
        latest.append(Checkpoint(window.start, window.end, slice_states))
        if len(latest) >= commit_pages:
            store()
        result.fetched += len(page.records)
        result.pages += int(bool(page.records) or page.next_link is not None)
        result.slices = len(slice_states)
        progress(f"{stream} records", result.fetched)

    try:
        problems = sweep.run(commit)
    finally:
        with sweep.lock:  # no slice is left running here; the lock makes sure of it
            store()  # what was read before a failure or an interruption is kept
    if problems:
        label = "logon records" if stream == LOGONS else "audit records"
        result.complete = False
        result.problem = f"{label} incomplete after {result.fetched} records: {problems[0]}"
        log.error("%s", result.problem)
    else:
        archive.finish_window(tenant, stream, min(covered_from, window.start), window.end, now)
    result.requests = source.requests_made() - first_requests
    return result
