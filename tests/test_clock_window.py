"""Astana time from the tzdata package, the pure send-window policy (R8), and the program
calendar that answers window and month questions (R3, R7, R8)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.kernel.clock import ManualClock, load_zone
from dispatcher.policy.calendar import ProgramCalendar
from dispatcher.policy.window import SendWindow
from dispatcher.settings import load_settings
from smpp.timefmt import parse_smpp_time

ASTANA = load_zone("Asia/Almaty")
DAY = SendWindow.parse("10:00-21:00")
NIGHT = SendWindow.parse("22:00-06:00")
CALENDAR = ProgramCalendar(ASTANA, DAY)
SECOND = timedelta(seconds=1)

instants = st.datetimes(
    min_value=datetime(2023, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
minutes = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))
windows = st.tuples(minutes, minutes).filter(lambda p: p[0] != p[1]).map(lambda p: SendWindow(*p))
calendars = windows.map(lambda w: ProgramCalendar(ASTANA, w))


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_astana_is_utc_plus_5_in_2026() -> None:
    """2026-11-23 12:00 UTC is 17:00 in Astana (tzdata 2024a and later)."""
    local = _utc(2026, 11, 23, 12).astimezone(ASTANA)
    assert (local.hour, local.utcoffset()) == (17, timedelta(hours=5))


def test_astana_offset_changed_on_2024_03_01() -> None:
    """Astana was UTC+6 on 2024-02-29 and UTC+5 from 2024-03-01."""
    assert _utc(2024, 2, 29, 12).astimezone(ASTANA).utcoffset() == timedelta(hours=6)
    assert _utc(2024, 3, 1, 12).astimezone(ASTANA).utcoffset() == timedelta(hours=5)


def test_zone_comes_from_tzdata_package_not_host() -> None:
    """The zone is read from the tzdata wheel, whatever the host's /usr/share/zoneinfo says."""
    import tzdata

    assert tzdata.IANA_VERSION >= "2024a"
    assert ASTANA.key == "Asia/Almaty"


def test_unknown_zone_rejected() -> None:
    """An unknown or path-like zone name raises a KeyError subclass."""
    for name in ("Mars/Olympus", "../etc/passwd", ""):
        with pytest.raises(KeyError):
            load_zone(name)


def test_manual_clock_moves_only_when_told() -> None:
    """ManualClock returns its set instant and advances by exact deltas."""
    clock = ManualClock(_utc(2026, 11, 23, 12))
    assert clock.now() == clock.now() == _utc(2026, 11, 23, 12)
    assert clock.advance(timedelta(hours=9)) == _utc(2026, 11, 23, 21)
    with pytest.raises(ValueError, match="aware"):
        clock.set(datetime(2026, 1, 1))


def test_month_start_is_astana_local() -> None:
    """At 2026-11-30 20:00 UTC it is already December 1st in Astana."""
    assert CALENDAR.month_of(_utc(2026, 11, 30, 20)) == date(2026, 12, 1)


def test_default_calendar_is_astana_10_to_21() -> None:
    """The settings' calendar: Astana time (UTC+5 in 2026), open 10:00-21:00, built once."""
    settings = load_settings({})
    calendar = settings.calendar
    assert calendar is settings.calendar
    assert calendar.local(_utc(2026, 11, 23, 12)).utcoffset() == timedelta(hours=5)
    assert calendar.is_open(_utc(2026, 11, 23, 5))
    assert not calendar.is_open(_utc(2026, 11, 23, 16))


def test_month_turned_at_astana_midnight_in_2024() -> None:
    """On 2024-02-29 Astana's clocks went back from 24:00 (+06) to 23:00 (+05): February got
    an hour more and March began at 19:00 UTC, not at 18:00."""
    assert CALENDAR.month_of(_utc(2024, 2, 29, 18)) == date(2024, 2, 1)
    assert CALENDAR.month_of(_utc(2024, 2, 29, 18, 59, 59)) == date(2024, 2, 1)
    assert CALENDAR.month_of(_utc(2024, 2, 29, 19)) == date(2024, 3, 1)


@pytest.mark.parametrize(
    ("utc", "open_"),
    [
        (_utc(2026, 11, 23, 4, 59, 59), False),  # 09:59:59 Astana
        (_utc(2026, 11, 23, 5, 0, 0), True),  # 10:00:00 opens (inclusive)
        (_utc(2026, 11, 23, 15, 59, 59), True),  # 20:59:59
        (_utc(2026, 11, 23, 16, 0, 0), False),  # 21:00:00 closed (exclusive)
    ],
)
def test_window_edges(utc: datetime, open_: bool) -> None:
    """10:00 is inside the window, 21:00 is outside."""
    assert DAY.is_open(utc, ASTANA) is open_


def test_window_close_and_next_open() -> None:
    """At 20:59:50 the window closes at 21:00; after it, the next one opens at 10:00 tomorrow."""
    now = _utc(2026, 11, 23, 15, 59, 50)
    assert DAY.closes_at(now, ASTANA) == _utc(2026, 11, 23, 16)
    later = _utc(2026, 11, 23, 16, 0, 1)
    assert DAY.closes_at(later, ASTANA) is None
    assert DAY.next_open(later, ASTANA) == _utc(2026, 11, 24, 5)


