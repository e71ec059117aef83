"""Eligibility has one home: ``suppression_for`` over ``subscriber_facts`` (migration 0008).

One table — status × 1204 × membership × campaign scope × message kind — states the rule
(R1, R2, R9, R12) once; the function must give its answer for every row, and every user of
the function must give the same answer on real rows: the dispatch claim (campaign and service
messages), the contact reservation of other channels, the segment audiences (which leave
membership to the claim) and the monthly grant (which decides by membership and status only,
as a service message would).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import date, timedelta

import asyncpg
import pytest

from campaigns.repository import CampaignRepository
from dispatcher.db import Database
from dispatcher.engine.repository import DispatchRepository
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import CampaignScope, Channel, ContactKind
from dispatcher.program import contacts
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.charging import LedgerCharging
from dispatcher.settings import Settings

STATUSES = (None, "active", "outgoing_blocked", "blocked", "recycled")  # None: unknown number
SCOPES = ("smart", "operator")
KINDS = ("info", "survey", "service")
MONTH = date(2026, 11, 1)  # the clock fixture's month


@dataclass(frozen=True)
class Facts:
    status: str | None
    dnc: bool
    member: bool

    @property
    def msisdn(self) -> str:
        """A number of its own for each combination of facts."""
        return f"7701777{FACTS.index(self):04d}"


# An unknown number has no membership (memberships reference subscribers); it may have a
# 1204 block (dnc_blocks does not).
FACTS = [
    Facts(status, dnc, member)
    for status in STATUSES
    for dnc in (False, True)
    for member in (False, True)
    if status is not None or not member
]
KNOWN = [f for f in FACTS if f.status is not None]


def expected(f: Facts, scope: str, kind: str) -> str | None:
    """The rule, as DESIGN.md states it: the first reason that applies, or None (send)."""
    if kind == "service":  # R12 only: a leave's or a 1204's confirmation reaches the leaver
        return f.status if f.status in ("blocked", "recycled") else None
    if f.status is None:
        return "not_member"  # a number this service does not know
    if f.status in ("recycled", "blocked"):
        return f.status  # R12: nothing to a recycled or fully blocked number
    if f.dnc:
        return "dnc"  # R9: 1204 ends SMART and operator telemarketing alike
    if scope == "smart" and not f.member:
        return "not_member"  # R1, R2: SMART partner messages go to members only
    return None  # outgoing_blocked numbers still receive SMS (R12)


def answers(scope: str, kind: str) -> dict[str, str | None]:
    return {f.msisdn: expected(f, scope, kind) for f in FACTS}


async def add_facts(pool: asyncpg.Pool) -> None:
    """One number per combination of facts, as rows of the tables the facts come from."""
    await pool.execute(
        "INSERT INTO subscribers (msisdn, status) "
        "SELECT * FROM unnest($1::text[], $2::subscriber_status[])",
        [f.msisdn for f in KNOWN],
        [f.status for f in KNOWN],
    )
    await pool.execute(
        "INSERT INTO memberships (msisdn, joined_at, join_channel) "
        "SELECT unnest($1::text[]), timestamptz '2026-11-01 00:00+00', 'ussd'",
        [f.msisdn for f in FACTS if f.member],
    )
    await pool.execute(
        "INSERT INTO dnc_blocks (msisdn, blocked_at, channel) "
        "SELECT unnest($1::text[]), timestamptz '2026-11-02 00:00+00', 'sms'",
        [f.msisdn for f in FACTS if f.dnc],
    )


async def one_home(pool: asyncpg.Pool, scope: str | None, kind: str) -> dict[str, str | None]:
    """The function's answer for every number, from the view's facts of the real rows."""
    rows = await pool.fetch(
        "SELECT n.msisdn, suppression_for(f.status, f.dnc_since, f.member_since, "
        "$2::campaign_scope, $3::traffic_kind) AS reason "
        "FROM unnest($1::text[]) AS n (msisdn) LEFT JOIN subscriber_facts f USING (msisdn)",
        [f.msisdn for f in FACTS],
        scope,
        kind,
    )
    return {r["msisdn"]: r["reason"] for r in rows}


async def add_campaign(pool: asyncpg.Pool, scope: str, kind: str, state: str) -> int:
    campaign: int = await pool.fetchval(
        "INSERT INTO campaigns (name, kind, scope, texts, state) "
        "VALUES ('eligibility', $1, $2, $3, $4) RETURNING id",
        kind,
        scope,
        json.dumps({"ru": "Предложение партнёра"}),
        state,
    )
    return campaign


async def test_the_rule_over_every_combination(database: Database, clock: ManualClock) -> None:
    """suppression_for answers as the table says for all status × 1204 × member × scope × kind."""
    rows = [
        (f, scope, kind)
        for f in [Facts(s, d, m) for s in STATUSES for d in (False, True) for m in (False, True)]
        for scope in SCOPES
        for kind in KINDS
    ]
    since = clock.now() - timedelta(days=1)  # a 1204 block or a membership: from a day ago
    table = [
        (f.status, since if f.dnc else None, since if f.member else None, scope, kind)
        for f, scope, kind in rows
    ]
    got = await database.pool.fetch(
        "SELECT suppression_for(u.status, u.dnc_since, u.member_since, u.scope, u.kind) "
        "FROM unnest($1::subscriber_status[], $2::timestamptz[], $3::timestamptz[], "
        "$4::campaign_scope[], $5::traffic_kind[]) "
        "WITH ORDINALITY AS u (status, dnc_since, member_since, scope, kind, n) "
        "ORDER BY u.n",
        *(list(column) for column in zip(*table, strict=True)),
    )
    assert [r[0] for r in got] == [expected(f, scope, kind) for f, scope, kind in rows]
    reasons = {expected(f, scope, kind) for f, scope, kind in rows}
    assert reasons == {None, "not_member", "recycled", "blocked", "dnc"}


def expected_joined_after_dnc(status: str, scope: str, kind: str) -> str | None:
    """R9 (migration 0014): a member who joined after their 1204 gave new consent to SMART
    partner messages and surveys only — a SMART campaign treats them as a member without a
    block, an operator campaign as still blocked."""
    if scope == "smart":
        return expected(Facts(status, dnc=False, member=True), scope, kind)
    return expected(Facts(status, dnc=True, member=True), scope, kind)


async def test_join_after_1204_lifts_it_for_smart_only(
    database: Database, clock: ManualClock
) -> None:
    """suppression_for: membership that began after the 1204 lets SMART traffic through and
    keeps operator telemarketing blocked; one that began before it (or at the same instant)
    lifts nothing."""
    dnc_at = clock.now() - timedelta(days=2)
    rows = [
        (status, joined, scope, kind)
        for status in STATUSES[1:]
        for joined in (dnc_at - timedelta(seconds=1), dnc_at, dnc_at + timedelta(seconds=1))
        for scope in SCOPES
        for kind in KINDS
    ]
    got = await database.pool.fetch(
        "SELECT suppression_for(u.status, $2, u.member_since, u.scope, u.kind) "
        "FROM unnest($1::subscriber_status[], $3::timestamptz[], $4::campaign_scope[], "
        "$5::traffic_kind[]) WITH ORDINALITY AS u (status, member_since, scope, kind, n) "
        "ORDER BY u.n",
        [r[0] for r in rows],
        dnc_at,
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
    )
    want = [
        expected_joined_after_dnc(status, scope, kind)
        if joined > dnc_at
        else expected(Facts(status, dnc=True, member=True), scope, kind)
        for status, joined, scope, kind in rows
    ]
    assert [r[0] for r in got] == want


async def test_the_rule_is_inlined(database: Database) -> None:
    """The planner inlines suppression_for: a set-based query pays a CASE, not a call, per row."""
    plan = await database.pool.fetch(
        "EXPLAIN (VERBOSE) SELECT "
        "suppression_for(f.status, f.dnc_since, f.member_since, 'smart', 'info') "
        "FROM subscriber_facts f"
    )
    text = "\n".join(r[0] for r in plan)
    assert "CASE" in text and "suppression_for" not in text


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("kind", ["info", "survey"])
async def test_claim_and_reservation_agree(
    database: Database, settings: Settings, clock: ManualClock, scope: str, kind: str
) -> None:
    """The dispatch claim and the contact reservation suppress exactly what the rule says."""
    pool = database.pool
    await add_facts(pool)
    rule = await one_home(pool, scope, kind)
    assert rule == answers(scope, kind)
    campaign = await add_campaign(pool, scope, kind, "running")
    await pool.execute(
        "INSERT INTO deliveries (campaign_id, msisdn) SELECT $1, unnest($2::text[])",
        campaign,
        list(rule),
    )
    repo = DispatchRepository(pool, "node-1", "smsc")
    caps = (settings.info_cap, settings.survey_cap)  # one slot each here: none is refused
    await repo.claim_campaign(campaign, len(rule), clock.now(), MONTH, caps)
    claimed = await pool.fetch(
        "SELECT msisdn, state::text, suppressed::text FROM deliveries WHERE campaign_id = $1",
        campaign,
    )
    assert {r["msisdn"]: r["suppressed"] for r in claimed} == rule
    assert {r["state"] for r in claimed if r["suppressed"] is None} == {"claimed"}

    reserved = {}
    for msisdn in rule:
        answer = await contacts.reserve(
            pool,
            settings,
            msisdn,
            ContactKind(kind),
            CampaignScope(scope),
            Channel.IVR,
            None,
            clock.now(),
        )
        assert answer.granted == (answer.reason is None)
        reserved[msisdn] = answer.reason
    assert reserved == rule


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("kind", ["info", "survey"])
async def test_segments_agree(
    database: Database, clock: ManualClock, scope: str, kind: str
) -> None:
    """A segment queues, whatever the campaign's scope, the numbers of its population that the
    rule lets an operator campaign reach (membership is left to the claim, as for a file)."""
    pool = database.pool
    await add_facts(pool)
    reachable = await one_home(pool, "operator", kind)
    repository = CampaignRepository(pool)
    for segment, population in (
        ("active_subscribers", KNOWN),
        ("smart_members", [f for f in KNOWN if f.member]),
    ):
        campaign = await add_campaign(pool, scope, kind, "draft")
        await repository.add_segment(campaign, segment, clock.now())
        queued = await pool.fetch("SELECT msisdn FROM deliveries WHERE campaign_id = $1", campaign)
        assert {r["msisdn"] for r in queued} == {
            f.msisdn for f in population if reachable[f.msisdn] is None
        }, segment


async def test_service_claim_agrees(database: Database, clock: ManualClock) -> None:
    """Service messages stop only at a blocked or recycled number, whatever 1204 or
    membership say (R12): a leaver still gets the leave's confirmation."""
    pool = database.pool
    await add_facts(pool)
    rule = await one_home(pool, None, "service")
    assert rule == answers("smart", "service") == answers("operator", "service")
    await pool.execute(
        "INSERT INTO service_messages (msisdn, kind, body, in_window) "
        "SELECT unnest($1::text[]), 'leave_confirmation', 'Вы вышли из SMART', false",
        list(rule),
    )
    await DispatchRepository(pool, "node-1", "smsc").claim_service(len(rule), clock.now(), True)
    claimed = await pool.fetch("SELECT msisdn, suppressed::text FROM service_messages")
    assert {r["msisdn"]: r["suppressed"] for r in claimed} == rule


