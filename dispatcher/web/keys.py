"""Typed application keys shared by the handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from dispatcher.db import Database
from dispatcher.kernel.clock import Clock
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.events import EventDesk
from dispatcher.program.membership import Membership
from dispatcher.program.ussd import UssdDesk
from dispatcher.settings import Settings
from dispatcher.tokens import TokenInfo, TokenRepository

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
DATABASE = web.AppKey("database", Database)
TOKENS = web.AppKey("tokens", TokenRepository)
MEMBERSHIP = web.AppKey("membership", Membership)
USSD = web.AppKey("ussd", UssdDesk)
EVENTS = web.AppKey("events", EventDesk)
#: The bonus ledger (grants, activation, balance, sweeps, charging outbox).
BONUS = web.AppKey("bonus", BonusLedger)
#: Readiness checks beyond the database: name → "is it ready now?" (SMPP bound, ...).
READINESS = web.AppKey("readiness", dict[str, Callable[[], bool]])
#: The authenticated caller of the current request.
CALLER = web.RequestKey("caller", TokenInfo)

__all__ = [
    "BONUS",
    "CALLER",
    "CLOCK",
    "DATABASE",
    "EVENTS",
    "MEMBERSHIP",
    "READINESS",
    "SETTINGS",
    "TOKENS",
    "USSD",
    "Handler",
    "TokenInfo",
]
