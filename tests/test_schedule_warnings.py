"""Schedule warnings against the send window (dispatcher/policy/schedule.py), pure: for any
start and end, a warning exactly when nothing can go before the window opens, or at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.policy.calendar import ProgramCalendar
from dispatcher.policy.schedule import (
    ENDS_BEFORE_WINDOW_OPENS,
    START_OUTSIDE_WINDOW,
    schedule_warnings,
)
from dispatcher.policy.window import SendWindow

CALENDAR = ProgramCalendar(ZoneInfo("Asia/Almaty"), SendWindow.parse("10:00-21:00"))
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # 17:00 Astana
_seconds = st.integers(min_value=1, max_value=4 * 24 * 3600)


@given(ahead=_seconds)
def test_a_future_start_is_warned_exactly_when_the_window_is_shut(ahead: int) -> None:
    """A start outside the window is warned, with the opening that follows it; inside, not."""
    start = NOW + timedelta(seconds=ahead)
    codes = [w.code for w in schedule_warnings(CALENDAR, start, None, NOW)]
    assert codes == ([] if CALENDAR.is_open(start) else [START_OUTSIDE_WINDOW])
    for warning in schedule_warnings(CALENDAR, start, None, NOW):
        assert warning.opens_at == CALENDAR.next_open(start) > start
        assert CALENDAR.is_open(warning.opens_at)
        assert not CALENDAR.is_open(warning.opens_at - timedelta(seconds=1))


@given(ahead=_seconds, length=_seconds)
def test_an_end_is_warned_exactly_when_no_open_second_precedes_it(ahead: int, length: int) -> None:
    """``ends_before_window_opens`` exactly when the window is shut from the start to the
    end (checked second by second around the opening)."""
    start = NOW + timedelta(seconds=ahead)
    end = start + timedelta(seconds=length)
    warned = ENDS_BEFORE_WINDOW_OPENS in [
        w.code for w in schedule_warnings(CALENDAR, start, end, NOW)
    ]
    assert warned == (CALENDAR.next_open(start) >= end)


def test_a_past_start_counts_from_now() -> None:
    """A start already past is no warning; the end is judged from now (21:30 local)."""
    now = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)
    past = now - timedelta(hours=10)
    end = datetime(2026, 11, 24, 4, 59, tzinfo=UTC)  # 09:59 Astana
    codes = [w.code for w in schedule_warnings(CALENDAR, past, end, now)]
    assert codes == [ENDS_BEFORE_WINDOW_OPENS]
    later = [w.code for w in schedule_warnings(CALENDAR, past, end + timedelta(minutes=2), now)]
    assert later == []
