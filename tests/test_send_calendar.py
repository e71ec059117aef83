"""The send calendar (issue 15, R8), pure: weekly hours and dated exceptions behind
ProgramCalendar. Properties of next_open, closes_at and finish_at over random weekly hours,
exceptions and zones (with DST), checked against the spans written out day by day; the
entries' grammar and the refusals that name their line; the settings that build it."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dispatcher.kernel.clock import load_zone
from dispatcher.policy.calendar import ProgramCalendar
from dispatcher.policy.hours import (
    MAX_CLOSED_DAYS,
    CalendarError,
    Entry,
    SendHours,
    apply,
    parse_entries,
)
from dispatcher.policy.window import SendWindow
from dispatcher.settings import ConfigError, load_settings
from smpp.timefmt import parse_smpp_time

ASTANA = load_zone("Asia/Almaty")
BERLIN = load_zone("Europe/Berlin")  # DST: 2026-03-29 02:00 → 03:00, 2026-10-25 03:00 → 02:00
DAILY = SendWindow.parse("10:00-21:00")
SECOND = timedelta(seconds=1)
FIRST_DAY = date(2026, 2, 20)

minutes = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))
windows = st.tuples(minutes, minutes).filter(lambda p: p[0] != p[1]).map(lambda p: SendWindow(*p))
day_hours = st.one_of(st.none(), windows, windows.filter(lambda w: not w.crosses_midnight))
instants = st.datetimes(
    min_value=datetime(2026, 2, 20), max_value=datetime(2026, 5, 10), timezones=st.just(UTC)
)


def _overlaps(first: SendWindow | None, second: SendWindow | None) -> bool:
    return bool(first and second and first.crosses_midnight and second.start < first.end)


@st.composite
def calendars(draw: st.DrawFn) -> ProgramCalendar:
    """Random weekly hours and exceptions (single days and closed runs) near the instants,
    with a day that would overlap the day before closed instead, built through apply()."""
    week = [draw(day_hours) for _ in range(7)]
    for n in range(7):
        if _overlaps(week[n - 1], week[n]):
            week[n] = None
    if all(w is None for w in week):
        week[draw(st.integers(0, 6))] = DAILY
    zone = draw(st.sampled_from([ASTANA, BERLIN]))
    exceptions: dict[date, SendWindow | None] = {}
    for _ in range(draw(st.integers(0, 12))):
        day = FIRST_DAY + timedelta(days=draw(st.integers(0, 90)))
        length = draw(st.sampled_from([1, 1, 1, 3, 20]))
        hours = None if length > 1 else draw(day_hours)
        for n in range(length):
            exceptions[day + timedelta(days=n)] = hours

    def hours_on(day: date) -> SendWindow | None:
        return exceptions[day] if day in exceptions else week[day.weekday()]

    for day in sorted(exceptions):
        before, after = hours_on(day - timedelta(days=1)), hours_on(day + timedelta(days=1))
        if _overlaps(before, exceptions[day]) or _overlaps(exceptions[day], after):
            exceptions[day] = None
    entries = [Entry(frozenset({n}), None, w, f"day {n}", "") for n, w in enumerate(week)]
    entries += [Entry(frozenset(), (d, d), w, f"{d}", "") for d, w in exceptions.items()]
    try:
        hours = apply(SendHours.every_day(DAILY), entries)
    except CalendarError:
        assume(False)
        raise
    return ProgramCalendar(zone, hours)


def _spans(calendar: ProgramCalendar, start: datetime, end: datetime) -> list[tuple[datetime, ...]]:
    """Every window opening between two days before ``start`` and a day after ``end``,
    written out from the hours of each day (the oracle)."""
    spans = []
    day = calendar.local(start).date() - timedelta(days=2)
    while day <= calendar.local(end).date() + timedelta(days=1):
        window = calendar.hours.on(day)
        if window is not None:
            ends = day + timedelta(days=1) if window.crosses_midnight else day
            opened = datetime.combine(day, window.start, calendar.zone).astimezone(UTC)
            closes = datetime.combine(ends, window.end, calendar.zone).astimezone(UTC)
            if opened < closes:
                spans.append((opened, closes))
        day += timedelta(days=1)
    return spans


def _open_in(spans: list[tuple[datetime, ...]], at: datetime) -> bool:
    return any(opened <= at < closes for opened, closes in spans)


@settings(max_examples=300, deadline=None)
@given(calendar=calendars(), now=instants)
def test_next_open_is_open_and_nothing_before_it_is(
    calendar: ProgramCalendar, now: datetime
) -> None:
    """next_open(t) is open, and no window of any day is open between t and it."""
    opens = calendar.next_open(now)
    assert opens >= now and calendar.is_open(opens)
    spans = _spans(calendar, now, opens)
    assert _open_in(spans, opens)
    assert calendar.is_open(now) is _open_in(spans, now)
    if opens > now:
        assert not any(opened < opens and closes > now for opened, closes in spans)
        assert not calendar.is_open(opens - timedelta(microseconds=1))


@settings(max_examples=300, deadline=None)
@given(calendar=calendars(), now=instants)
def test_closes_at_is_the_first_closed_instant(calendar: ProgramCalendar, now: datetime) -> None:
    """closes_at(t) of an open t: open from t up to it without a gap, closed at it; None
    when shut. The validity is that close in local time."""
    closes = calendar.closes_at(now)
    if closes is None:
        assert not calendar.is_open(now) and calendar.validity_until(now) is None
        return
    assert closes > now and not calendar.is_open(closes)
    assert calendar.is_open(closes - timedelta(microseconds=1))
    spans = _spans(calendar, now, closes)
    at = now
    while at < closes:  # the windows cover [now, closes) one after the other
        at = max(c for o, c in spans if o <= at < c)
    validity = calendar.validity_until(now)
    assert validity is not None and parse_smpp_time(validity) == closes


@settings(max_examples=200, deadline=None)
@given(
    calendar=calendars(),
    start=instants,
    n=st.integers(0, 3_000_000),
    rate=st.floats(20.0, 2_000.0, allow_nan=False),
)
def test_finish_at_spends_exactly_the_message_time_in_open_hours(
    calendar: ProgramCalendar, start: datetime, n: int, rate: float
) -> None:
    """Open time between start and finish_at is n / rate (to a microsecond a window), and
    the finish is inside a window or at its close, never in closed hours."""
    finish = calendar.finish_at(start, n, rate)
    if n == 0:
        assert finish == start
        return
    spans = _spans(calendar, start, finish)
    spent = sum(
        (min(c, finish) - max(o, start) for o, c in spans if o < finish and c > start), timedelta()
    )
    assert abs(spent - timedelta(seconds=n / rate)) <= timedelta(microseconds=len(spans) + 1)
    assert calendar.is_open(finish - timedelta(microseconds=1))


def _calendar(text: str, zone: ZoneInfo = ASTANA) -> ProgramCalendar:
    entries = parse_entries(text, "test", separator=";")
    return ProgramCalendar(zone, apply(SendHours.every_day(DAILY), entries))


def _at(*args: int, zone: ZoneInfo = ASTANA) -> datetime:
    return datetime(*args, tzinfo=zone).astimezone(UTC)


def test_default_is_ten_to_nine_every_day() -> None:
    """No setting: 10:00-21:00 Astana every day, no exception."""
    calendar = load_settings({}).calendar
    assert calendar.hours == SendHours.every_day(DAILY) and str(calendar.hours) == "10:00-21:00"


def test_weekly_hours_and_a_holiday() -> None:
    """Mon-Fri 10-21, Sat 11-19, Sun closed, 2026-12-16 (Wednesday) closed: Saturday 19:00
    closes until Monday 10:00; the holiday's eve closes until the day after."""
    calendar = _calendar("mon-fri 10:00-21:00; sat 11:00-19:00; sun closed; 2026-12-16 closed")
    assert calendar.closes_at(_at(2026, 12, 5, 12)) == _at(2026, 12, 5, 19)
    assert calendar.next_open(_at(2026, 12, 5, 19)) == _at(2026, 12, 7, 10)
    assert not calendar.is_open(_at(2026, 12, 6, 12))
    assert calendar.next_open(_at(2026, 12, 15, 21)) == _at(2026, 12, 17, 10)
    assert calendar.finish_at(_at(2026, 12, 15, 20), 7200, 1.0) == _at(2026, 12, 17, 11)


