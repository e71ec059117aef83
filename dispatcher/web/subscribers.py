"""Subscriber endpoints: the subscriber view and the bulk import."""

from __future__ import annotations

from aiohttp import web

from dispatcher.program.service import subscriber_view
from dispatcher.states import Role
from dispatcher.web.auth import requires
from dispatcher.web.bodies import msisdn_value
from dispatcher.web.errors import ApiError
from dispatcher.web.keys import CLOCK, DATABASE, SETTINGS


@requires(Role.VIEWER)
async def get_subscriber(request: web.Request) -> web.Response:
    msisdn = msisdn_value(request, request.match_info["msisdn"])
    app = request.app
    view = await subscriber_view(app[DATABASE].pool, app[SETTINGS], msisdn, app[CLOCK].now())
    if view is None:
        raise ApiError(404, "not_found", "no such subscriber")
    return web.json_response(view)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/subscribers/{msisdn}", get_subscriber)
