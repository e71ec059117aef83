"""Typed application keys shared by the handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from dispatcher.clock import Clock
from dispatcher.db import Database
from dispatcher.settings import Settings
from dispatcher.tokens import TokenInfo, TokenRepository

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
DATABASE = web.AppKey("database", Database)
TOKENS = web.AppKey("tokens", TokenRepository)
#: Readiness checks beyond the database: name → "is it ready now?" (SMPP bound, ...).
READINESS = web.AppKey("readiness", dict[str, Callable[[], bool]])
#: The authenticated caller of the current request.
CALLER = web.RequestKey("caller", TokenInfo)

__all__ = ["CALLER", "CLOCK", "DATABASE", "READINESS", "SETTINGS", "TOKENS", "Handler", "TokenInfo"]
