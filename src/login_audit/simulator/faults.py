"""Faults the simulator injects: which, how often, and the answers that carry them.

Faults of the transport and of the status line (a 429, a 5xx, a dropped connection, a body
cut short, an HTML page) are the same for both vendors and are answered here. Faults of
the body (a missing or null list, a link or cursor that repeats, points elsewhere or
carries the token) depend on each API's shape and are applied by the API modules
(``visionone_api.py``, ``cloudone_api.py``), which say which of them they can carry.
"""

from __future__ import annotations

import email.utils
import random
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from login_audit.config import HttpSettings

#: Faults injected by default when a fault rate is set.
DEFAULT_FAULTS = (
    "429",
    "429-date",
    "429-bare",
    "500",
    "502",
    "503",
    "504",
    "drop",
    "truncate",
    "badjson",
)
#: Refusals of a change (``PATCH``, ``DELETE``): on a read no client could recover from them.
CHANGE_FAULTS = ("404", "409", "lost-reply")
#: Faults of an answer's body: each API applies those its bodies can carry.
BODY_FAULTS = (
    "noitems",
    "nullitems",
    "repeat-link",
    "foreign-link",
    "echo-link",
    "shift-accounts",
)
#: Every fault the simulator knows, including the ones a test must ask for by name.
ALL_FAULTS = (
    *DEFAULT_FAULTS,
    "noitems",
    "nullitems",
    "repeat-link",
    "foreign-link",
    "slow",
    "notjson",
    "echo-token",
    "echo-link",
    "shift-accounts",
    *CHANGE_FAULTS,
)


#: The client settings of the demos: they inject faults to show the retries at work, and
#: short waits keep the demo quick without hiding any retry.
DEMO_HTTP = HttpSettings(backoff_base=0.05, backoff_cap=0.5, retry_after_cap=0.5)


@dataclass
class FaultConfig:
    """Which faults to inject and how often (``rate`` of requests, seeded)."""

    rate: float = 0.0
    seed: int = 0
    kinds: tuple[str, ...] = DEFAULT_FAULTS
    outages: tuple[str, ...] = ()
    #: Only requests whose path starts with one of these get random faults (all if empty).
    paths: tuple[str, ...] = ()
    #: Seconds a "slow" answer waits before it is sent (beyond a client's read timeout).
    slow_seconds: float = 2.0
    #: At most this many random faults in all (None: no limit).
    limit: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(ALL_FAULTS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1")


class FaultPicker:
    """Draws the fault of each request from a seeded generator, and counts them."""

    def __init__(self, config: FaultConfig, counts: Counter[str]) -> None:
        self.config = config
        self.counts = counts
        self._rng = random.Random(config.seed)
        self._lock = threading.Lock()

    def pick(self, path: str) -> str | None:
        """The fault for a request to ``path``, or None."""
        config = self.config
        with self._lock:
            if any(path.startswith(prefix) for prefix in config.outages):
                self.counts["outage"] += 1
                return "outage"
            targeted = not config.paths or any(path.startswith(p) for p in config.paths)
            spent = sum(n for k, n in self.counts.items() if k != "outage")
            if config.limit is not None and spent >= config.limit:
                return None
            if targeted and config.rate and self._rng.random() < config.rate:
                kind = self._rng.choice(config.kinds)
                self.counts[kind] += 1
                return kind
        return None


@dataclass(frozen=True)
class ErrorAnswer:
    """An error answer sent instead of the API's: status, vendor code, message, headers."""

    status: int
    code: str
    message: str
    retry_after: str | None = None
    #: The body as ``{"code", "message"}`` instead of ``{"error": {...}}``.
    flat: bool = False


def error_instead(fault: str | None, authorization: str) -> ErrorAnswer | None:
    """The error a fault answers before the request reaches the API, if it is one."""
    if fault == "outage":
        return ErrorAnswer(503, "ServiceUnavailable", "Service unavailable.")
    if fault in ("500", "502", "503", "504"):
        return ErrorAnswer(int(fault), "InternalServerError", "Something went wrong.")
    if fault == "429":
        return ErrorAnswer(429, "TooManyRequests", "Too many requests.", retry_after="1")
    if fault == "429-date":
        when = datetime.now(timezone.utc) + timedelta(seconds=1)
        date = email.utils.format_datetime(when, usegmt=True)
        return ErrorAnswer(429, "TooManyRequests", "Too many requests.", retry_after=date)
    if fault == "429-bare":
        return ErrorAnswer(429, "TooManyRequests", "Too many requests.", flat=True)
    if fault == "404":
        return ErrorAnswer(404, "NotFound", "The requested resource does not exist.")
    if fault == "409":
        return ErrorAnswer(409, "Conflict", "The resource was changed by another request.")
    if fault == "echo-token":
        # Some servers echo what they were sent: the client must scrub it.
        return ErrorAnswer(500, "InternalServerError", f"could not process {authorization}")
    return None


def error_after(fault: str | None) -> ErrorAnswer | None:
    """The error a fault answers after the API has acted on the request (a lost reply)."""
    if fault == "lost-reply":
        # The change is made, but the gateway answers 502: the client cannot know.
        return ErrorAnswer(502, "BadGateway", "The upstream answer was lost.")
    return None