def test_window_across_midnight_and_month_end() -> None:
    """A 22:00-06:00 window opened on Nov 30 closes on Dec 1 at 06:00."""
    now = _utc(2026, 11, 30, 20)  # Dec 1 01:00 Astana
    assert NIGHT.current(now, ASTANA) == (_utc(2026, 11, 30, 17), _utc(2026, 12, 1, 1))
    assert NIGHT.next_open(_utc(2026, 12, 1, 2), ASTANA) == _utc(2026, 12, 1, 17)


@pytest.mark.parametrize("text", ["", "10:00", "25:00-21:00", "10:00-10:00", "1000-2100", "a-b"])
def test_bad_window_text_rejected(text: str) -> None:
    """Malformed or empty windows are refused with ValueError."""
    with pytest.raises(ValueError):
        SendWindow.parse(text)


@settings(max_examples=400)
@given(window=windows, now=instants)
def test_open_iff_span_contains_now(window: SendWindow, now: datetime) -> None:
    """Inside: the span holds now, is under a day long, and its edges are the local times."""
    span = window.current(now, ASTANA)
    assert window.is_open(now, ASTANA) is (span is not None)
    local = now.astimezone(ASTANA).time()
    if window.crosses_midnight:
        expected = local >= window.start or local < window.end
    else:
        expected = window.start <= local < window.end
    assert window.is_open(now, ASTANA) is expected
    if span is not None:
        opened, closes = span
        assert opened <= now < closes <= opened + timedelta(days=1)
        assert opened.astimezone(ASTANA).time() == window.start
        assert closes.astimezone(ASTANA).time() == window.end


@settings(max_examples=400)
@given(window=windows, now=instants)
def test_next_open_is_first_open_instant(window: SendWindow, now: datetime) -> None:
    """next_open is open, not in the past, and just before it the window is shut."""
    opened = window.next_open(now, ASTANA)
    assert opened >= now
    assert window.is_open(opened, ASTANA)
    if opened > now:
        assert not window.is_open(opened - timedelta(microseconds=1), ASTANA)
        assert opened - now <= timedelta(days=1)
        assert not window.is_open(now, ASTANA)


@settings(max_examples=200)
@given(window=windows, now=instants)
def test_closes_at_is_first_shut_instant(window: SendWindow, now: datetime) -> None:
    """closes_at is shut, and one microsecond earlier the window was still open."""
    closes = window.closes_at(now, ASTANA)
    if closes is not None:
        assert not window.is_open(closes, ASTANA)
        assert window.is_open(closes - timedelta(microseconds=1), ASTANA)


@settings(max_examples=300)
@given(calendar=calendars, now=instants)
def test_calendar_answers_agree(calendar: ProgramCalendar, now: datetime) -> None:
    """Open iff it closes later and a validity is given; next_open is open and not before now."""
    open_ = calendar.is_open(now)
    assert (calendar.closes_at(now) is not None) is open_
    assert (calendar.validity_until(now) is not None) is open_
    opened = calendar.next_open(now)
    assert opened >= now and calendar.is_open(opened)
    assert (opened == now) is open_


@settings(max_examples=300)
@given(calendar=calendars, now=instants)
def test_a_second_either_side_of_open_and_close(calendar: ProgramCalendar, now: datetime) -> None:
    """Shut a second before opening, open at it and a second after; open a second before the
    close, shut at it and a second after."""
    opened = calendar.next_open(calendar.closes_at(now) or now)
    closes = calendar.closes_at(opened)
    assert closes is not None
    assert not calendar.is_open(opened - SECOND)
    assert calendar.is_open(opened) and calendar.is_open(opened + SECOND)
    assert calendar.is_open(closes - SECOND)
    assert not calendar.is_open(closes) and not calendar.is_open(closes + SECOND)


@settings(max_examples=200)
@given(calendar=calendars, now=instants)
def test_validity_is_the_close_in_local_time(calendar: ProgramCalendar, now: datetime) -> None:
    """The SMPP validity reads back as the window's close, written with the local offset."""
    validity = calendar.validity_until(now)
    if validity is not None:
        closes = parse_smpp_time(validity)
        assert isinstance(closes, datetime)
        assert closes == calendar.closes_at(now)
        assert closes.utcoffset() == calendar.local(closes).utcoffset()


@given(year=st.integers(2025, 2030), month=st.integers(1, 12))
def test_month_turns_at_astana_midnight(year: int, month: int) -> None:
    """The month turns at 00:00 Astana, 19:00 UTC the day before: a second earlier it is the
    old month, at the turn the new one, while UTC still says the old month."""
    first = date(year, month, 1)
    previous = (first - timedelta(days=1)).replace(day=1)
    turn = datetime(year, month, 1, tzinfo=UTC) - timedelta(hours=5)
    assert CALENDAR.month_of(turn - SECOND) == previous
    assert CALENDAR.month_of(turn) == first == CALENDAR.month_of(turn + SECOND)
    assert turn.date().replace(day=1) == previous


@given(now=instants)
def test_month_of_is_the_local_first_day(now: datetime) -> None:
    """month_of is the first day of the Astana date, never after now's local date."""
    local = now.astimezone(ASTANA).date()
    assert CALENDAR.month_of(now) == local.replace(day=1)
    assert CALENDAR.month_of(now) <= local
