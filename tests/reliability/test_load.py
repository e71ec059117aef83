"""The USSD gateway under load while a campaign sends: correctness at a rate derived from
what this host sustains now, never at a fixed rate (issue 11). The figures — requests per
second, latency percentiles, the campaign's rate alone and under load — are the benchmark's:
``python -m bench load`` (median and spread of several runs; RELIABILITY.md, "Load").

A calibration phase measures what the service answers now with a few closed-loop clients
(each sends its next request when the last is answered, so it cannot overload the host);
the load phase then runs open loop at a fraction of that. Nothing is timed: a slow host
runs a lower rate, and a request is only an error when the service answers it wrongly (or
not within a generous client timeout)."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from bench._ussd import ussd_capacity, ussd_load
from bench.load import FIRST_MEMBER, FIRST_RECIPIENT, _add_campaign, _seed, _sent, serving
from dispatcher.db import create_pool

MEMBERS = 2_000  # one in ten not yet a member: those who dial *555*1# join
RECIPIENTS = 3_000
CALIBRATION_REQUESTS = 300
CALIBRATION_WORKERS = 8
LOAD_FRACTION = 0.5  # of the calibrated rate: headroom for whatever else the host runs
LOAD_SECONDS = 5
MIN_RATE = 5  # requests/s: even on a crawling host the load phase is a load


@pytest.mark.slow
async def test_ussd_under_load_beside_a_campaign(database_url: str, tmp_path: Path) -> None:
    """USSD at half the host's measured rate beside a sending campaign: every request is
    answered 200 with a text, every join takes effect once, the campaign keeps sending and
    sends no one twice."""
    token = await _seed(database_url, MEMBERS, RECIPIENTS)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        async with serving(database_url, tmp_path, tps=100) as base:
            targets = [str(FIRST_RECIPIENT + i) for i in range(RECIPIENTS)]
            campaign = await _add_campaign(pool, "loaded", targets)
            capacity, calibration_errors = await ussd_capacity(
                base,
                token,
                FIRST_MEMBER,
                MEMBERS,
                workers=CALIBRATION_WORKERS,
                requests=CALIBRATION_REQUESTS,
            )
            assert calibration_errors == 0
            rate = max(MIN_RATE, int(capacity * LOAD_FRACTION))
            sent: list[tuple[str, str]] = []
            latencies, errors, _ = await ussd_load(
                base, token, FIRST_MEMBER, MEMBERS, rate, LOAD_SECONDS, sent=sent, timeout_s=120
            )
            progressed = await _sent(pool, campaign)
        print(f"\nload: calibrated {capacity:.0f} req/s, ran {rate}/s, {len(latencies)} requests")
        assert errors == 0
        assert len(sent) == rate * LOAD_SECONDS
        await _joins_took_effect_once(pool, sent)
        assert progressed > 0, "the campaign did not send while USSD was served"
        duplicated = await pool.fetchval(
            "SELECT count(*) FROM (SELECT delivery_id, part_no FROM submits "
            "WHERE delivery_id IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) AS twice"
        )
        assert duplicated == 0, "a recipient was sent the campaign twice"
    finally:
        await pool.close()


async def _joins_took_effect_once(pool: object, sent: list[tuple[str, str]]) -> None:
    """Everyone who dialled *555*1# is a member with one open membership, one month's grant
    and one join in the consent ledger at most (a member's join changes nothing, R1/R3)."""
    joined = sorted({msisdn for msisdn, dialled in sent if dialled == "*555*1#"})
    rows = await pool.fetch(  # type: ignore[attr-defined]
        "SELECT m.msisdn, count(*) AS open FROM memberships m "
        "WHERE m.msisdn = ANY($1) AND m.left_at IS NULL GROUP BY 1",
        joined,
    )
    open_memberships = {r["msisdn"]: r["open"] for r in rows}
    assert sorted(open_memberships) == joined, "a join was answered but not committed"
    assert set(open_memberships.values()) == {1}, "a member joined twice"
    ledger = await pool.fetch(  # type: ignore[attr-defined]
        "SELECT msisdn, count(*) AS n FROM consent_ledger WHERE event = 'joined' GROUP BY 1"
    )
    assert max((r["n"] for r in ledger), default=0) <= 1, "one join recorded twice"
    grants = collections.Counter(
        r["msisdn"]
        for r in await pool.fetch("SELECT msisdn FROM bonus_grants")  # type: ignore[attr-defined]
    )
    assert max(grants.values(), default=0) <= 1, "a second grant in the month"