def test_other_hours_on_a_date() -> None:
    """2027-03-08 12:00-18:00: opens at noon, closes at 18:00, validity ends then."""
    calendar = _calendar("2027-03-08 12:00-18:00")
    assert calendar.next_open(_at(2027, 3, 8, 10)) == _at(2027, 3, 8, 12)
    assert calendar.validity_until(_at(2027, 3, 8, 17)) == "270308180000020+"


def test_a_window_crossing_midnight_belongs_to_the_day_it_opens() -> None:
    """fri 22:00-02:00 with Saturday closed: open Saturday 01:00 (Friday's window), shut at
    02:00 until Monday's 10:00."""
    calendar = _calendar("daily 10:00-21:00; fri 22:00-02:00; sat-sun closed")
    assert calendar.is_open(_at(2026, 12, 5, 1))
    assert calendar.closes_at(_at(2026, 12, 4, 23)) == _at(2026, 12, 5, 2)
    assert calendar.next_open(_at(2026, 12, 5, 2)) == _at(2026, 12, 7, 10)


def test_touching_windows_are_one_span() -> None:
    """mon 18:00-24:00 then tue 00:00-02:00: one span, closing (and valid until) Tue 02:00."""
    calendar = _calendar("mon 18:00-24:00; tue 00:00-02:00")
    assert calendar.closes_at(_at(2026, 11, 30, 19)) == _at(2026, 12, 1, 2)
    assert calendar.validity_until(_at(2026, 11, 30, 23, 59)) == "261201020000020+"


