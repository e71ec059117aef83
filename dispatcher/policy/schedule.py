"""What a campaign's schedule means against the send window (R8), said before it happens.

A campaign may be scheduled at any time, but partner messages leave only while the window is
open: a ``start_at`` outside it sends nothing until the window opens, and an ``end_at`` that
comes before the first opening after the start sends nothing at all (the campaign expires
first). These are warnings, not refusals: the operator may mean it. Pure: a function of the
calendar, the two times and an explicit ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dispatcher.policy.calendar import ProgramCalendar

START_OUTSIDE_WINDOW = "start_outside_window"
ENDS_BEFORE_WINDOW_OPENS = "ends_before_window_opens"


@dataclass(frozen=True, slots=True)
class ScheduleWarning:
    """``code`` (stable), the ``field`` it is about, a sentence in local time, and when the
    window opens."""

    code: str
    field: str
    message: str
    opens_at: datetime

    def as_dict(self, calendar: ProgramCalendar) -> dict[str, str]:
        return {
            "code": self.code,
            "field": self.field,
            "message": self.message,
            "opens_at": calendar.local(self.opens_at).isoformat(timespec="seconds"),
        }


def schedule_warnings(
    calendar: ProgramCalendar,
    start_at: datetime | None,
    end_at: datetime | None,
    now: datetime,
) -> list[ScheduleWarning]:
    """The warnings for a schedule seen at ``now``: a future ``start_at`` outside the window;
    an ``end_at`` at or before the window's first opening from the start (or from ``now``
    when there is no future start: a campaign cannot start in the past)."""
    warnings: list[ScheduleWarning] = []
    begins = start_at if start_at is not None and start_at > now else now
    opens = calendar.next_open(begins)
    window = f"{calendar.describe(begins)} ({calendar.zone.key})"
    if start_at is not None and start_at > now and opens > start_at:
        message = (
            f"start_at {_local(calendar, start_at)} is outside the send window {window}: "
            f"nothing is sent before it opens at {_local(calendar, opens)}"
        )
        warnings.append(ScheduleWarning(START_OUTSIDE_WINDOW, "start_at", message, opens))
    if end_at is not None and end_at > begins and end_at <= opens:
        message = (
            f"end_at {_local(calendar, end_at)} comes before the send window {window} opens "
            f"at {_local(calendar, opens)}: nothing will be sent at all"
        )
        warnings.append(ScheduleWarning(ENDS_BEFORE_WINDOW_OPENS, "end_at", message, opens))
    return warnings


def _local(calendar: ProgramCalendar, instant: datetime) -> str:
    """Local time to the minute (seconds only when there are some)."""
    local = calendar.local(instant)
    return local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")
