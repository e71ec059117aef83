"""The aiohttp application factory: one :func:`create_app`, one :func:`setup_routes`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from aiohttp import web

from dispatcher.clock import Clock, SystemClock
from dispatcher.db import Database, open_database
from dispatcher.program import texts
from dispatcher.program.membership import Membership
from dispatcher.program.mo import MoDesk
from dispatcher.program.service import EventDesk, NoBonus
from dispatcher.program.ussd import UssdDesk
from dispatcher.settings import Settings
from dispatcher.states import Language
from dispatcher.tokens import TokenRepository
from dispatcher.web import campaigns_api, gateway, health, subscribers
from dispatcher.web.auth import auth_middleware, check_routes
from dispatcher.web.errors import error_middleware
from dispatcher.web.keys import (
    CLOCK,
    DATABASE,
    EVENTS,
    MEMBERSHIP,
    MO,
    READINESS,
    SETTINGS,
    TOKENS,
    USSD,
)

MAX_REQUEST_BYTES = 1 << 20  # JSON bodies; uploads stream and set their own limits


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/api/v1/whoami", health.whoami)
    app.router.add_get("/api/v1/tokens", health.list_tokens)
    gateway.setup_routes(app)
    subscribers.setup_routes(app)
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
    _attach_program(app)


def _attach_program(app: web.Application) -> None:
    """Membership, USSD, events and MO desks over the database (and the bonus ledger)."""
    pool, settings = app[DATABASE].pool, app[SETTINGS]
    membership = Membership(settings, NoBonus())
    app[MEMBERSHIP] = membership
    app[USSD] = UssdDesk(pool, membership, _no_activation, _no_balance)
    app[EVENTS] = EventDesk(pool, membership)
    app[MO] = MoDesk(membership, settings.short_code, settings.dnc_code)


async def _no_activation(msisdn: str, language: Language, now: datetime) -> str:
    return texts.text("nothing_to_activate", language)


async def _no_balance(msisdn: str, language: Language, now: datetime) -> str:
    return texts.text("balance_none", language)


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_database(app[SETTINGS]) as database:
        _attach_database(app, database)
        yield
