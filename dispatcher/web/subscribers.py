"""Subscriber endpoints: the subscriber view and the bulk import."""

from __future__ import annotations

from aiohttp import web

from campaigns.csvstream import TooLarge
from dispatcher.kernel.states import Role
from dispatcher.program.imports import import_subscribers
from dispatcher.program.lookup import subscriber_view
from dispatcher.web.auth import requires
from dispatcher.web.bodies import msisdn_value
from dispatcher.web.errors import ApiError
from dispatcher.web.keys import CLOCK, DATABASE, MEMBERSHIP, SETTINGS
from dispatcher.web.uploads import spooled_upload

CHUNK = 1 << 16


@requires(Role.VIEWER)
async def get_subscriber(request: web.Request) -> web.Response:
    msisdn = msisdn_value(request, request.match_info["msisdn"])
    app = request.app
    view = await subscriber_view(app[DATABASE].pool, app[SETTINGS], msisdn, app[CLOCK].now())
    if view is None:
        raise ApiError(404, "not_found", "no such subscriber")
    return web.json_response(view)


@requires(Role.ADMIN)
async def import_csv(request: web.Request) -> web.Response:
    """CSV ``msisdn,status,language`` streamed into a bulk upsert; bad rows by line number."""
    app = request.app
    settings = app[SETTINGS]
    limit = settings.audience_max_bytes
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge("import", limit)
    body = request.content.iter_chunked(CHUNK)
    async with spooled_upload(request, body, "import", limit) as chunks:
        result = await import_subscribers(
            app[DATABASE].pool,
            app[MEMBERSHIP],
            chunks,
            app[CLOCK].now(),
            region=settings.default_region,
            max_bytes=limit,
        )
    return web.json_response(result.as_dict())


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/subscribers/import", import_csv)
    app.router.add_get("/api/v1/subscribers/{msisdn}", get_subscriber)
