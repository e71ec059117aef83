"""A fake charging system on 127.0.0.1 for tests: idempotent by key, and able to misbehave.

Each request takes the next behaviour from ``script`` (then "ok"): "ok"; "503" (fails, applies
nothing); "400" (refused); "lost" (applies the credit, then drops the connection before
answering); "slow" (applies, then answers after ``slow_for`` seconds). It can also simply not
be running (connection refused). ``applied`` holds each idempotency key applied, once; a
forfeit leaves it there and adds the key to ``forfeited``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from tests.net import free_port


class FakeCharging:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.script: list[str] = []
        self.slow_for = 0.5
        self.applied: dict[str, dict[str, Any]] = {}
        self.forfeited: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []
        self.main_balance = "1234.50"  # what GET /balances answers as the main balance
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/credits", self._credit)
        app.router.add_post("/forfeits", self._forfeit)
        app.router.add_get("/balances/{msisdn}", self._balance)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _credit(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        self.requests.append(("credit", key))
        behaviour = self.script.pop(0) if self.script else "ok"
        if behaviour in ("503", "400"):
            return web.json_response({"error": behaviour}, status=int(behaviour))
        assert key is not None, "a credit without an idempotency key"
        body = await request.json()
        if key not in self.applied and key not in self.forfeited:
            self.applied[key] = body
        return await self._answer(request, behaviour, {"reference": f"ref-{key}"})

    async def _forfeit(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("Idempotency-Key")
        self.requests.append(("forfeit", key))
        behaviour = self.script.pop(0) if self.script else "ok"
        if behaviour in ("503", "400"):
            return web.json_response({"error": behaviour}, status=int(behaviour))
        assert key is not None
        self.forfeited.add(key)  # a tombstone: a late credit of this key is not applied
        return await self._answer(request, behaviour, {"status": "forfeited"})

    async def _balance(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(("balance", None))
        return web.json_response({"main": self.main_balance, "currency": "KZT"})

    async def _answer(
        self, request: web.Request, behaviour: str, body: dict[str, Any]
    ) -> web.StreamResponse:
        if behaviour == "lost":
            assert request.transport is not None
            request.transport.close()  # applied, but the answer never arrives
        if behaviour == "slow":
            await asyncio.sleep(self.slow_for)
        return web.json_response(body)
