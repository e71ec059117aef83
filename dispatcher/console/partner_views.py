"""The partners page (issue 15): partners ranked by opt-out rate over a period, from the
opt-outs attributed to their campaigns (:mod:`dispatcher.program.optouts`). The operator's
admins see exact counts; partner-facing roles see them as the reports do (R11)."""

from __future__ import annotations

from aiohttp import web

from campaigns.disclosure import sees_exact_counts
from dispatcher.console.guard import USER, render, view
from dispatcher.kernel.states import Role
from dispatcher.program.optouts import (
    Period,
    PeriodRefused,
    parse_period,
    partner_standings,
    shown_partners,
)
from dispatcher.web.keys import DATABASE, SETTINGS


@view(Role.VIEWER)
async def partners_page(request: web.Request) -> web.StreamResponse:
    """``?since=YYYY-MM-DD&until=YYYY-MM-DD`` (Astana dates, until included); a bad bound is
    named on the page and the whole history shown."""
    settings = request.app[SETTINGS]
    since, until = request.query.get("since", ""), request.query.get("until", "")
    error = None
    try:
        period = parse_period(since, until, settings.calendar.zone)
    except PeriodRefused as exc:
        error, period = exc.message, Period()
    exact = sees_exact_counts(request[USER].role)
    min_cell = 1 if exact else int(settings.report_min_cell)
    standings = await partner_standings(request.app[DATABASE].pool, period)
    context = {
        "since": since,
        "until": until,
        "error": error,
        "exact": exact,
        "span_days": settings.inbox_attribution_days,
        "partners": shown_partners(standings, min_cell),
    }
    return render(request, "partners.html", context)
