"""A real aiohttp server on 127.0.0.1 for tests, with a token per role."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp.test_utils import TestClient, TestServer

from dispatcher.db import Database
from dispatcher.kernel.clock import Clock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app


@dataclass
class Api:
    client: TestClient
    tokens: dict[Role, str]

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}


@asynccontextmanager
async def running_api(settings: Settings, clock: Clock, database: Database) -> AsyncIterator[Api]:
    repo = TokenRepository(database.pool)
    tokens = {role: (await repo.create(f"test-{role}", role))[0] for role in Role}
    app = create_app(settings, clock=clock, database=database)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Api(client, tokens)
