"""The aiohttp application factory: one :func:`create_app`, one :func:`setup_routes`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from dispatcher import console
from dispatcher.db import Database, open_database
from dispatcher.engine.build import Program
from dispatcher.kernel.clock import Clock, OffsetClock, SystemClock
from dispatcher.metrics import install_metrics, metrics_middleware
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.charging import charging_from_settings
from dispatcher.program.events import EventDesk
from dispatcher.runtime import SESSION, engine_ctx
from dispatcher.scheduler import scheduler_ctx
from dispatcher.settings import Settings
from dispatcher.tokens import TokenRepository
from dispatcher.web import (
    audit_api,
    calendar_api,
    campaigns_api,
    gateway,
    health,
    inbox_api,
    openapi,
    partners_api,
    subscribers,
    uploads,
)
from dispatcher.web.auth import auth_middleware, check_routes
from dispatcher.web.errors import error_middleware
from dispatcher.web.keys import (
    BONUS,
    CLOCK,
    DATABASE,
    EVENTS,
    MEMBERSHIP,
    READINESS,
    SETTINGS,
    TOKENS,
    USSD,
)

MAX_REQUEST_BYTES = 1 << 20  # JSON bodies; uploads stream and set their own limits


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/readyz/engine", health.engine_readyz)
    app.router.add_get("/api/v1/whoami", health.whoami)
    app.router.add_get("/api/v1/tokens", health.list_tokens)
    gateway.setup_routes(app)
    subscribers.setup_routes(app)
    campaigns_api.setup_routes(app)
    inbox_api.setup_routes(app)
    calendar_api.setup_routes(app)
    partners_api.setup_routes(app)
    audit_api.setup_routes(app)
    console.setup(app)
    openapi.setup_routes(app)
    install_metrics(app, lambda: app.get(SESSION))


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    database: Database | None = None,
    scheduler: bool | None = None,
    engine: bool | None = None,
) -> web.Application:
    """The service's application. With ``database`` given (tests), it is used as is and not
    closed; otherwise the database is opened and migrated on start-up and closed on cleanup.
    ``scheduler`` runs the bonus jobs (default: ``settings.scheduler_enabled`` when the app
    opens its own database; off when a test passes ``database``). ``engine`` likewise
    binds to the SMSC and runs the dispatch engine (``settings.engine_enabled``).
    """
    app = web.Application(
        middlewares=[
            metrics_middleware,
            error_middleware,
            uploads.admission_middleware,
            auth_middleware,
        ],
        client_max_size=MAX_REQUEST_BYTES,
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or _clock(settings)
    app[READINESS] = {}
    uploads.install(app, settings)
    if database is not None:
        _attach_database(app, database)
    else:
        app.cleanup_ctx.append(_database_ctx)
    if scheduler is None:
        scheduler = settings.scheduler_enabled and database is None
    if scheduler:
        app.cleanup_ctx.append(scheduler_ctx)
    if engine is None:
        engine = settings.engine_enabled and database is None
    if engine:
        app.cleanup_ctx.append(engine_ctx)
    app.on_cleanup.append(_close_bonus)
    if settings.public_https and settings.hsts_max_age:
        app.on_response_prepare.append(_strict_transport_security)
    setup_routes(app)
    check_routes(app)
    return app


async def _strict_transport_security(request: web.Request, response: web.StreamResponse) -> None:
    """HSTS on every answer when the public URL is https: browsers that once reached the
    service through the TLS proxy never fall back to plain http."""
    max_age = request.app[SETTINGS].hsts_max_age
    response.headers.setdefault("Strict-Transport-Security", f"max-age={max_age}")


def _clock(settings: Settings) -> Clock:
    if settings.clock_start is not None:
        return OffsetClock(settings.clock_start)
    return SystemClock()


def _attach_database(app: web.Application, database: Database) -> None:
    app[DATABASE] = database
    app[TOKENS] = TokenRepository(database.pool)
    _attach_program(app)


def _attach_program(app: web.Application) -> None:
    """The bonus ledger, membership, USSD and events desks over the database."""
    pool, settings = app[DATABASE].pool, app[SETTINGS]
    bonus = BonusLedger(pool, settings, app[CLOCK], charging_from_settings(settings))
    app[BONUS] = bonus
    program = Program.over(pool, settings, bonus)
    app[MEMBERSHIP] = program.membership
    app[USSD] = program.ussd
    app[EVENTS] = EventDesk(pool, program.membership)


async def _close_bonus(app: web.Application) -> None:
    if BONUS in app:
        await app[BONUS].close()


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_database(app[SETTINGS]) as database:
        _attach_database(app, database)
        yield
