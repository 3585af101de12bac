"""The fast JSON paths write and read exactly what the standard library does.

Archived records are keyed by the SHA-256 of their canonical JSON: if the form changed,
every record read again would be stored twice. orjson's output is used only where it is
byte for byte the standard library's; these properties hold it to that.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from login_audit.http import _decode_json
from login_audit.models import AuditRecord, RecordKind
from login_audit.platforms.fields import FieldReader, canonical, lowered, text

# Text of any kind but lone surrogates (which no UTF-8 body can carry).
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63 - 2, max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([1e16, 1e-05, 1e22, -0.0, 0.1, 5e-324, 1.7976931348623157e308])
    | TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
RECORDS = st.dictionaries(TEXT, JSON, max_size=8)


def standard(item: dict[str, Any]) -> tuple[str, str]:
    raw = json.dumps(item, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return raw, hashlib.sha256(raw.encode("utf-8")).hexdigest()


@settings(max_examples=400)
@given(RECORDS)
def test_canonical_form_and_key_are_those_of_the_standard_library(item) -> None:
    assert canonical(item) == standard(item)


def test_canonical_form_of_typical_records_and_odd_values() -> None:
    for item in (
        {"loggedUser": "a@example.com", "details": {"ip": "198.51.100.7", "n": 3}},
        {"b": 1, "a": [True, None, "\u2028", "\x7f", "\x00\x1f", "é😀"]},
        {"big": 2**64, "float": 1e16, "nan": math.nan, "inf": -math.inf},
        {"nested": {"z": {"y": [1.5, {"x": 1}]}}},
    ):
        assert canonical(item) == standard(item)


@settings(max_examples=300)
@given(JSON)
def test_bodies_read_as_the_standard_library_reads_them(value) -> None:
    body = json.dumps(value, ensure_ascii=False).encode("utf-8")
    # json.dumps again: NaN is not equal to itself, its text is.
    assert json.dumps(_decode_json(body)) == json.dumps(json.loads(body))


def test_bodies_only_the_standard_library_reads_still_read() -> None:
    for body in (b'{"a": NaN}', b'{"a": 123456789012345678901234567890}', b'["\\ud800"]'):
        assert json.dumps(_decode_json(body)) == json.dumps(json.loads(body))
    assert _decode_json('{"a": 1}'.encode("utf-16")) == {"a": 1}


NAMES = st.sampled_from(
    [
        "category",
        "Category",
        "CATEGORY",
        "loggedUser",
        "loggeduser",
        "LoggedUser",
        "loggedUserMailAddress",
        "result",
        "x",
    ]
)
VALUES = st.none() | st.integers() | st.sampled_from(["", "  ", " a ", "b", "Log on"])


@given(st.lists(st.dictionaries(NAMES, VALUES, max_size=6), max_size=4))
def test_fields_are_read_as_from_the_lowered_item(items: list[dict[str, Any]]) -> None:
    """Keys that differ only in case: the one ``lowered`` keeps (the last) is the one read,
    also when items of the same keys come again (the reader keeps what it worked out)."""
    fields = (("category",), ("loggedUserMailAddress", "loggedUser"), ("result", "x"), ("no",))
    reader = FieldReader(*fields)
    for item in items + items:
        assert reader.read(item) == [text(lowered(item), *names) for names in fields]


def test_a_record_made_by_of_is_the_one_the_constructor_makes() -> None:
    fields: dict[str, Any] = {
        "key": "ab" * 32,
        "when": None,
        "category": "c",
        "activity": "a",
        "result": "r",
        "kind": RecordKind.LOGON_OK,
        "principal": "p",
        "account_id": None,
        "raw": "{}",
    }
    fast, slow = AuditRecord.of(**fields), AuditRecord(**fields)
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.key = "changed"  # type: ignore[misc]
