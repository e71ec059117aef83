"""A contact reservation's ``reference`` repeats only the same contact (R7, issue 12): the
same number, kind and month get the first grant back; anything else is a 409, never the
first grant (a 1204-blocked number used to get ``granted: true`` that way)."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from tests.factories import dnc, members, subscribers
from tests.web_helpers import Api, running_api

MEMBER, OTHER, BLOCKED = "77018880001", "77018880002", "77018880003"
PATH = "/api/v1/contacts/reserve"
DECEMBER = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)  # 12:00 Astana time, in the window


@pytest.fixture(autouse=True)
async def numbers(database: Database) -> None:
    await members(database, [MEMBER, OTHER])
    await subscribers(database, [BLOCKED])
    await dnc(database, [BLOCKED])


async def post(api: Api, **body: Any) -> tuple[int, dict[str, Any]]:
    response = await api.client.post(PATH, json=body, headers=api.auth(Role.GATEWAY))
    return response.status, await response.json()


async def slots(database: Database) -> dict[tuple[str, str], tuple[int, int]]:
    rows = await database.pool.fetch(
        "SELECT msisdn, month::text, info_count, survey_count FROM contact_counters"
    )
    return {(r["msisdn"], r["month"]): (r["info_count"], r["survey_count"]) for r in rows}


async def test_reference_reuse_over_number_kind_and_month(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Every combination of changing the number, the kind and the month under a used
    reference: unchanged repeats the grant (no second slot); any change is a 409 naming
    what differs, in the error shape, and takes no slot."""
    combos = list(itertools.product([False, True], repeat=3))
    async with running_api(settings, clock, database) as api:
        first = {}
        for combo in combos:
            status, body = await post(api, msisdn=MEMBER, kind="info", reference=f"r{combo}")
            assert status == 200 and body["granted"], body
            first[combo] = body
        before = await slots(database)
        for month_changes in (False, True):
            if month_changes:
                clock.set(DECEMBER)
            for combo in [c for c in combos if c[2] == month_changes]:
                number, kind, _ = combo
                status, body = await post(
                    api,
                    msisdn=OTHER if number else MEMBER,
                    kind="survey" if kind else "info",
                    reference=f"r{combo}",
                )
                differs = [w for w, d in zip(("number", "kind", "month"), combo, strict=True) if d]
                if not differs:
                    assert status == 200, body
                    assert body["reservation_id"] == first[combo]["reservation_id"]
                    assert body["granted"] and body["month"] == "2026-11-01"
                    continue
                assert status == 409, body
                error = body["error"]
                assert error["code"] == "reference_conflict"
                assert error["details"] == {"field": "reference", "differs": differs}
        assert await slots(database) == before == {(MEMBER, "2026-11-01"): (8, 0)}


async def test_a_blocked_number_never_gets_another_numbers_grant(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """The issue's case: a reference granted to a member, reused for a 1204-blocked number,
    is a 409 (not `granted: true`); without the reference the number is refused for dnc."""
    async with running_api(settings, clock, database) as api:
        status, body = await post(api, msisdn=MEMBER, kind="info", reference="ivr-42")
        assert status == 200 and body["granted"]
        status, body = await post(api, msisdn=BLOCKED, kind="info", reference="ivr-42")
        assert status == 409 and body["error"]["details"]["differs"] == ["number"]
        status, body = await post(api, msisdn=BLOCKED, kind="info")
        assert status == 200 and (body["granted"], body["reason"]) == (False, "dnc")


RACERS = [f"7701888{n:04d}" for n in range(100, 108)]


async def test_one_new_reference_raced_for_many_numbers(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Eight requests at once under one new reference, each for another number, in several
    rounds: one is granted, the others are 409 (never a 500, never a second grant), and only
    the winner holds a slot. The unique key is per number (migration 0024), so the
    reference's lock is what makes the losers wait and see the winner (CI once saw two
    granted with two racers)."""
    await members(database, RACERS)
    async with running_api(settings, clock, database) as api:
        for round_ in range(5):
            results = await asyncio.gather(
                *(post(api, msisdn=n, kind="info", reference=f"race-{round_}") for n in RACERS)
            )
            statuses = sorted(status for status, _ in results)
            assert statuses == [200] + [409] * (len(RACERS) - 1), results
            assert all(
                b["error"]["details"] == {"field": "reference", "differs": ["number"]}
                for s, b in results
                if s == 409
            )
        counts = await slots(database)
        assert sum(info for info, _ in counts.values()) == 5
        assert await database.pool.fetchval("SELECT count(*) FROM contact_reservations") == 5


NUMBERS = (MEMBER, OTHER, BLOCKED)
REQUESTS = st.lists(
    st.tuples(
        st.sampled_from(("a", "b", "c", None)),  # reference (None: none given)
        st.sampled_from(NUMBERS),
        st.sampled_from(("info", "survey")),
        st.booleans(),  # in December rather than November
    ),
    min_size=1,
    max_size=8,
)


@given(requests=REQUESTS)
@hypothesis.settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_references_against_a_model(
    api: Api, database: Database, clock: ManualClock, requests: list[Any]
) -> None:
    """Any sequence of reservations (references reused or not, over numbers, kinds and
    months, a 1204-blocked number among them) answers as a model of the rule says: a used
    reference repeats its grant for the same contact and is a 409 for any other; a new one
    is judged as usual (dnc, the survey cap); the counters hold one slot per grant."""
    await database.pool.execute("TRUNCATE contact_counters, contact_reservations")
    clock.set(datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
    first: dict[str, tuple[str, str, bool, int]] = {}  # reference → contact and its grant
    slots: dict[tuple[str, str, bool], int] = {}
    for reference, msisdn, kind, december in sorted(requests, key=lambda r: r[3]):
        if december:
            clock.set(DECEMBER)
        body: dict[str, Any] = {"msisdn": msisdn, "kind": kind}
        if reference is not None:
            body["reference"] = reference
        status, answer = await post(api, **body)
        if reference in first:
            contact = (msisdn, kind, december)
            differs = [
                what
                for what, was, now in zip(
                    ("number", "kind", "month"), first[reference][:3], contact, strict=True
                )
                if was != now
            ]
            if differs:
                assert status == 409 and answer["error"]["details"]["differs"] == differs
            else:
                assert status == 200 and answer["reservation_id"] == first[reference][3]
            continue
        assert status == 200, answer
        key = (msisdn, kind, december)
        cap = 10 if kind == "info" else 2
        if msisdn == BLOCKED:
            assert (answer["granted"], answer["reason"]) == (False, "dnc")
        elif slots.get(key, 0) == cap:
            assert (answer["granted"], answer["reason"]) == (False, f"cap_{kind}")
        else:
            assert answer["granted"], answer
            slots[key] = slots.get(key, 0) + 1
            if reference is not None:
                first[reference] = (msisdn, kind, december, answer["reservation_id"])
    rows = await database.pool.fetch(
        "SELECT msisdn, month, info_count, survey_count FROM contact_counters"
    )
    held = {}
    for r in rows:
        december = r["month"].month == 12
        for kind in ("info", "survey"):
            if r[f"{kind}_count"]:
                held[(r["msisdn"], kind, december)] = r[f"{kind}_count"]
    assert held == slots
