"""Timestamps in every form the vendors use parse to the same aware UTC instant."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_audit.timeutil import days_between, format_z, parse_timestamp

INSTANT = datetime(2026, 3, 29, 1, 30, 5, 123456, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "text",
    [
        "2026-03-29T01:30:05.123456Z",
        "2026-03-29T01:30:05.1234567Z",
        "2026-03-29T01:30:05.123456789Z",
        "2026-03-29T01:30:05.123456+00:00",
        "2026-03-29T03:30:05.123456+02:00",
        "2026-03-28T20:30:05.123456-05:00",
        "2026-03-29 01:30:05.123456",
        "2026-03-29t01:30:05.123456z",
    ],
)
def test_forms_parse_to_the_same_instant(text: str) -> None:
    assert parse_timestamp(text) == INSTANT
    assert parse_timestamp(text).tzinfo == timezone.utc


def test_space_form_without_fraction_is_utc() -> None:
    assert parse_timestamp("2026-03-29 01:30:05") == INSTANT.replace(microsecond=0)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01T00:00:00Z", "12:00"])
def test_garbage_is_refused_with_the_value(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


aware = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timedelta(minutes=m))


@given(moment=aware, offset=offsets)
def test_any_offset_or_form_round_trips(moment: datetime, offset: timedelta) -> None:
    local = moment.astimezone(timezone(offset))
    assert parse_timestamp(local.isoformat()) == moment
    assert parse_timestamp(moment.strftime("%Y-%m-%d %H:%M:%S.%f")) == moment
    assert parse_timestamp(format_z(moment)) == moment.replace(microsecond=0)


def test_format_z_refuses_naive_times() -> None:
    with pytest.raises(ValueError):
        format_z(datetime(2026, 1, 1))


def test_days_between_floors_and_never_goes_negative() -> None:
    now = INSTANT
    assert days_between(now - timedelta(days=90, hours=2), now) == 90
    assert days_between(now - timedelta(days=89, hours=23), now) == 89
    assert days_between(now + timedelta(minutes=5), now) == 0


def test_the_formats_for_people_and_files_are_utc_and_refuse_naive_times() -> None:
    from login_audit.timeutil import format_day, format_minute, format_z_micro

    berlin = timezone(timedelta(hours=1))
    moment = datetime(2026, 1, 1, 0, 30, 15, 123456, tzinfo=berlin)  # 23:30 UTC the day before
    assert format_z(moment) == "2025-12-31T23:30:15Z"
    assert format_z_micro(moment) == "2025-12-31T23:30:15.123456Z"
    assert format_minute(moment) == "2025-12-31 23:30"
    assert format_day(moment) == "2025-12-31"
    assert format_minute(None) == "" and format_minute(None, missing="-") == "-"
    for formatter in (format_z, format_z_micro, format_minute, format_day):
        with pytest.raises(ValueError, match="naive"):
            formatter(datetime(2026, 1, 1))


def general(text: str) -> datetime | None:
    """What the general path makes of ``text`` (a space in front skips the short cut)."""
    try:
        return parse_timestamp(" " + text)
    except ValueError:
        return None


def short(text: str) -> datetime | None:
    try:
        return parse_timestamp(text)
    except ValueError:
        return None


@given(moment=aware)
def test_the_usual_form_parses_as_the_general_path_parses_it(moment: datetime) -> None:
    text = format_z(moment)
    assert len(text) == 20
    assert short(text) == general(text) == moment.replace(microsecond=0)
    assert parse_timestamp(text).tzinfo == timezone.utc


@given(
    st.text(alphabet="0123456789-:T+.WZ ", min_size=19, max_size=19).map(lambda s: s + "Z")
    | st.sampled_from(
        [
            "2026-W13-7T01:30:05Z",
            "2026-03-29T01+02:00Z",
            "2026-02-30T01:30:05Z",
            "2026-03-29T24:00:00Z",
        ]
    )
)
def test_lookalikes_of_the_usual_form_parse_as_the_general_path_parses_them(text: str) -> None:
    assert short(text) == general(text)
