"""The send window (R8): the local hours in which partner messages may leave.

A window is a pair of local wall-clock times. ``10:00-21:00`` is open from 10:00 inclusive to
21:00 exclusive; ``22:00-06:00`` crosses midnight. Every answer is computed from an explicit
``now`` and zone, so the policy is pure and tested exhaustively.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class SendWindow:
    """Daily interval [start, end) of local time; ``start > end`` crosses midnight."""

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("a send window must not be empty (start equals end)")
        for t in (self.start, self.end):
            if t.tzinfo is not None or t.second or t.microsecond:
                raise ValueError("window edges are naive local times in whole minutes")

    @classmethod
    def parse(cls, text: str) -> SendWindow:
        """``"HH:MM-HH:MM"`` → window; raises ``ValueError`` on anything else."""
        start_text, sep, end_text = text.strip().partition("-")
        if not sep:
            raise ValueError(f"expected HH:MM-HH:MM, got {text!r}")
        return cls(_parse_hhmm(start_text), _parse_hhmm(end_text))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @property
    def crosses_midnight(self) -> bool:
        return self.start > self.end

    def is_open(self, now: datetime, zone: ZoneInfo) -> bool:
        """Whether ``now`` lies inside the window."""
        return self.current(now, zone) is not None

    def current(self, now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime] | None:
        """The (opened, closes) instants in UTC of the window containing ``now``, or None."""
        local_day = now.astimezone(zone).date()
        for day in (local_day - timedelta(days=1), local_day):
            opened, closes = self.occurrence(day, zone)
            if opened <= now < closes:
                return opened, closes
        return None

    def closes_at(self, now: datetime, zone: ZoneInfo) -> datetime | None:
        """When the window containing ``now`` closes (UTC), or None when it is shut."""
        span = self.current(now, zone)
        return None if span is None else span[1]

    def next_open(self, now: datetime, zone: ZoneInfo) -> datetime:
        """The first instant ≥ ``now`` at which the window is open (``now`` itself if open)."""
        if self.is_open(now, zone):
            return now.astimezone(UTC)
        local_day = now.astimezone(zone).date()
        for offset in range(-1, 3):
            opened, _ = self.occurrence(local_day + timedelta(days=offset), zone)
            if opened > now:
                return opened
        raise AssertionError("a daily window opens within two days")  # pragma: no cover

    def occurrence(self, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """The window that opens on local ``day``, as UTC instants."""
        end_day = day + timedelta(days=1) if self.crosses_midnight else day
        opened = _to_utc(datetime.combine(day, self.start), zone)
        closes = _to_utc(datetime.combine(end_day, self.end), zone)
        return opened, closes


def _to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    # fold=0 picks the earlier of an ambiguous wall time; a nonexistent one (DST gap) maps
    # forward by the gap, which is what "the window opens at 10:00" should mean there.
    return local.replace(tzinfo=zone).astimezone(UTC)


def _parse_hhmm(text: str) -> time:
    hours, sep, minutes = text.strip().partition(":")
    if not sep or len(minutes) != 2 or not hours.isdigit() or not minutes.isdigit():
        raise ValueError(f"expected HH:MM, got {text!r}")
    if hours == "24" and minutes == "00":
        return time(0, 0)
    return time(int(hours), int(minutes))
