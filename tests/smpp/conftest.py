"""Fixtures for the SMPP tests: a simulator on an ephemeral loopback port, and sessions
configured against it with short timers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from smpp.config import Address, SessionConfig
from smpp.inbound import InboundEvent
from smpp.ratelimit import Backoff
from smpp.session import Session
from smpp.simulator import SimulatorOptions, SmscSimulator
from smpp.text import Part

SOURCE = Address.alphanumeric("SMART")
DEST = Address.international("77011234567")


def part(text: str = "hello") -> Part:
    """A one-part GSM message with plain ASCII text (same bytes in GSM 7 and ASCII)."""
    return Part(short_message=text.encode("ascii"), data_coding=0)


async def until(predicate: Callable[[], bool]) -> None:
    """Yield to the loop until ``predicate`` holds (bounded; no wall-clock sleeping).

    For what signals nothing public we could await: the manual clock's sleepers, a
    session's state and counters.
    """
    async with asyncio.timeout(5):
        while not predicate():  # noqa: ASYNC110 - sleep(0) yields, it does not wait
            await asyncio.sleep(0)


def config(port: int, **overrides: Any) -> SessionConfig:
    """A session config for tests: fast reconnect, short timers."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "system_id": "esme",
        "password": "secret",
        "reconnect": Backoff(base=0.01, cap=0.05),
        "response_timeout": 5.0,
        "bind_timeout": 2.0,
        "unbind_timeout": 1.0,
    }
    values.update(overrides)
    return SessionConfig(**values)


@pytest.fixture
async def sim() -> AsyncIterator[SmscSimulator]:
    simulator = SmscSimulator(SimulatorOptions(credentials={"esme": "secret"}, seed=1))
    await simulator.start()
    yield simulator
    await simulator.stop()


class Inbox:
    """An inbound handler that records events and lets a test wait for them."""

    def __init__(self) -> None:
        self.events: list[InboundEvent] = []
        self._changed = asyncio.Event()
        self.fail = False
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, event: InboundEvent) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise RuntimeError("handler failed on purpose")
        self.events.append(event)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, count: int) -> list[InboundEvent]:
        """Wait (at most 5 s) until ``count`` events have been handled."""
        async with asyncio.timeout(5.0):
            while len(self.events) < count:
                await self._changed.wait()
        return self.events


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


SessionFactory = Callable[..., Awaitable[Session]]


@pytest.fixture
async def bound_session(sim: SmscSimulator, inbox: Inbox) -> AsyncIterator[SessionFactory]:
    """Factory: a started, bound session against ``sim``; closed after the test."""
    sessions: list[Session] = []

    async def make(wait: bool = True, **overrides: Any) -> Session:
        clock = overrides.pop("clock", None)
        session = Session(config(sim.port, **overrides), inbox, clock=clock)
        sessions.append(session)
        session.start()
        if wait:
            async with asyncio.timeout(5):
                await session.wait_bound()
        return session

    yield make
    for session in sessions:
        async with asyncio.timeout(10):
            await session.close()
