"""Timestamps: every instant inside login-audit is an aware ``datetime`` in UTC."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

Clock = Callable[[], datetime]

_FRACTION = re.compile(r"(\.\d+)")


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime (the default clock)."""
    return datetime.now(timezone.utc)


def parse_timestamp(value: str) -> datetime:
    """Parse an ISO-8601 timestamp or ``YYYY-MM-DD HH:MM:SS`` into an aware UTC datetime.

    Accepts ``Z`` or numeric offsets, a space or ``T`` separator and fractions of any
    length (truncated to microseconds). A value without an offset is taken as UTC, as the
    vendors document. Raises ``ValueError`` with the offending value otherwise.
    """
    if not isinstance(value, str):
        raise ValueError(f"timestamp is not a string: {value!r}")
    if len(value) == 20 and value[19] == "Z" and value[10] == "T" and "." not in value:
        # The vendors' usual ``YYYY-MM-DDTHH:MM:SSZ``: the string the general path below
        # makes of it, parsed without its rewriting. The offset is written out rather than
        # set with ``replace``, which costs five times the parse; a value whose first 19
        # characters carry an offset of their own fails here and takes the general path.
        try:
            parsed = datetime.fromisoformat(value[:19] + "+00:00")
        except ValueError:
            pass
        else:
            if parsed.tzinfo is timezone.utc:
                return parsed
    text = value.strip()
    if not text:
        raise ValueError("timestamp is empty")
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    match = _FRACTION.search(text)
    if match:
        # Python 3.10 accepts exactly three or six fraction digits: always give it six.
        digits = match.group(1)[1:7].ljust(6, "0")
        text = text[: match.start(1)] + "." + digits + text[match.end(1) :]
    if len(text) >= 11 and text[10] in " tT":
        text = text[:10] + "T" + text[11:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: login-audit only handles aware UTC times")
    return moment.astimezone(timezone.utc)


def format_z(moment: datetime) -> str:
    """Format an aware datetime as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, no fraction)."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_z_micro(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC): for files that must keep every microsecond."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_minute(moment: datetime | None, missing: str = "") -> str:
    """``YYYY-MM-DD HH:MM`` (UTC) for people, or ``missing`` when there is no time."""
    return _utc(moment).strftime("%Y-%m-%d %H:%M") if moment else missing


def format_day(moment: datetime) -> str:
    """``YYYY-MM-DD`` (UTC) for people."""
    return _utc(moment).strftime("%Y-%m-%d")


def days_between(earlier: datetime, later: datetime) -> int:
    """Whole days from ``earlier`` to ``later`` (floor, never negative), as in 'days ago'.

    A time slightly in the future (clock skew between us and the vendor) counts as 0.
    """
    return max(0, (later - earlier) // timedelta(days=1))