def test_dst_days_are_shorter_longer_or_empty() -> None:
    """Europe/Berlin: on the spring day 10:00-21:00 is 10 h of UTC, on the autumn day 12 h
    (wall-clock hours); 02:10-02:50 falls in the skipped hour and moves forward by it, and
    02:30-03:10 is left empty: closed that day."""
    calendar = _calendar("daily 01:00-04:00", BERLIN)
    assert calendar.closes_at(_at(2026, 3, 29, 1, 30, zone=BERLIN)) - _at(
        2026, 3, 29, 1, 30, zone=BERLIN
    ) == timedelta(hours=1, minutes=30)
    span = calendar.span_on(date(2026, 10, 25))
    assert span is not None and span[1] - span[0] == timedelta(hours=4)
    moved = _calendar("daily 02:10-02:50", BERLIN).span_on(date(2026, 3, 29))
    assert moved == (_at(2026, 3, 29, 3, 10, zone=BERLIN), _at(2026, 3, 29, 3, 50, zone=BERLIN))
    gap = _calendar("daily 02:30-03:10", BERLIN)
    assert gap.span_on(date(2026, 3, 29)) is None
    assert gap.next_open(_at(2026, 3, 29, 0, zone=BERLIN)) == _at(2026, 3, 30, 2, 30, zone=BERLIN)


def test_grammar() -> None:
    """Names, ranges (wrapping), lists, daily, dates, date ranges and notes."""
    (entry,) = parse_entries("Fri-Mon 09:00-18:00", "t")
    assert entry.weekdays == {4, 5, 6, 0}
    (entry,) = parse_entries("monday,wed closed", "t")
    assert entry.weekdays == {0, 2} and entry.hours is None
    (entry,) = parse_entries("2027-03-21..2027-03-23 closed  # Nauryz", "t")
    assert entry.dates == (date(2027, 3, 21), date(2027, 3, 23)) and entry.note == "Nauryz"
    hours = apply(SendHours.every_day(DAILY), [entry])
    assert [e.day.day for e in hours.exceptions] == [21, 22, 23]


