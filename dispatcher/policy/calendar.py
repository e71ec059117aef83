"""Program time: the one place that knows the program's zone, send calendar and month.

Every rule that asks "is the window open?", "when does it close?", "which month is it?" or
"what time is it for the subscriber?" asks a :class:`ProgramCalendar` (``settings.calendar``),
never the zone and the hours separately: R3 (monthly grant), R4 (one activation a month), R7
(month counters) and R8 (the send calendar) then agree by construction.

R8's calendar is weekly hours and dated exceptions (:class:`~dispatcher.policy.hours.SendHours`):
each local day has at most one window, which opens that day (and may run past midnight). The
window's edges are local wall-clock times, so on a day the zone changes its offset (DST) the
window is that much shorter or longer; an edge in the skipped hour moves forward by the gap
(02:30 is 03:30), one in the repeated hour is its first occurrence, and a window this leaves
empty is closed that day. A window that ends exactly when the next day's opens is one open
span: it closes (and the SMPP validity ends) at the later close.

Pure: every answer is a function of the calendar and an explicit ``now``; the walk to the next
opening is bounded by :data:`~dispatcher.policy.hours.MAX_CLOSED_DAYS`, which a checked
calendar (:func:`~dispatcher.policy.hours.apply`) never exceeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from dispatcher.policy.hours import MAX_CLOSED_DAYS, CalendarError, DayException, SendHours
from dispatcher.policy.window import SendWindow
from smpp.timefmt import format_absolute

DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class CalendarDay:
    """One local day: its ``hours`` (None: closed), the span they open that day in UTC
    (None when closed), and the dated exception that set them, if one did."""

    day: date
    hours: SendWindow | None
    opens_at: datetime | None
    closes_at: datetime | None
    exception: DayException | None


@dataclass(frozen=True, slots=True, init=False)
class ProgramCalendar:
    """The program's local time (``zone``, Astana by default) and its send hours (R8)."""

    zone: ZoneInfo
    hours: SendHours

    def __init__(self, zone: ZoneInfo, hours: SendHours | SendWindow) -> None:
        """``hours``: the calendar, or one window that is the same every day."""
        object.__setattr__(self, "zone", zone)
        if isinstance(hours, SendWindow):
            hours = SendHours.every_day(hours)
        object.__setattr__(self, "hours", hours)

    def local(self, instant: datetime) -> datetime:
        """``instant`` as the program's local time (what subscribers and operators read)."""
        return instant.astimezone(self.zone)

    def month_of(self, now: datetime) -> date:
        """The local calendar month ``now`` falls in, as its first day (R3, R4, R7)."""
        return self.local(now).date().replace(day=1)

    def span_on(self, day: date) -> tuple[datetime, datetime] | None:
        """The (opened, closes) UTC instants of the window that opens on local ``day``; None
        when the day is closed (or its window is empty across a DST change)."""
        window = self.hours.on(day)
        if window is None:
            return None
        opened, closes = window.occurrence(day, self.zone)
        return (opened, closes) if opened < closes else None

    def day(self, day: date) -> CalendarDay:
        """Local ``day`` as the calendar has it (the console's and the API's days)."""
        span = self.span_on(day)
        hours = self.hours.on(day) if span is not None else None
        opens, closes = span if span is not None else (None, None)
        return CalendarDay(day, hours, opens, closes, self.hours.exception(day))

    def days(self, now: datetime, count: int) -> list[CalendarDay]:
        """``count`` local days from the one ``now`` falls in."""
        today = self.local(now).date()
        return [self.day(today + n * DAY) for n in range(count)]

    def _containing(self, now: datetime) -> tuple[date, datetime] | None:
        """The local day whose window contains ``now``, and that window's close (UTC)."""
        today = self.local(now).date()
        for day in (today - DAY, today):
            span = self.span_on(day)
            if span is not None and span[0] <= now < span[1]:
                return day, span[1]
        return None

    def is_open(self, now: datetime) -> bool:
        """Whether messages that wait for the window (R8) may leave at ``now``."""
        return self._containing(now) is not None

    def closes_at(self, now: datetime) -> datetime | None:
        """When the open span containing ``now`` closes (UTC), or None when it is shut: the
        close of its window, or of the next day's when that opens right then."""
        found = self._containing(now)
        if found is None:
            return None
        day, closes = found
        for _ in range(MAX_CLOSED_DAYS):  # touching windows chain; a checked calendar breaks
            day += DAY
            span = self.span_on(day)
            if span is None or span[0] > closes:
                break
            closes = max(closes, span[1])
        return closes

    def next_open(self, now: datetime) -> datetime:
        """The first instant ≥ ``now`` at which the window is open (UTC; ``now`` if open),
        across closed weekdays and holidays."""
        if self.is_open(now):
            return now.astimezone(UTC)
        today = self.local(now).date()
        for n in range(-1, MAX_CLOSED_DAYS + 2):
            span = self.span_on(today + n * DAY)
            if span is not None and span[0] > now:
                return span[0]
        raise CalendarError(
            [f"the send calendar does not open within {MAX_CLOSED_DAYS} days of {today}"]
        )

    def describe(self, instant: datetime) -> str:
        """The hours in words, and the exception of ``instant``'s local day if it has one:
        ``10:00-21:00``, ``mon-fri 10:00-21:00; sat-sun closed (2027-03-22: closed, Nauryz)``."""
        text = self.hours.weekly_text()
        exception = self.hours.exception(self.local(instant).date())
        if exception is not None:
            hours = "closed" if exception.hours is None else str(exception.hours)
            note = f", {exception.note}" if exception.note else ""
            text += f" ({exception.day}: {hours}{note})"
        return text

    def validity_until(self, now: datetime) -> str | None:
        """The absolute SMPP ``validity_period`` ending when the open window closes (R8: the
        SMSC must not deliver late), written in local time with its offset; None when shut."""
        closes = self.closes_at(now)
        return None if closes is None else format_absolute(self.local(closes))

    def finish_at(self, start: datetime, messages: int, rate_per_second: float) -> datetime:
        """When ``messages`` written at ``rate_per_second``, only while the window is open
        (R8), from ``start`` on, are all written: the first open instant ≥ ``start``, plus
        ``messages / rate`` seconds of open window, walked across the closed hours (days).

        The end lies in (opened, closes] of a window — work that exactly fills a window ends
        at its close, never in the closed hours after it — and is ``start + messages / rate``
        when that fits in the window open at ``start``. ``start`` itself for no message.
        """
        if rate_per_second <= 0:
            raise ValueError("the rate must be positive")
        if messages <= 0:
            return start
        left = timedelta(seconds=messages / rate_per_second)
        at = self.next_open(start)
        while True:
            closes = self.closes_at(at)
            assert closes is not None  # next_open answers an open instant
            if at + left <= closes:
                return at + left
            left -= closes - at
            at = self.next_open(closes)
