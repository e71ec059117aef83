"""The calendar page: the send calendar (R8) as the service applies it — open now or not, the
weekly hours, the dated exceptions ahead (public holidays: closed or other hours) and the next
days' hours, in the program's local time. Every signed-in role sees it: partners plan their
campaigns by it. The same data as ``GET /api/v1/calendar``."""

from __future__ import annotations

from aiohttp import web

from dispatcher.console.guard import render, view
from dispatcher.kernel.states import Role
from dispatcher.web.calendar_api import calendar_json
from dispatcher.web.keys import CLOCK, SETTINGS

#: Days listed on the page, from today.
DAYS = 14


@view(Role.VIEWER)
async def calendar_page(request: web.Request) -> web.StreamResponse:
    now = request.app[CLOCK].now()
    calendar = request.app[SETTINGS].calendar
    shown = calendar_json(calendar, now, DAYS)
    today = shown["days"][0]["date"]
    ahead = [e for e in shown["exceptions"] if e["date"] >= today]
    return render(request, "calendar.html", {"calendar": shown, "ahead": ahead, "days": DAYS})
