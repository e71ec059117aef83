"""The bonus rules through POST /gateway/ussd and a real database, clock set (R2-R4, R6, R12)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta
from typing import Any

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.web.keys import BONUS
from tests.factories import subscribers
from tests.web_helpers import Api

MSISDN = "77015550001"
_sessions = itertools.count(1)


async def dial(api: Api, code: str, msisdn: str = MSISDN) -> str:
    body = {"msisdn": msisdn, "session_id": f"bonus{next(_sessions)}", "input": code}
    resp = await api.client.post("/gateway/ussd", json=body, headers=api.auth(Role.GATEWAY))
    assert resp.status == 200, await resp.text()
    reply: dict[str, Any] = await resp.json()
    assert reply["end"] is True
    text: str = reply["text"]
    return text


async def grant_states(database: Database, msisdn: str = MSISDN) -> list[str]:
    rows = await database.pool.fetch(
        "SELECT state FROM bonus_grants WHERE msisdn = $1 ORDER BY id", msisdn
    )
    return [r["state"] for r in rows]


async def test_join_activate_balance_then_expired_over_http(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R3/R4/R6: *555*1# grants, *555*00# activates for 7 days, *111*3# shows it; 7 days on,
    the sweep expires it and the balance is empty, saying when the next units come."""
    await subscribers(database, [MSISDN], language="en")
    assert "A present of 500 bonus units" in await dial(api, "*555*1#")
    assert await dial(api, "*111*3#") == (
        "500 bonus units await activation: dial *555*00# by 23.12.2026 17:00."
    )
    assert await dial(api, "*555*00#") == "500 bonus units activated until 30.11.2026 17:00."
    assert await dial(api, "*111*3#") == "Bonus: 500 units until 30.11.2026 17:00."
    assert await dial(api, "*555*00#") == "A bonus was already activated this month."
    clock.advance(timedelta(days=7))
    await api.client.app[BONUS].sweep(clock.now())
    assert await grant_states(database) == ["expired"]
    assert await dial(api, "*111*3#") == (
        "No bonus units: this month's bonus was already received. "
        "The next 500 units come on 01.12.2026."
    )


async def test_leave_with_active_bonus_forfeits_it_over_http(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R2: leaving by *555*2# with an active bonus forfeits it; rejoining the same month grants
    nothing new (R3)."""
    await dial(api, "*555*1#")
    await dial(api, "*555*00#")
    await dial(api, "*555*2#")
    assert await grant_states(database) == ["forfeited"]
    await dial(api, "*555*1#")
    assert await grant_states(database) == ["forfeited"]
    assert await dial(api, "*555*00#") == "Бонус в этом месяце уже активирован."


async def test_recycling_forfeits_the_old_owners_bonus_over_http(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R12: recycling the number forfeits the old owner's pending bonus."""
    await dial(api, "*555*1#")
    body = {"type": "subscriber_status", "msisdn": MSISDN, "status": "recycled"}
    resp = await api.client.post("/gateway/events", json=body, headers=api.auth(Role.GATEWAY))
    assert resp.status == 200, await resp.text()
    assert await grant_states(database) == ["forfeited"]


async def test_twenty_simultaneous_activations_over_http_credit_once(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """R4/invariant 5: *555*00# arriving 20 times at once activates and credits once."""
    await dial(api, "*555*1#")
    replies = await asyncio.gather(*(dial(api, "*555*00#") for _ in range(20)))
    assert sum(r.startswith("Бонус 500 ед. активирован") for r in replies) == 1
    credited = await database.pool.fetchval(
        "SELECT count(*) FROM bonus_credits WHERE state = 'credited'"
    )
    assert credited == 1
