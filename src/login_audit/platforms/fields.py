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

import orjson

from login_audit.timeutil import parse_timestamp

log = logging.getLogger(__name__)


def lowered(item: Mapping[str, Any]) -> dict[str, Any]:
    """``item`` with its keys in lower case (the casing of key names is not guaranteed)."""
    return {k.lower(): v for k, v in item.items() if isinstance(k, str)}


class FieldReader:
    """Reads the same text fields from many items: ``text(lowered(item), *names)`` for each
    field, in order, without lowering every key of every item.

    The items of one endpoint share a few sets of keys, so which key of an item each name
    finds (the last of keys differing only in case, as :func:`lowered` keeps) is worked
    out once per set (at most 256 kept).
    """

    def __init__(self, *fields: tuple[str, ...]) -> None:
        self.fields = tuple(tuple(name.lower() for name in names) for names in fields)
        self._plans: dict[tuple[Any, ...], tuple[tuple[Any, ...], ...]] = {}

    def read(self, item: Mapping[str, Any]) -> list[str]:
        """Each field's first non-empty string, stripped, or ""."""
        shape = tuple(item)
        plan = self._plans.get(shape)
        if plan is None:
            lower = {k.lower(): k for k in shape if isinstance(k, str)}
            plan = tuple(tuple(lower[n] for n in names if n in lower) for names in self.fields)
            if len(self._plans) >= 256:
                self._plans.clear()
            self._plans[shape] = plan
        found = []
        for keys in plan:
            text = ""
            for key in keys:
                value = item[key]
                if isinstance(value, str):
                    text = value.strip()
                    if text:
                        break
            found.append(text)
        return found


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


def _without_floats(value: Any) -> bool:
    """True when no float sits anywhere in ``value`` (JSON parsed into Python)."""
    kind = type(value)
    if kind is dict:
        values = value.values()
    elif kind is list:
        values = value
    else:
        return kind is not float
    # The common leaves are tested in line: a call per value costs more than the rest of
    # the check.
    for inner in values:
        kind = type(inner)
        if kind is str or kind is int or kind is bool or inner is None:
            continue
        if kind is float or not _without_floats(inner):
            return False
    return True


def canonical(item: Mapping[str, Any]) -> tuple[str, str]:
    """``(raw JSON, key)``: the record's canonical JSON and the SHA-256 that identifies it.

    Records have no reliable id; the same record read twice has the same canonical form.
    The form is ``json.dumps`` with sorted keys, compact separators and UTF-8 text: the
    keys of archived records are hashes of it, so it must never change. orjson writes
    the same bytes several times faster, except for floats (``1e+16`` against ``1e16``,
    ``NaN`` against ``null``), integers beyond 64 bits and text that is not valid
    Unicode, which it either cannot write or writes otherwise: those take the slow path.
    """
    if type(item) is dict and _without_floats(item):
        try:
            data = orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
        except (orjson.JSONEncodeError, TypeError):
            pass
        else:
            return data.decode("utf-8"), hashlib.sha256(data).hexdigest()
    raw = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return raw, hashlib.sha256(raw.encode("utf-8")).hexdigest()
