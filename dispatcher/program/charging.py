"""The charging system as the bonus ledger sees it (R4, R5, R6; invariant 5).

:class:`ChargingAdapter` is the interface; :class:`LedgerCharging` (the default) keeps
bonuses in the service's own ledger, and :class:`HttpChargingAdapter` talks JSON to a real
charging system. Every credit and forfeit carries the grant id as its idempotency key: the
ledger may send the same key again after a timeout or a crash, and the charging system must
apply it once. A forfeit of a key it never credited is a no-op, and a credit arriving after
the forfeit of its key must not be applied (the forfeit is a tombstone).

Errors split in two: :class:`ChargingUnavailable` (connection refused, timeout, 5xx, 429:
worth retrying) and :class:`ChargingRejected` (any other 4xx: retrying will not help).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

import aiohttp
import structlog

from dispatcher.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class CreditScope:
    """Where bonus units may be spent (R5): on-net calls, SMS and data only."""

    services: tuple[str, ...] = ("voice", "sms", "data")
    network: str = "on_net"
    roaming: bool = False
    international: bool = False
    transferable: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "services": list(self.services),
            "network": self.network,
            "roaming": self.roaming,
            "international": self.international,
            "transferable": self.transferable,
        }


BONUS_SCOPE = CreditScope()


@dataclass(frozen=True, slots=True)
class CreditRequest:
    """One credit of a grant's units; ``key`` (the grant id) makes repeats harmless."""

    key: str
    msisdn: str
    units: int
    expires_at: datetime
    scope: CreditScope = BONUS_SCOPE

    def as_json(self) -> dict[str, Any]:
        return {
            "grant_id": self.key,
            "msisdn": self.msisdn,
            "units": self.units,
            "expires_at": self.expires_at.isoformat(),
            "scope": self.scope.as_json(),
        }


@dataclass(frozen=True, slots=True)
class CreditReceipt:
    """The charging system's answer to an applied credit."""

    reference: str | None = None


@dataclass(frozen=True, slots=True)
class ChargingBalance:
    """What the charging system reports for a number (R6); any part may be unknown."""

    main_amount: Decimal | None = None
    currency: str | None = None
    bonus_units: int | None = None

    def main_text(self) -> str | None:
        if self.main_amount is None:
            return None
        return f"{self.main_amount} {self.currency}" if self.currency else str(self.main_amount)


class ChargingError(Exception):
    """A charging call did not succeed."""


class ChargingUnavailable(ChargingError):
    """Transient: refused, timed out, 5xx or 429. The same key may be sent again later."""


class ChargingRejected(ChargingError):
    """Permanent: the charging system refused the request (4xx); retrying will not help."""


class ChargingAdapter(Protocol):
    """What the bonus ledger needs of a charging system; see the module docstring."""

    async def credit(self, request: CreditRequest) -> CreditReceipt: ...

    async def forfeit(self, key: str, msisdn: str) -> None: ...

    async def balance(self, msisdn: str) -> ChargingBalance | None: ...

    async def close(self) -> None: ...


class LedgerCharging:
    """The built-in ledger: bonuses live in ``bonus_grants`` alone; calls succeed at once."""

    async def credit(self, request: CreditRequest) -> CreditReceipt:
        return CreditReceipt(reference=None)

    async def forfeit(self, key: str, msisdn: str) -> None:
        return None

    async def balance(self, msisdn: str) -> ChargingBalance | None:
        return None

    async def close(self) -> None:
        return None


def backoff_delay(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Delay before try ``attempt + 1`` after ``attempt`` failed: exponential, capped, jittered.

    ``jitter`` in [0, 1) spreads the delay over [half, full] of ``base * 2**(attempt-1)`` so
    replicas retrying together do not arrive together.
    """
    full = min(cap, base * 2.0 ** max(attempt - 1, 0))
    return full * (0.5 + 0.5 * jitter)


Sleep = Callable[[float], Awaitable[None]]


@dataclass
class HttpChargingAdapter:
    """A charging system over HTTP/JSON.

    ``POST {base}/credits`` and ``POST {base}/forfeits`` with header ``Idempotency-Key``
    = grant id; 2xx and 409 (key already applied) are success. ``GET {base}/balances/{msisdn}``
    → ``{"main": "1234.50", "currency": "KZT", "bonus_units": 420}`` (fields optional).
    Each call is tried up to ``attempts`` times, with backoff and jitter, on transient
    failures only.
    """

    base_url: str
    token: str = ""
    timeout: float = 2.0
    attempts: int = 3
    backoff: float = 0.2
    sleep: Sleep = asyncio.sleep
    rand: Callable[[], float] = random.random
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    async def credit(self, request: CreditRequest) -> CreditReceipt:
        data = await self._call("POST", "/credits", request.key, request.as_json())
        ref = data.get("reference") if isinstance(data, dict) else None
        return CreditReceipt(reference=str(ref) if ref is not None else None)

    async def forfeit(self, key: str, msisdn: str) -> None:
        await self._call("POST", "/forfeits", key, {"grant_id": key, "msisdn": msisdn})

    async def balance(self, msisdn: str) -> ChargingBalance | None:
        data = await self._call("GET", f"/balances/{msisdn}", None, None)
        return _parse_balance(data) if isinstance(data, dict) else None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, key: str | None, body: Any) -> Any:
        for attempt in range(1, self.attempts + 1):
            try:
                return await self._once(method, path, key, body)
            except ChargingUnavailable as exc:
                if attempt == self.attempts:
                    raise
                delay = backoff_delay(attempt, self.backoff, 10 * self.backoff, self.rand())
                log.info("charging retry", path=path, attempt=attempt, error=str(exc))
                await self.sleep(delay)
        raise AssertionError("unreachable")

    async def _once(self, method: str, path: str, key: str | None, body: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if key is not None:
            headers["Idempotency-Key"] = key
        url = self.base_url.rstrip("/") + path
        try:
            async with self._client().request(method, url, json=body, headers=headers) as resp:
                return await _read(resp)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            raise ChargingUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def _client(self) -> aiohttp.ClientSession:
        # Created lazily: a session belongs to the running event loop.
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session


async def _read(resp: aiohttp.ClientResponse) -> Any:
    if resp.status >= 500 or resp.status == 429:
        raise ChargingUnavailable(f"HTTP {resp.status}")
    if resp.status == 409:
        return {}  # the key was applied before: the repeat is a success
    if resp.status >= 400:
        raise ChargingRejected(f"HTTP {resp.status}: {(await resp.text())[:200]}")
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return {}  # applied (2xx); a body we cannot read changes nothing


def _parse_balance(data: dict[str, Any]) -> ChargingBalance:
    try:
        main = Decimal(str(data["main"])) if data.get("main") is not None else None
    except InvalidOperation:
        main = None
    units = data.get("bonus_units")
    return ChargingBalance(
        main_amount=main,
        currency=str(data["currency"]) if data.get("currency") else None,
        bonus_units=int(units) if isinstance(units, int) else None,
    )


def charging_from_settings(settings: Settings) -> ChargingAdapter:
    """The configured adapter: HTTP when ``charging_url`` is set, else the built-in ledger."""
    if not settings.charging_url:
        return LedgerCharging()
    return HttpChargingAdapter(
        base_url=settings.charging_url,
        token=settings.charging_token,
        timeout=settings.charging_timeout,
        attempts=settings.charging_attempts,
        backoff=settings.charging_backoff,
    )
