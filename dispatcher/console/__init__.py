"""The web console for marketing ops: server-rendered pages under ``/console``.

:func:`setup` is the one entry point (called from ``dispatcher.web.app.setup_routes``): it
sets up Jinja2 (templates in ``dispatcher/templates``, autoescaped), the static files
(``dispatcher/static``) and the routes. Security design: :mod:`dispatcher.console.guard`
and :mod:`dispatcher.console.sessions`.
"""

from __future__ import annotations

import mimetypes
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import jinja2
from aiohttp import web

from dispatcher.console import (
    auth_views,
    calendar_views,
    campaign_views,
    create_views,
    edit_views,
    inbox_views,
    partner_views,
    subscriber_views,
)
from dispatcher.console.guard import refusal_page, secured, see_other
from dispatcher.web.auth import public
from dispatcher.web.errors import HTML_ERRORS
from dispatcher.web.keys import SETTINGS

PACKAGE = Path(__file__).resolve().parent.parent
STATIC = web.AppKey("console_static", dict[str, tuple[bytes, str]])
ID = r"/{id:[0-9]+}"  # past bigint: 404 page (path_id)


def setup(app: web.Application) -> None:
    """Templates, static files and every console route on ``app``."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(PACKAGE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    zone = app[SETTINGS].calendar.zone
    env.filters["local"] = lambda value: local_time(value, zone)
    env.filters["num"] = number
    app[STATIC] = load_static(PACKAGE / "static")
    app[HTML_ERRORS] = refusal_page
    _routes(app.router)


def _routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", home)  # a browser at the bare address (the demo prints it)
    router.add_get("/console", home)
    router.add_get("/console/static/{name}", static_file)
    router.add_get("/console/login", auth_views.login_form)
    router.add_post("/console/login", auth_views.login)
    router.add_post("/console/logout", auth_views.logout)
    router.add_get("/console/campaigns", campaign_views.campaign_list)
    router.add_get("/console/campaigns/new", create_views.new_campaign)
    router.add_post("/console/campaigns/new", create_views.create_campaign)
    router.add_post("/console/preview", create_views.preview_texts)
    router.add_get("/console/campaigns" + ID, campaign_views.campaign_page)
    router.add_post("/console/campaigns" + ID + "/audience", campaign_views.audience_upload)
    router.add_get("/console/campaigns" + ID + "/edit", edit_views.edit_form)
    router.add_post("/console/campaigns" + ID + "/edit", edit_views.save_edit)
    router.add_post("/console/campaigns" + ID + "/duplicate", edit_views.duplicate_campaign)
    router.add_post("/console/campaigns" + ID + "/approve", campaign_views.approve_campaign)
    router.add_get("/console/campaigns" + ID + "/results.csv", campaign_views.results_download)
    router.add_get(
        "/console/campaigns" + ID + "/audience/rejected.csv", campaign_views.rejected_rows_csv
    )
    for name, handler in campaign_views.TRANSITION_VIEWS.items():
        router.add_post(f"/console/campaigns{ID}/{name}", handler)
    for name, handler in campaign_views.CONFIRM_VIEWS.items():
        router.add_get(f"/console/campaigns{ID}/{name}", handler)
    router.add_get("/console/subscribers", subscriber_views.subscriber_lookup)
    router.add_get("/console/inbox", inbox_views.inbox_page)
    router.add_get("/console/calendar", calendar_views.calendar_page)
    router.add_get("/console/partners", partner_views.partners_page)


@public
async def home(request: web.Request) -> web.StreamResponse:
    """``/`` and ``/console`` → the campaigns list (which sends a stranger to sign in)."""
    return see_other("/console/campaigns")


def load_static(directory: Path) -> dict[str, tuple[bytes, str]]:
    """Every file of ``directory`` by name, read once: only these names are ever served."""
    files = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            files[path.name] = (path.read_bytes(), content_type)
    return files


@public
async def static_file(request: web.Request) -> web.StreamResponse:
    """A file of ``dispatcher/static`` (CSS, JS, icon); 404 for any other name."""
    found = request.app[STATIC].get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    body, content_type = found
    response = web.Response(body=body, content_type=content_type)
    response.headers["Cache-Control"] = "public, max-age=300"
    secured(response)
    return response


def local_time(value: datetime | str | None, zone: ZoneInfo) -> str:
    """An instant (or ISO string) as ``YYYY-MM-DD HH:MM`` in the program's zone."""
    if value is None or value == "":
        return "—"
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    if instant.tzinfo is None:
        return instant.strftime("%Y-%m-%d")
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def number(value: int | float | str) -> str:
    """Thousands separated by a thin space: 1 234 567; a count shown as text ("< 5", R11)
    as it is."""
    if isinstance(value, str):
        return value
    return f"{value:,}".replace(",", "\u202f")