def test_file_errors_name_every_bad_line() -> None:
    """Each bad line is reported with its number and text, all at once."""
    text = "# hours\nmon-fri 10:00-21:00\nsat 11-19\n\nfunday closed\n2027-02-30 closed\n"
    with pytest.raises(CalendarError) as caught:
        parse_entries(text, "cal.txt")
    problems = caught.value.problems
    assert [p.split(" (")[0] for p in problems] == [
        "cal.txt line 3",
        "cal.txt line 5",
        "cal.txt line 6",
    ]
    assert "expected HH:MM" in problems[0] and "unknown day 'funday'" in problems[1]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("daily closed", "never open"),
        (
            "sun 22:00-06:00; mon 05:00-12:00",
            r"test entry 1 \(sun 22:00-06:00\) overlaps test entry 2",
        ),
        ("2027-01-01..2027-12-31 closed; 2028-01-01..2028-01-31 closed", "closed 396 days"),
        ("2027-01-01..2028-01-02 closed", "at most 366 days"),
        ("2027-03-09..2027-03-08 closed", "ends before it starts"),
        ("mon", "expected DAYS HOURS"),
    ],
)
def test_refused_calendars_name_the_entry(text: str, says: str) -> None:
    """A calendar that is never open, overlapping, closed over a year, or misspelt."""
    with pytest.raises(CalendarError, match=says):
        _calendar(text)


def test_the_walk_to_the_next_opening_crosses_a_long_closure() -> None:
    """Closed for MAX_CLOSED_DAYS days: the next opening is the day after."""
    first = date(2027, 1, 1)
    last = first + timedelta(days=MAX_CLOSED_DAYS - 1)
    calendar = _calendar(f"{first}..{last} closed")
    assert calendar.next_open(_at(2027, 1, 1, 12)) == _at(
        *(last + timedelta(days=1)).timetuple()[:3], 10
    )


def test_settings_layers_window_file_and_hours(tmp_path: Path) -> None:
    """SMARTD_SEND_WINDOW every day, the file's entries over it, SMARTD_SEND_HOURS over
    both for the days it names."""
    path = tmp_path / "calendar.txt"
    path.write_text("sat-sun closed\n2027-03-22 closed # Nauryz\n", encoding="utf-8")
    s = load_settings(
        {
            "SMARTD_SEND_WINDOW": "09:00-20:00",
            "SMARTD_SEND_CALENDAR_FILE": str(path),
            "SMARTD_SEND_HOURS": "sat 11:00-19:00",
        }
    )
    assert s.calendar.hours.weekly_text() == "mon-fri 09:00-20:00; sat 11:00-19:00; sun closed"
    exception = s.calendar.hours.exception(date(2027, 3, 22))
    assert exception is not None and exception.hours is None and exception.note == "Nauryz"


def test_bad_settings_stop_the_start_naming_the_line(tmp_path: Path) -> None:
    """A bad entry, a bad file line, a missing file: ConfigError naming where."""
    with pytest.raises(ConfigError, match=r"SMARTD_SEND_HOURS entry 2 \(sat 11-19\)"):
        load_settings({"SMARTD_SEND_HOURS": "mon-fri 10:00-21:00; sat 11-19"})
    path = tmp_path / "calendar.txt"
    path.write_text("mon-fri 10:00-21:00\nsun nope\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{path} line 2"):
        load_settings({"SMARTD_SEND_CALENDAR_FILE": str(path)})
    with pytest.raises(ConfigError, match="cannot read the calendar file"):
        load_settings({"SMARTD_SEND_CALENDAR_FILE": str(tmp_path / "missing.txt")})
    with pytest.raises(ConfigError, match="never open"):
        load_settings({"SMARTD_SEND_HOURS": "mon-sun closed"})


def test_the_eta_waits_over_a_closed_sunday() -> None:
    """The campaign's ETA walks the calendar: Saturday 18:55 with 600 s of sending left
    (6 messages at 0.01/s), 300 s go before Saturday's 19:00 close, the rest from Monday
    10:00 (Sunday closed): done Monday 10:05."""
    from campaigns.models import DeliveryTally
    from campaigns.reports import delivery_summary
    from dispatcher.kernel.states import DeliveryState

    calendar = _calendar("mon-fri 10:00-21:00; sat 11:00-19:00; sun closed")
    late = _at(2026, 11, 28, 18, 55)
    tallies = [
        DeliveryTally(DeliveryState.QUEUED, None, 6, 0, None, None),
        DeliveryTally(
            DeliveryState.DELIVERED, None, 3, 3, late - timedelta(minutes=2), late - SECOND * 30
        ),
    ]
    _, progress = delivery_summary(tallies, late, calendar.finish_at)
    assert progress.estimated_completion == _at(2026, 11, 30, 10, 5)
