"""Reading vendor JSON defensively: key casing, missing keys, timestamps, canonical form.

The vendors' key names are partly guessed (see API_NOTES.md), so both platform clients
read items through these helpers: keys are matched case-insensitively, several names can
be tried, and a value of the wrong type counts as absent.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from login_audit.timeutil import parse_timestamp

log = logging.getLogger(__name__)


def lowered(item: Mapping[str, Any]) -> dict[str, Any]:
    """``item`` with its keys in lower case (the casing of key names is not guaranteed)."""
    return {k.lower(): v for k, v in item.items() if isinstance(k, str)}


def text(item: Mapping[str, Any], *keys: str) -> str:
    """The first non-empty string among ``keys`` of an item whose keys are lower case."""
    for key in keys:
        value = item.get(key.lower())
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def time_or_none(value: str) -> datetime | None:
    """A timestamp, or None when it is empty or unreadable (logged)."""
    try:
        return parse_timestamp(value) if value else None
    except ValueError:
        log.warning("an unreadable timestamp %r was ignored", value)
        return None


def canonical(item: Mapping[str, Any]) -> tuple[str, str]:
    """``(raw JSON, key)``: the record's canonical JSON and the SHA-256 that identifies it.

    Records have no reliable id; the same record read twice has the same canonical form.
    """
    raw = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return raw, hashlib.sha256(raw.encode("utf-8")).hexdigest()
