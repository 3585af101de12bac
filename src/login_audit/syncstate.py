"""The state of incremental pulls: how far each stream is archived, and a sweep under way.

These values belong to the sync layer (``sync.py`` decides them, ``sweep.py`` advances a
sweep's slices); the archive only stores them. They sit in a module of their own because
``sync.py`` runs ``sweep.py``, so neither can import the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class SliceState:
    """One time slice of a sweep: where it continues, and whether it is finished."""

    start: datetime
    end: datetime
    next_link: str | None = None
    pages: int = 0
    done: bool = False


@dataclass(frozen=True)
class Checkpoint:
    """A sweep under way: its window and the state of each of its time slices."""

    start: datetime
    end: datetime
    slices: tuple[SliceState, ...]

    @classmethod
    def single(
        cls, start: datetime, end: datetime, next_link: str | None, pages: int
    ) -> Checkpoint:
        """A one-slice checkpoint (done when there is no next link)."""
        return cls(start, end, (SliceState(start, end, next_link, pages, next_link is None),))

    @property
    def pages(self) -> int:
        """Pages committed so far, over all slices."""
        return sum(s.pages for s in self.slices)

    @property
    def done(self) -> bool:
        """True when every slice has read its last page."""
        return all(s.done for s in self.slices)


@dataclass(frozen=True)
class SyncState:
    """How far a stream of one tenant is archived.

    Records logged in ``[covered_from, watermark)`` are all in the archive; ``checkpoint``
    is set while a sweep is under way.
    """

    covered_from: datetime | None
    watermark: datetime | None
    last_sync_at: datetime | None
    checkpoint: Checkpoint | None
