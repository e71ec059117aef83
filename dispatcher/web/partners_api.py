"""``GET /api/v1/partners``: partners ranked by opt-out rate (issue 15,
:mod:`dispatcher.program.optouts`). ``?since=&until=`` bound the period (a date in Astana
time, or an instant with its offset; until exclusive); a bad one is a 400 ``invalid_query``.
Partner-facing roles (viewer, marketer) see counts as in the reports (R11)."""

from __future__ import annotations

from aiohttp import web

from campaigns.disclosure import sees_exact_counts
from dispatcher.kernel.states import Role
from dispatcher.program.optouts import PeriodRefused, parse_period, partner_standings, partners_json
from dispatcher.web.auth import requires
from dispatcher.web.errors import ApiError
from dispatcher.web.keys import CALLER, DATABASE, SETTINGS

PATH = "/api/v1/partners"


def setup_routes(app: web.Application) -> None:
    app.router.add_get(PATH, get_partners)


@requires(Role.VIEWER)
async def get_partners(request: web.Request) -> web.Response:
    """The ranking: per partner campaigns, reached, opt-outs by kind and the rate."""
    settings = request.app[SETTINGS]
    try:
        period = parse_period(
            request.query.get("since"), request.query.get("until"), settings.calendar.zone
        )
    except PeriodRefused as exc:
        raise ApiError(400, "invalid_query", exc.message, {"field": exc.field}) from None
    min_cell = 1 if sees_exact_counts(request[CALLER].role) else int(settings.report_min_cell)
    standings = await partner_standings(request.app[DATABASE].pool, period)
    body = partners_json(standings, period, min_cell, settings.inbox_attribution_days)
    return web.json_response(body)
