"""smpp.timefmt: SMPP 3.4 absolute and relative time strings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpp.timefmt import format_absolute, format_relative, parse_smpp_time


def _tz(minutes: int) -> timezone:
    return timezone(timedelta(minutes=minutes))


def test_absolute_utc_plus_5() -> None:
    """UTC+5 is 20 quarter hours with '+', local time kept."""
    dt = datetime(2024, 3, 5, 14, 30, 0, tzinfo=_tz(300))
    assert format_absolute(dt) == "240305143000020+"


def test_absolute_negative_half_hour_offset_and_tenths() -> None:
    """UTC-3:30 is 14 quarter hours with '-'; tenths of a second are truncated."""
    dt = datetime(2031, 12, 31, 23, 59, 58, 990_000, tzinfo=_tz(-210))
    assert format_absolute(dt) == "311231235958914-"


def test_absolute_zoneinfo() -> None:
    """A zoneinfo datetime uses its offset at that instant (Nepal, UTC+5:45 -> 23)."""
    dt = datetime(2025, 1, 2, 3, 4, 5, tzinfo=ZoneInfo("Asia/Kathmandu"))
    assert format_absolute(dt) == "250102030405023+"


def test_absolute_utc() -> None:
    """UTC is offset 00 with '+'."""
    assert format_absolute(datetime(2000, 1, 1, tzinfo=UTC)) == "000101000000000+"


@pytest.mark.parametrize(
    "dt",
    [
        datetime(2024, 1, 1),  # naive
        datetime(2024, 1, 1, tzinfo=_tz(20)),  # not a quarter hour
        datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=5, seconds=1))),
        datetime(1999, 12, 31, tzinfo=UTC),
        datetime(2100, 1, 1, tzinfo=UTC),
    ],
)
def test_absolute_rejects(dt: datetime) -> None:
    """Naive datetimes, odd offsets and years outside 2000..2099 raise ValueError."""
    with pytest.raises(ValueError):
        format_absolute(dt)


def test_relative_fixture() -> None:
    """2 days 3:04:05 is 000002030405000R."""
    assert format_relative(timedelta(days=2, hours=3, minutes=4, seconds=5)) == "000002030405000R"


def test_relative_limits() -> None:
    """Zero and 99 days 23:59:59 are fine; sub-seconds are truncated."""
    assert format_relative(timedelta(0)) == "000000000000000R"
    assert format_relative(timedelta(days=100, microseconds=-1)) == "000099235959000R"


@pytest.mark.parametrize("delta", [timedelta(days=100), timedelta(seconds=-1)])
def test_relative_rejects(delta: timedelta) -> None:
    """Negative periods and periods of 100 days or more raise ValueError."""
    with pytest.raises(ValueError):
        format_relative(delta)


@pytest.mark.parametrize("value", ["", "   ", "\x00"])
def test_parse_empty_is_none(value: str) -> None:
    """An empty field (or only padding) means no time."""
    assert parse_smpp_time(value) is None


def test_parse_absolute_with_trailing_spaces() -> None:
    """Trailing spaces are ignored and the offset becomes the tzinfo."""
    parsed = parse_smpp_time("240305143000020+  ")
    assert parsed == datetime(2024, 3, 5, 14, 30, tzinfo=_tz(300))
    assert isinstance(parsed, datetime) and parsed.utcoffset() == timedelta(hours=5)


def test_parse_relative() -> None:
    """A relative time parses to a timedelta."""
    assert parse_smpp_time("000002030405000R") == timedelta(days=2, hours=3, minutes=4, seconds=5)


@pytest.mark.parametrize(
    "value",
    [
        "240305143000020",  # too short
        "2403051430000200+",  # too long
        " 240305143000020+",  # leading space
        "24030514300002X+",  # not a digit
        "２40305143000020+",  # non-ASCII digit
        "240305143000020*",  # bad sign
        "241305143000020+",  # month 13
        "240230143000020+",  # 30 February
        "240305243000020+",  # hour 24
        "240305143000096+",  # offset of 24 hours
        "010000000000000R",  # relative years
        "000100000000000R",  # relative months
        "000000240000000R",  # relative hour 24
        "000000000000100R",  # relative tenths
    ],
)
def test_parse_rejects(value: str) -> None:
    """Anything but a well-formed time raises ValueError."""
    with pytest.raises(ValueError):
        parse_smpp_time(value)


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59)),
    st.integers(0, 9),
    st.integers(-48, 56),
)
def test_absolute_roundtrip(local: datetime, tenths: int, quarters: int) -> None:
    """Any time with a quarter-hour offset in -12..+14 h survives format and parse."""
    dt = local.replace(microsecond=tenths * 100_000, tzinfo=_tz(15 * quarters))
    parsed = parse_smpp_time(format_absolute(dt))
    assert isinstance(parsed, datetime)
    assert parsed == dt
    assert parsed.replace(tzinfo=None) == dt.replace(tzinfo=None)
    assert parsed.utcoffset() == dt.utcoffset()


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=100, microseconds=-1)))
def test_relative_roundtrip(delta: timedelta) -> None:
    """Any period under 100 days survives format and parse, to the second."""
    assert parse_smpp_time(format_relative(delta)) == delta - timedelta(
        microseconds=delta.microseconds
    )
