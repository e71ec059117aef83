"""Astana time from the tzdata package, and the pure send-window policy (R8)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.clock import ManualClock, load_zone, month_start
from dispatcher.policy.window import SendWindow

ASTANA = load_zone("Asia/Almaty")
DAY = SendWindow.parse("10:00-21:00")
NIGHT = SendWindow.parse("22:00-06:00")

instants = st.datetimes(
    min_value=datetime(2023, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
minutes = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))
windows = st.tuples(minutes, minutes).filter(lambda p: p[0] != p[1]).map(lambda p: SendWindow(*p))


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
    start = month_start(_utc(2026, 11, 30, 20), ASTANA)
    assert (start.year, start.month, start.day, start.hour) == (2026, 12, 1, 0)


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