async def test_monthly_grant_agrees(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """The monthly grant goes to every member whose number a service message (its notice)
    may reach: membership and status decide, 1204 does not (R3, R12)."""
    pool = database.pool
    await add_facts(pool)
    rule = await one_home(pool, None, "service")
    ledger = BonusLedger(pool, settings, clock, LedgerCharging())
    try:
        await ledger.grant_month(clock.now())
    finally:
        await ledger.close()
    granted = await pool.fetch("SELECT msisdn FROM bonus_grants WHERE month = $1", MONTH)
    assert {r["msisdn"] for r in granted} == {
        f.msisdn for f in KNOWN if f.member and rule[f.msisdn] is None
    }


async def test_reservation_sees_a_leave_committed_while_it_waits(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A leave holding the number when a reservation asks commits first, and the reservation
    decides on what it committed: refused, not granted from a stale read (R2)."""
    pool = database.pool
    member = Facts("active", False, True)
    await add_facts(pool)
    async with pool.acquire() as leave, leave.transaction():
        await leave.execute("SELECT 1 FROM subscribers WHERE msisdn = $1 FOR UPDATE", member.msisdn)
        await leave.execute(
            "UPDATE memberships SET left_at = $2, leave_channel = 'sms' "
            "WHERE msisdn = $1 AND left_at IS NULL",
            member.msisdn,
            clock.now(),
        )
        asking = asyncio.ensure_future(
            contacts.reserve(
                pool,
                settings,
                member.msisdn,
                ContactKind.INFO,
                CampaignScope.SMART,
                Channel.IVR,
                None,
                clock.now(),
            )
        )
        async with asyncio.timeout(10):
            while not await _waiting_for_a_lock(pool):
                assert not asking.done(), "the reservation did not wait for the leave"
    answer = await asking
    assert (answer.granted, answer.reason) == (False, "not_member")
    assert await pool.fetchval("SELECT count(*) FROM contact_counters") == 0


async def _waiting_for_a_lock(pool: asyncpg.Pool) -> bool:
    waiting: int = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return waiting > 0
