"""Subscriber endpoints: the subscriber view, its message history, why a campaign did (not)
reach it, and the bulk import."""

from __future__ import annotations

from aiohttp import web

from campaigns.csvstream import TooLarge
from dispatcher.kernel.msisdn import InvalidMsisdn
from dispatcher.kernel.numbering import lookup_number
from dispatcher.kernel.states import Role
from dispatcher.program.imports import import_subscribers
from dispatcher.program.lookup import subscriber_view
from dispatcher.program.why import MAX_PAGE, message_history, not_home_mobile, number_info, why_not
from dispatcher.web.auth import requires
from dispatcher.web.errors import ApiError
from dispatcher.web.keys import CLOCK, DATABASE, MEMBERSHIP, SETTINGS
from dispatcher.web.params import path_id, query_int
from dispatcher.web.uploads import spooled_upload

CHUNK = 1 << 16


@requires(Role.VIEWER)
async def get_subscriber(request: web.Request) -> web.Response:
    msisdn = _msisdn(request)
    app = request.app
    view = await subscriber_view(app[DATABASE].pool, app[SETTINGS], msisdn, app[CLOCK].now())
    if view is None:
        info = number_info(app[SETTINGS], msisdn)
        if info.home_mobile:
            raise ApiError(404, "not_found", "no such subscriber")
        message = f"no such subscriber: {not_home_mobile(app[SETTINGS], info)}"
        raise ApiError(404, "not_found", message, {"number": info.as_dict()})
    return web.json_response(view)


@requires(Role.VIEWER)
async def get_messages(request: web.Request) -> web.Response:
    """The number's messages, newest first: campaign deliveries and program service messages
    (``source``), ``?limit=`` (default 50) from ``?offset=``; ``next_offset`` None at the end."""
    msisdn = _msisdn(request)
    limit = query_int(request, "limit", 1, MAX_PAGE) or 50
    offset = query_int(request, "offset", 0, 1_000_000) or 0
    app = request.app
    rows = await message_history(app[DATABASE].pool, msisdn, limit + 1, offset)
    more = len(rows) > limit
    return web.json_response(
        {
            "msisdn": msisdn,
            "number": number_info(app[SETTINGS], msisdn).as_dict(),
            "messages": rows[:limit],
            "limit": limit,
            "offset": offset,
            "next_offset": offset + limit if more else None,
        }
    )


@requires(Role.VIEWER)
async def get_why(request: web.Request) -> web.Response:
    """Why the number did (not) get the campaign: one answer of ``program.why.ANSWERS``."""
    msisdn = _msisdn(request)
    campaign_id = path_id(request)
    app = request.app
    pool = app[DATABASE].pool
    answer = await why_not(pool, app[SETTINGS], msisdn, campaign_id, app[CLOCK].now())
    if answer is None:
        raise ApiError(404, "not_found", f"no campaign {campaign_id}")
    return web.json_response(answer)


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


def _msisdn(request: web.Request) -> str:
    """The path's number in any written form (``lookup_number``), or 400."""
    raw = request.match_info["msisdn"]
    try:
        return lookup_number(raw, request.app[SETTINGS].default_region)
    except InvalidMsisdn as exc:
        raise ApiError(400, "invalid_msisdn", exc.reason, {"value": "…" + raw[-4:]}) from exc


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/subscribers/import", import_csv)
    app.router.add_get("/api/v1/subscribers/{msisdn}", get_subscriber)
    app.router.add_get("/api/v1/subscribers/{msisdn}/messages", get_messages)
    app.router.add_get("/api/v1/subscribers/{msisdn}/campaigns/{id}", get_why)
