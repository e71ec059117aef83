"""ProgramCalendar.finish_at (issue 14, the ETA through the window; issue 15, the forecast):
a pure walk of the open windows across days, checked as properties over windows, instants,
message counts and rates."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.kernel.clock import load_zone
from dispatcher.policy.calendar import ProgramCalendar
from dispatcher.policy.window import SendWindow

ASTANA = load_zone("Asia/Almaty")
CALENDAR = ProgramCalendar(ASTANA, SendWindow.parse("10:00-21:00"))

instants = st.datetimes(
    min_value=datetime(2023, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
minutes = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))
windows = st.tuples(minutes, minutes).filter(lambda p: p[0] != p[1]).map(lambda p: SendWindow(*p))
calendars = windows.map(lambda w: ProgramCalendar(ASTANA, w))
counts = st.integers(0, 5_000_000)
rates = st.floats(0.5, 2_000.0, allow_nan=False, allow_infinity=False)


def _local(*args: int) -> datetime:
    return datetime(*args, tzinfo=ASTANA).astimezone(UTC)


def _open_time(calendar: ProgramCalendar, start: datetime, end: datetime) -> timedelta:
    """Open window between ``start`` and ``end``, summed window by window."""
    total = timedelta()
    at = calendar.next_open(start)
    while at < end:
        closes = calendar.closes_at(at)
        assert closes is not None
        total += min(closes, end) - at
        at = calendar.next_open(closes)
    return total


def test_fits_today() -> None:
    """100,000 at 100/s from 12:00 local: 1,000 s later, the same day."""
    start = _local(2026, 12, 2, 12, 0)
    assert CALENDAR.finish_at(start, 100_000, 100.0) == start + timedelta(seconds=1000)


def test_spans_days() -> None:
    """11 h of window a day: 100/s for 5,000,000 messages is 50,000 s = 13 h 53 min 20 s of
    window: from 20:00 (1 h left today), 11 h tomorrow, then 1 h 53 min 20 s the day after."""
    start = _local(2026, 12, 2, 20, 0)
    assert CALENDAR.finish_at(start, 5_000_000, 100.0) == _local(2026, 12, 4, 11, 53, 20)


def test_from_a_closed_hour_it_starts_at_the_opening() -> None:
    start = _local(2026, 12, 2, 3, 0)
    assert CALENDAR.finish_at(start, 600, 1.0) == _local(2026, 12, 2, 10, 10)


def test_exactly_filling_the_window_ends_at_the_close() -> None:
    start = _local(2026, 12, 2, 20, 0)
    assert CALENDAR.finish_at(start, 3600, 1.0) == _local(2026, 12, 2, 21, 0)
    assert CALENDAR.finish_at(start, 3601, 1.0) == _local(2026, 12, 3, 10, 0, 1)


def test_nothing_to_send_finishes_at_start_and_a_rate_must_be_positive() -> None:
    start = _local(2026, 12, 2, 3, 0)
    assert CALENDAR.finish_at(start, 0, 10.0) == start
    with pytest.raises(ValueError):
        CALENDAR.finish_at(start, 1, 0.0)


@settings(max_examples=300)
@given(calendar=calendars, start=instants, n=counts, rate=rates)
def test_never_ends_in_closed_hours(
    calendar: ProgramCalendar, start: datetime, n: int, rate: float
) -> None:
    """The end is in (opened, closes] of a window, never before start, and the open time
    between start and it is the work's duration (to a millisecond of float rounding)."""
    end = calendar.finish_at(start, n, rate)
    assert end >= start
    if n == 0:
        assert end == start
        return
    before = end - timedelta(microseconds=1)
    assert calendar.is_open(before)
    closes = calendar.closes_at(before)
    assert closes is not None and end <= closes
    worked = _open_time(calendar, start, end)
    assert abs(worked - timedelta(seconds=n / rate)) < timedelta(milliseconds=1)


@settings(max_examples=300)
@given(calendar=calendars, start=instants, n=counts, more=counts, rate=rates)
def test_monotone_in_messages(
    calendar: ProgramCalendar, start: datetime, n: int, more: int, rate: float
) -> None:
    assert calendar.finish_at(start, n, rate) <= calendar.finish_at(start, n + more, rate)


@settings(max_examples=300)
@given(calendar=calendars, start=instants, n=counts, rate=rates)
def test_equals_start_plus_duration_when_it_fits(
    calendar: ProgramCalendar, start: datetime, n: int, rate: float
) -> None:
    """Open at start and done before the close: start + n / rate exactly."""
    closes = calendar.closes_at(start)
    duration = timedelta(seconds=n / rate)
    if closes is not None and start + duration <= closes:
        assert calendar.finish_at(start, n, rate) == start + duration


@settings(max_examples=200)
@given(calendar=calendars, start=instants, rate=st.integers(1, 100))
def test_boundary_at_the_close(calendar: ProgramCalendar, start: datetime, rate: int) -> None:
    """Work that takes exactly what is left of the window ends at the close; one message
    more ends in the next window (at its opening plus one message's time)."""
    opened = calendar.next_open(start)
    closes = calendar.closes_at(opened)
    assert closes is not None
    seconds = int((closes - opened).total_seconds())
    if (closes - opened) != timedelta(seconds=seconds):
        return  # the window's edges are whole minutes; only a microsecond start is off
    n = seconds * rate
    assert calendar.finish_at(opened, n, float(rate)) == closes
    following = calendar.next_open(closes)
    assert calendar.finish_at(opened, n + 1, float(rate)) == following + timedelta(seconds=1 / rate)
