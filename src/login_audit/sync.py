"""Incremental pulls into the archive: windows, watermarks, resumable checkpoints.

A stream is a kind of pull of one tenant: ``all`` (every record, what ``sync`` and
``export`` read) or ``logons`` (only logon events, what ``audit`` needs). Each page and the
checkpoint after it commit in one transaction, so a run killed at any point resumes from
the last committed page; the watermark moves only when a window is complete.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from login_audit.archive.base import Archive, Checkpoint, SyncState
from login_audit.errors import ProtocolError, RetryLaterError
from login_audit.models import RecordPage, TimeWindow
from login_audit.timeutil import Clock, utcnow

log = logging.getLogger(__name__)

ALL = "all"
LOGONS = "logons"
DEFAULT_OVERLAP = timedelta(minutes=30)


class RecordSource(Protocol):
    """The part of a platform that sync needs."""

    retention_days: int

    def record_pages(
        self, window: TimeWindow, *, logons_only: bool, resume_link: str | None = None
    ) -> Iterator[RecordPage]:
        """Pages of records of ``window``, oldest first (an iterator of RecordPage)."""
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
    return (
        own
        if own.watermark >= full.watermark
        else SyncState(full.covered_from, full.watermark, own.last_sync_at, own.checkpoint)
    )


def sync_stream(
    archive: Archive,
    source: RecordSource,
    tenant: int,
    stream: str,
    *,
    clock: Clock = utcnow,
    overlap: timedelta = DEFAULT_OVERLAP,
    progress: Callable[[str, int], None] = lambda stage, count: None,
) -> SyncResult:
    """Bring ``stream`` of ``tenant`` up to now; never raises for vendor failures.

    A failure leaves the checkpoint in place (the next run resumes there) and is reported
    in the result as incomplete.
    """
    now = clock()
    oldest = now - timedelta(days=source.retention_days)
    own = archive.state(tenant, stream)
    first_requests = source.requests_made()
    resume_link: str | None = None
    pages_before = 0
    if own is not None and own.checkpoint is not None:
        checkpoint = own.checkpoint
        window = TimeWindow(max(checkpoint.start, oldest), checkpoint.end)
        resume_link, pages_before = checkpoint.next_link, checkpoint.pages
        covered_from = window.start
        resumed = True
        if resume_link is None:
            # The last page was committed but the window was not closed: close it now.
            archive.finish_window(tenant, stream, covered_from, window.end, now)
            return SyncResult(stream, window, resumed=True)
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
    try:
        pages_iter = source.record_pages(
            window, logons_only=stream == LOGONS, resume_link=resume_link
        )
        try:
            for page in pages_iter:
                _commit(
                    archive, tenant, stream, window, page, pages_before + result.pages + 1, result
                )
                progress(f"{stream} records", result.fetched)
        except ProtocolError as exc:
            if resume_link is None or result.pages or exc.status != 400:
                raise
            # The stored link expired: read the window again; duplicates are dropped.
            log.info("the stored page link was refused; reading the window again")
            for page in source.record_pages(window, logons_only=stream == LOGONS):
                _commit(archive, tenant, stream, window, page, result.pages + 1, result)
                progress(f"{stream} records", result.fetched)
    except RetryLaterError as exc:
        result.complete = False
        label = "logon records" if stream == LOGONS else "audit records"
        result.problem = f"{label} incomplete after {result.fetched} records: {exc}"
        log.error("%s", result.problem)
    else:
        archive.finish_window(tenant, stream, min(covered_from, window.start), window.end, now)
    result.requests = source.requests_made() - first_requests
    return result


def _commit(
    archive: Archive,
    tenant: int,
    stream: str,
    window: TimeWindow,
    page: RecordPage,
    pages: int,
    result: SyncResult,
) -> None:
    checkpoint = Checkpoint(window.start, window.end, page.next_link, pages)
    result.inserted += archive.commit_page(tenant, stream, page.records, checkpoint)
    result.fetched += len(page.records)
    result.pages += 1
