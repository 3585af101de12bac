"""Vendor text shown on a terminal or in a log line carries no control character."""

from __future__ import annotations

import logging

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_audit.cli.state import Redactor
from login_audit.config import HttpSettings, Secret
from login_audit.errors import ProtocolError
from login_audit.http import BearerAuth, HttpClient
from login_audit.printable import REPLACEMENT, printable

UNSAFE = [chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)]]
UNSAFE += ["\u2028", "\u2029", "\u061c", "\u200e", "\u200f", "\u202e", "\u2066", "\u2069"]


@pytest.mark.parametrize("char", UNSAFE)
def test_every_control_character_is_replaced(char: str) -> None:
    assert printable(f"a{char}b") == f"a{REPLACEMENT}b"


def test_ordinary_text_is_kept_and_newlines_only_when_asked() -> None:
    text = "Zoë Ångström <zoe@例え.jp> Master Administrator"
    assert printable(text) == text
    assert printable("a\nb") == f"a{REPLACEMENT}b"
    assert printable("a\nb\x1b", keep_newlines=True) == f"a\nb{REPLACEMENT}"


@given(st.text())
def test_nothing_unsafe_survives(text: str) -> None:
    assert not set(printable(text)) & set(UNSAFE)


def test_log_records_lose_control_characters_and_secrets() -> None:
    redactor = Redactor()
    redactor.add(Secret("s3cret-token"))
    record = logging.LogRecord(
        "login_audit",
        logging.WARNING,
        __file__,
        1,
        "user %s: %s",
        ("\x1b]0;x\x07eve", "s3cret-token"),
        None,
    )
    assert redactor.filter(record)
    assert record.getMessage() == f"user {REPLACEMENT}]0;x{REPLACEMENT}eve: ********"


def test_a_vendor_error_message_is_made_printable() -> None:
    def vendor(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "Bad\x1b[2J", "message": "no\x07pe\u202e"}}
        return httpx.Response(409, json=body)

    client = HttpClient(
        BearerAuth(Secret("t0ken")), HttpSettings(), transport=httpx.MockTransport(vendor)
    )
    with pytest.raises(ProtocolError) as caught:
        client.request_json("PATCH", "http://127.0.0.1:9/v3.0/iam/accounts/1")
    message = str(caught.value)
    assert "HTTP 409" in message and not set(message) & set(UNSAFE)
