"""``GET /api/v1/calendar``: the send calendar (R8) as the service applies it.

Its weekly hours, its dated exceptions (public holidays: closed, or other hours), whether it
is open now, when it closes or next opens, and the next ``?days=`` local days' hours (1-366,
default 14), all in the program's local time. Any signed-in role may read it: it is how
partners learn when their messages can go.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from dispatcher.kernel.states import Role
from dispatcher.policy.calendar import CalendarDay, ProgramCalendar
from dispatcher.policy.hours import DAY_NAMES, DayException
from dispatcher.policy.window import SendWindow
from dispatcher.web.auth import requires
from dispatcher.web.keys import CLOCK, SETTINGS
from dispatcher.web.params import query_int

PATH = "/api/v1/calendar"
DEFAULT_DAYS = 14
MAX_DAYS = 366


def setup_routes(app: web.Application) -> None:
    app.router.add_get(PATH, get_calendar)


@requires(Role.VIEWER)
async def get_calendar(request: web.Request) -> web.Response:
    """The calendar and the next ``days`` days (400 for a ``days`` out of 1-366)."""
    days = query_int(request, "days", 1, MAX_DAYS) or DEFAULT_DAYS
    calendar = request.app[SETTINGS].calendar
    return web.json_response(calendar_json(calendar, request.app[CLOCK].now(), days))


def calendar_json(calendar: ProgramCalendar, now: datetime, days: int) -> dict[str, Any]:
    """The calendar seen at ``now``, instants in local time with their offset."""
    closes = calendar.closes_at(now)
    return {
        "zone": calendar.zone.key,
        "now": _local(calendar, now),
        "open_now": closes is not None,
        "closes_at": _local(calendar, closes),
        "next_opening": _local(calendar, calendar.next_open(closes or now)),
        "weekly_text": calendar.hours.weekly_text(),
        "weekly": [
            {"day": name, **_hours(hours)}
            for name, hours in zip(DAY_NAMES, calendar.hours.week, strict=True)
        ],
        "exceptions": [exception_json(e) for e in calendar.hours.exceptions],
        "days": [day_json(calendar, day) for day in calendar.days(now, days)],
    }


def _hours(hours: SendWindow | None) -> dict[str, Any]:
    if hours is None:
        return {"hours": None, "opens": None, "closes": None}
    return {"hours": str(hours), "opens": f"{hours.start:%H:%M}", "closes": f"{hours.end:%H:%M}"}


def exception_json(exception: DayException) -> dict[str, Any]:
    return {"date": exception.day.isoformat(), **_hours(exception.hours), "note": exception.note}


def day_json(calendar: ProgramCalendar, day: CalendarDay) -> dict[str, Any]:
    return {
        "date": day.day.isoformat(),
        "weekday": DAY_NAMES[day.day.weekday()],
        "open": day.opens_at is not None,
        **_hours(day.hours),
        "opens_at": _local(calendar, day.opens_at),
        "closes_at": _local(calendar, day.closes_at),
        "exception": day.exception is not None,
        "note": day.exception.note if day.exception is not None else "",
    }


def _local(calendar: ProgramCalendar, instant: datetime | None) -> str | None:
    return None if instant is None else calendar.local(instant).isoformat(timespec="seconds")
