"""Monotonic time, token bucket and backoff: the session's notion of time, kept injectable.

Time here is monotonic seconds (floats), never wall-clock datetimes, and the names say so:
:class:`Monotonic`, :class:`LoopMonotonic`, :class:`ManualMonotonic`.

Everything here is a pure function of an explicit ``now`` except :class:`LoopMonotonic`,
so tests drive them with a :class:`ManualMonotonic` and never sleep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
import time
from dataclasses import dataclass
from typing import Protocol

_EPSILON = 1e-9
#: How long a bucket whose rate is 0 (no share of the grant yet) asks the caller to wait
#: before trying again.
IDLE_WAIT = 0.05


class Monotonic(Protocol):
    """Monotonic time in seconds, and a sleep on the same time line."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopMonotonic:
    """The running event loop's monotonic clock (the default)."""

    def now(self) -> float:
        # the loop's time() is time.monotonic(); calling it directly saves a lookup
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualMonotonic:
    """Monotonic time that moves only when :meth:`advance` is called (for tests).

    ``sleep`` parks the caller until time has been advanced past its deadline.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(seconds, 0.0), next(self._order), future))
        await future

    @property
    def sleepers(self) -> int:
        """How many coroutines are parked in :meth:`sleep`."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose deadline has passed."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """How a throttling response slows the bind down.

    Each ESME_RTHROTTLED (or queue-full) pauses sending for ``pause`` seconds, doubled
    for each consecutive one up to ``max_pause``, and multiplies the rate by
    ``decrease`` (never below ``min_rate``); every ``recovery_interval`` seconds without
    a throttle the rate grows by ``increase`` times the configured rate (additive
    increase, multiplicative decrease).
    """

    pause: float = 0.1
    max_pause: float = 5.0
    decrease: float = 0.5
    min_rate: float = 1.0
    increase: float = 0.1
    recovery_interval: float = 1.0


class TokenBucket:
    """Transactions-per-second limit with AIMD slow-down on throttling.

    ``rate=None`` means unlimited (only throttle pauses apply). ``burst`` is the bucket
    size: how many requests may go back to back after an idle period.
    """

    def __init__(
        self, rate: float | None, burst: int = 1, policy: ThrottlePolicy | None = None
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive or None")
        self.configured_rate = rate
        self.rate = rate
        self.burst = max(1, burst)
        self.policy = policy or ThrottlePolicy()
        self._tokens = float(self.burst)
        self._stamp: float | None = None
        self._paused_until = -math.inf
        self._consecutive = 0
        self._last_throttle = -math.inf
        self._last_recovery = -math.inf

    def take(self, now: float) -> float:
        """Take one token if one is available and return 0.0; otherwise take nothing and
        return how many seconds to wait before trying again."""
        if now < self._paused_until:
            return self._paused_until - now
        self._recover(now)
        if self.rate is None:
            return 0.0
        if self.rate <= 0.0:
            self._stamp = now
            return IDLE_WAIT
        if self._stamp is not None:
            self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1.0 - _EPSILON:  # float residue must not cause a 1e-17 s wait
            self._tokens = max(0.0, self._tokens - 1.0)
            return 0.0
        return (1.0 - self._tokens) / self.rate

    def set_rate(self, rate: float, now: float, burst: int | None = None) -> None:
        """Change the configured rate at run time (this node's share of an account's grant
        changed), and the burst with it (None keeps it). Tokens earned so far are counted
        at the old rate first, so a lower rate takes effect at once; a rate slowed by
        throttling keeps its ratio to the configured one. ``0`` stops taking
        (:data:`IDLE_WAIT` between tries) until a positive rate.

        The burst is what lets a pacer that wakes late (timers fire on the loop's next turn,
        at millisecond granularity) catch up: with a burst of 1 every late wake-up is lost,
        ~6-20 % of the rate at 100/s on a loaded host; with ``b`` a wake-up up to ``b - 1``
        periods late loses nothing."""
        if rate < 0:
            raise ValueError("rate must be >= 0")
        if self.rate is not None and self.rate > 0 and self._stamp is not None:
            self._tokens = min(
                float(self.burst), self._tokens + max(0.0, now - self._stamp) * self.rate
            )
            self._stamp = max(self._stamp, now)
        if burst is not None:  # a smaller burst drops what the bucket holds beyond it
            self.burst = max(1, burst)
            self._tokens = min(self._tokens, float(self.burst))
        old_configured, old_rate = self.configured_rate, self.rate
        self.configured_rate = rate
        if old_configured and old_rate is not None and 0 < old_rate < old_configured:
            self.rate = rate * old_rate / old_configured
        else:
            self.rate = rate

    def paused_for(self, now: float) -> float:
        """Seconds left of the pause that throttling started (0.0: not paused)."""
        return max(0.0, self._paused_until - now)

    def throttled(self, now: float) -> None:
        """The SMSC said slow down: pause, and lower the rate."""
        p = self.policy
        self._consecutive += 1
        pause = min(p.max_pause, p.pause * 2.0 ** (self._consecutive - 1))
        self._paused_until = max(self._paused_until, now + pause)
        self._last_throttle = now
        self._last_recovery = now
        self._tokens = 0.0
        self._stamp = now + pause
        if self.rate is not None and self.rate > 0:
            self.rate = max(min(p.min_rate, self.rate), self.rate * p.decrease)

    def accepted(self, now: float) -> None:
        """A request went through: consecutive throttles are over."""
        self._consecutive = 0

    def _recover(self, now: float) -> None:
        p = self.policy
        if self.rate is None or self.configured_rate is None or self.configured_rate <= 0:
            return
        if self.rate >= self.configured_rate or now - self._last_recovery < p.recovery_interval:
            return
        steps = int((now - self._last_recovery) / p.recovery_interval)
        self.rate = min(self.configured_rate, self.rate + steps * p.increase * self.configured_rate)
        self._last_recovery += steps * p.recovery_interval


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: attempt ``n`` (0-based) waits a random time
    in ``[base*2**n / 2, base*2**n]``, capped at ``cap``."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap, self.base * 2.0 ** min(attempt, 30))
        draw: float = (rng or random).random()
        return ceiling / 2 + draw * ceiling / 2
