"""The aiohttp application factory: one :func:`create_app`, one :func:`setup_routes`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from dispatcher.clock import Clock, SystemClock
from dispatcher.db import Database, open_database
from dispatcher.settings import Settings
from dispatcher.tokens import TokenRepository
from dispatcher.web import campaigns_api, health
from dispatcher.web.auth import auth_middleware, check_routes
from dispatcher.web.errors import error_middleware
from dispatcher.web.keys import CLOCK, DATABASE, READINESS, SETTINGS, TOKENS

MAX_REQUEST_BYTES = 1 << 20  # JSON bodies; uploads stream and set their own limits


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/api/v1/whoami", health.whoami)
    app.router.add_get("/api/v1/tokens", health.list_tokens)
    campaigns_api.setup_routes(app)


def create_app(
    settings: Settings, *, clock: Clock | None = None, database: Database | None = None
) -> web.Application:
    """The service's application. With ``database`` given (tests), it is used as is and not
    closed; otherwise the database is opened and migrated on start-up and closed on cleanup.
    """
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=MAX_REQUEST_BYTES
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[READINESS] = {}
    if database is not None:
        _attach_database(app, database)
    else:
        app.cleanup_ctx.append(_database_ctx)
    setup_routes(app)
    check_routes(app)
    return app


def _attach_database(app: web.Application, database: Database) -> None:
    app[DATABASE] = database
    app[TOKENS] = TokenRepository(database.pool)


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_database(app[SETTINGS]) as database:
        _attach_database(app, database)
        yield
