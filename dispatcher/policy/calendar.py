"""Program time: the one place that knows the program's zone, send window and month.

Every rule that asks "is the window open?", "when does it close?", "which month is it?" or
"what time is it for the subscriber?" asks a :class:`ProgramCalendar` (``settings.calendar``),
never the zone and the window separately: R3 (monthly grant), R4 (one activation a month), R7
(month counters) and R8 (the send window) then agree by construction.

Today the window is the same every day (:class:`~dispatcher.policy.window.SendWindow`). R8's
weekly hours and holidays would change this class only: its answers are what callers use.
Pure: every answer is a function of the calendar and an explicit ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from dispatcher.policy.window import SendWindow
from smpp.timefmt import format_absolute


@dataclass(frozen=True, slots=True)
class ProgramCalendar:
    """The program's local time (``zone``, Astana by default) and its send window (R8)."""

    zone: ZoneInfo
    window: SendWindow

    def local(self, instant: datetime) -> datetime:
        """``instant`` as the program's local time (what subscribers and operators read)."""
        return instant.astimezone(self.zone)

    def month_of(self, now: datetime) -> date:
        """The local calendar month ``now`` falls in, as its first day (R3, R4, R7)."""
        return self.local(now).date().replace(day=1)

    def is_open(self, now: datetime) -> bool:
        """Whether messages that wait for the window (R8) may leave at ``now``."""
        return self.window.is_open(now, self.zone)

    def closes_at(self, now: datetime) -> datetime | None:
        """When the window open at ``now`` closes (UTC), or None when it is shut."""
        return self.window.closes_at(now, self.zone)

    def next_open(self, now: datetime) -> datetime:
        """The first instant ≥ ``now`` at which the window is open (UTC; ``now`` if open)."""
        return self.window.next_open(now, self.zone)

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
