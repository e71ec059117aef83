"""Issue 14, "Why didn't this number get it?": a subscriber's message history and the answer
to "why did number X not get campaign Y", over real HTTP (the API, the console and the CLI)
against a real database.

The rows a campaign leaves behind are written as the engine writes them (deliveries with
their state, suppression reason, cap month and times; submits per part with the receipt the
applier matched; the receipts as received), so each answer is read from what is stored."""

from __future__ import annotations

import re
import urllib.parse
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import hypothesis
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from tests.factories import campaign, dnc, members, subscribers
from tests.test_cli import _run
from tests.test_console import sign_in
from tests.web_helpers import Api, running_api

ASTANA = ZoneInfo("Asia/Almaty")
NUMBER = "77010000042"
OTHER = "77010000043"
RUSSIAN = "79161234567"  # a valid mobile number of Russia (+7 9xx)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # the clock fixture: 17:00 Astana
NOVEMBER = date(2026, 11, 1)
SMSC = "smsc-1"


async def named_campaign(database: Database, audience: list[str], name: str, **columns: Any) -> int:
    """A campaign named ``name`` (partner "Kofe" unless given) queued to ``audience``."""
    columns.setdefault("partner", "Kofe")
    campaign_id = await campaign(database, audience, started_at=NOW - timedelta(days=1), **columns)
    await database.pool.execute("UPDATE campaigns SET name = $2 WHERE id = $1", campaign_id, name)
    return campaign_id


async def sent(
    database: Database,
    campaign_id: int,
    msisdn: str,
    receipt: str | None,
    *,
    at: datetime,
    error_code: str | None = None,
    message_id: str | None = None,
    cap_month: date | None = NOVEMBER,
) -> None:
    """The delivery of ``msisdn`` in ``campaign_id`` submitted at ``at`` as one part, and its
    receipt (``receipt`` None: none yet) a minute later: the rows the engine and the
    receipt applier leave."""
    message_id = message_id or f"m{campaign_id}-{msisdn}"
    receipt_at = at + timedelta(minutes=1)
    final = receipt is not None
    state = receipt if final else "submitted"
    delivery_id = await database.pool.fetchval(
        "UPDATE deliveries SET state = $3::delivery_state, cap_month = $4, claimed_at = $5, "
        "submitted_at = $5, finished_at = $6, parts = 1, "
        "parts_done = CASE WHEN $3 = 'delivered' THEN 1 ELSE 0 END, attempts = 1, "
        "language = 'ru' WHERE campaign_id = $1 AND msisdn = $2 RETURNING id",
        campaign_id,
        msisdn,
        state,
        cap_month,
        at,
        receipt_at if final else None,
    )
    assert delivery_id is not None
    await database.pool.execute(
        "INSERT INTO submits (smsc, message_id, delivery_id, msisdn, part_no, parts, "
        "submitted_at, receipt, receipt_at) VALUES ($1, $2, $3, $4, 1, 1, $5, "
        "$6::receipt_state, $7)",
        SMSC,
        message_id,
        delivery_id,
        msisdn,
        at,
        receipt,
        receipt_at if final else None,
    )
    if final:
        await database.pool.execute(
            "INSERT INTO receipts (smsc, message_id, state, error_code, done_at, received_at, "
            "applied_at, matched, msisdn) VALUES ($1, $2, $3::receipt_state, $4, $5, $5, $5, "
            "true, $6)",
            SMSC,
            message_id,
            receipt,
            error_code,
            receipt_at,
            msisdn,
        )


async def suppressed(
    database: Database, campaign_id: int, msisdn: str, reason: str, at: datetime = NOW
) -> None:
    """The delivery suppressed at its claim at ``at`` for ``reason``."""
    await database.pool.execute(
        "UPDATE deliveries SET state = 'suppressed', suppressed = $3::suppression_reason, "
        "claimed_at = $4, finished_at = $4 WHERE campaign_id = $1 AND msisdn = $2",
        campaign_id,
        msisdn,
        reason,
        at,
    )


async def service_message(
    database: Database, msisdn: str, kind: str, state: str, at: datetime, *, in_window: bool = True
) -> int:
    final = state not in ("queued", "claimed", "in_flight", "submitted")
    return int(
        await database.pool.fetchval(
            "INSERT INTO service_messages (msisdn, kind, body, in_window, state, created_at, "
            "submitted_at, finished_at, parts, parts_done) "
            "VALUES ($1, $2::service_kind, 'Bonus 500', $3, $4::delivery_state, $5, "
            "CASE WHEN $4 <> 'queued' THEN $5::timestamptz END, "
            "CASE WHEN $6 THEN $5::timestamptz + interval '1 minute' END, 1, "
            "CASE WHEN $4 = 'delivered' THEN 1 ELSE 0 END) RETURNING id",
            msisdn,
            kind,
            in_window,
            state,
            at,
            final,
        )
    )


async def rejected(
    database: Database, campaign_id: int, rows: list[tuple[int, str, str | None, str]]
) -> None:
    """Upload 1 of ``campaign_id`` rejected ``rows`` (line, value, number, reason), as the
    audience upload records them (migration 0029)."""
    await database.pool.execute(
        "INSERT INTO audience_uploads (campaign_id, upload_no, uploaded_at, uploaded_by, lines, "
        "accepted, duplicates, rejected) VALUES ($1, 1, $2, 'test', 10, 10 - $3, 0, $3)",
        campaign_id,
        NOW - timedelta(days=2),
        len(rows),
    )
    await database.pool.executemany(
        "INSERT INTO audience_rejections (campaign_id, upload_no, line, value, number, reason) "
        "VALUES ($1, 1, $2, $3, $4, $5)",
        [(campaign_id, line, value, number, reason) for line, value, number, reason in rows],
    )


async def get_json(api: Api, path: str, role: Role = Role.VIEWER, **params: Any) -> tuple[int, Any]:
    response = await api.client.get(path, headers=api.auth(role), params=params)
    return response.status, await response.json()


async def why(api: Api, number: str, campaign_id: int, role: Role = Role.VIEWER) -> Any:
    quoted = urllib.parse.quote(number, safe="")
    status, body = await get_json(
        api, f"/api/v1/subscribers/{quoted}/campaigns/{campaign_id}", role
    )
    assert status == 200, body
    return body


# ---------------------------------------------------------------- the history


async def test_history_tells_a_delivered_number_from_an_undelivered_one(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Two numbers in the same campaigns: one delivered, one undelivered with the SMSC's error
    code; newest first, program messages marked as such, paged."""
    await members(database, [NUMBER, OTHER])
    first = await named_campaign(database, [NUMBER, OTHER], "Coffee week")
    second = await named_campaign(database, [NUMBER, OTHER], "Tea days", partner="Shai")
    await sent(database, first, NUMBER, "delivered", at=NOW - timedelta(hours=5))
    await sent(database, first, OTHER, "undelivered", at=NOW - timedelta(hours=5), error_code="001")
    await sent(database, second, NUMBER, "delivered", at=NOW - timedelta(hours=2))
    await suppressed(database, second, OTHER, "dnc", NOW - timedelta(hours=2))
    await service_message(database, NUMBER, "bonus_notice", "delivered", NOW - timedelta(hours=1))
    async with running_api(settings, clock, database) as api:
        status, page = await get_json(api, f"/api/v1/subscribers/{NUMBER}/messages")
        assert status == 200, page
        items = page["messages"]
        assert [(m["source"], m["kind"], m["state"]) for m in items] == [
            ("service", "bonus_notice", "delivered"),
            ("campaign", "info", "delivered"),
            ("campaign", "info", "delivered"),
        ]
        assert items[1]["campaign"] == {
            "id": second,
            "name": "Tea days",
            "partner": "Shai",
            "kind": "info",
            "state": "running",
        }
        assert items[0]["campaign"] is None
        assert items[2]["receipt"]["state"] == "delivered"
        assert items[2]["parts"] == 1 and items[2]["submitted_at"].startswith("2026-11-23T07:00")
        status, other = await get_json(api, f"/api/v1/subscribers/{OTHER}/messages")
        assert status == 200
        by_campaign = {m["campaign"]["id"]: m for m in other["messages"]}
        assert by_campaign[first]["state"] == "undelivered"
        assert by_campaign[first]["receipt"] == {
            "state": "undelivered",
            "at": "2026-11-23T07:01:00+00:00",
            "error_code": "001",
        }
        assert by_campaign[second]["state"] == "suppressed"
        assert by_campaign[second]["suppressed"] == "dnc"
        status, paged = await get_json(api, f"/api/v1/subscribers/{NUMBER}/messages", limit="2")
        assert status == 200 and len(paged["messages"]) == 2 and paged["next_offset"] == 2
        status, rest = await get_json(
            api, f"/api/v1/subscribers/{NUMBER}/messages", limit="2", offset="2"
        )
        assert [m["id"] for m in rest["messages"]] == [items[2]["id"]]
        assert rest["next_offset"] is None
        for bad in ({"limit": "0"}, {"limit": "x"}, {"offset": "-1"}, {"limit": "501"}):
            status, body = await get_json(api, f"/api/v1/subscribers/{NUMBER}/messages", **bad)
            assert status == 400 and set(body["error"]) == {"code", "message", "details"}


async def test_history_and_why_are_for_operator_roles_only(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Viewer, marketer and admin read them; a token of any other role (the partner-facing
    gateway) gets 403, and no token 401."""
    await members(database, [NUMBER])
    campaign_id = await named_campaign(database, [NUMBER], "Coffee week")
    async with running_api(settings, clock, database) as api:
        for path in (
            f"/api/v1/subscribers/{NUMBER}/messages",
            f"/api/v1/subscribers/{NUMBER}/campaigns/{campaign_id}",
        ):
            for role in Role:
                response = await api.client.get(path, headers=api.auth(role))
                allowed = role in (Role.ADMIN, Role.MARKETER, Role.VIEWER)
                assert response.status == (200 if allowed else 403), (path, role)
            assert (await api.client.get(path)).status == 401


# ---------------------------------------------------------------- why: each answer


async def test_why_not_in_the_audience_and_unknown_campaign(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    await members(database, [NUMBER, OTHER])
    campaign_id = await named_campaign(database, [OTHER], "Coffee week")
    async with running_api(settings, clock, database) as api:
        answer = await why(api, NUMBER, campaign_id)
        assert answer["answer"] == "not_in_audience"
        assert "is not in the audience of campaign" in answer["summary"]
        assert answer["campaign"]["name"] == "Coffee week"
        status, body = await get_json(api, f"/api/v1/subscribers/{NUMBER}/campaigns/999999")
        assert status == 404 and body["error"]["code"] == "not_found"
        status, body = await get_json(api, f"/api/v1/subscribers/12/campaigns/{campaign_id}")
        assert status == 400 and body["error"]["code"] == "invalid_msisdn"


async def test_why_rejected_at_upload_names_the_line_and_reason(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    campaign_id = await named_campaign(database, [OTHER], "Coffee week")
    await rejected(
        database,
        campaign_id,
        [
            (7, "+7 701 000 00 42", NUMBER, "duplicate of line 3 with other values"),
            (9, "hello", None, "not a phone number"),
        ],
    )
    async with running_api(settings, clock, database) as api:
        answer = await why(api, "8 701 000 00 42", campaign_id)
        assert answer["answer"] == "rejected_at_upload"
        assert answer["details"]["rejections"] == [
            {
                "upload_no": 1,
                "line": 7,
                "value": "+7 701 000 00 42",
                "reason": "duplicate of line 3 with other values",
                "uploaded_at": "2026-11-21T12:00:00+00:00",
            }
        ]
        assert "upload 1, line 7" in answer["summary"]
        assert "duplicate of line 3" in answer["summary"]


async def test_why_suppressed_names_the_rule(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    await subscribers(database, [NUMBER])
    await dnc(database, [NUMBER])
    campaign_id = await named_campaign(database, [NUMBER], "Coffee week")
    await suppressed(database, campaign_id, NUMBER, "dnc")
    async with running_api(settings, clock, database) as api:
        answer = await why(api, NUMBER, campaign_id)
        assert answer["answer"] == "suppressed"
        assert answer["details"]["rule"] == "dnc"
        assert "1204" in answer["summary"]
        assert answer["message"]["state"] == "suppressed"


async def test_why_at_the_cap_names_the_campaigns_that_used_the_slots(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """The 11th partner message of November was suppressed at the cap: the answer names the
    ten campaigns that used this subscriber's November slots (not December's, not a
    suppressed one, not another number's), and the cap."""
    await members(database, [NUMBER, OTHER])
    users = []
    for n in range(10):
        campaign_id = await named_campaign(
            database, [NUMBER, OTHER], f"Offer {n}", partner=f"Partner {n}"
        )
        await sent(database, campaign_id, NUMBER, "delivered", at=NOW - timedelta(days=20 - n))
        users.append(campaign_id)
    december = await named_campaign(database, [NUMBER], "Next month")
    await sent(database, december, NUMBER, None, at=NOW, cap_month=date(2026, 12, 1))
    not_a_user = await named_campaign(database, [NUMBER], "Suppressed")
    await suppressed(database, not_a_user, NUMBER, "dnc", NOW - timedelta(days=3))
    await database.pool.execute(
        "INSERT INTO contact_counters (msisdn, month, info_count, survey_count, info_cap, "
        "survey_cap) VALUES ($1, $2, 10, 0, 10, 2)",
        NUMBER,
        NOVEMBER,
    )
    capped = await named_campaign(database, [NUMBER], "Eleventh")
    await suppressed(database, capped, NUMBER, "cap_info")
    async with running_api(settings, clock, database) as api:
        answer = await why(api, NUMBER, capped)
        assert answer["answer"] == "suppressed"
        details = answer["details"]
        assert details["rule"] == "cap_info"
        assert details["month"] == "2026-11-01"
        assert details["cap"] == 10
        assert [u["id"] for u in details["used_by"]] == users
        assert details["used_by"][0]["name"] == "Offer 0"
        assert details["used_by"][0]["partner"] == "Partner 0"
        assert "Offer 0" in answer["summary"] and "Offer 9" in answer["summary"]
        assert "10 partner messages" in answer["summary"]


async def test_why_waiting_window_closed_paused_scheduled_and_behind_service_messages(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    await members(database, [NUMBER, OTHER])
    running = await named_campaign(database, [OTHER, NUMBER], "Coffee week")
    paused = await named_campaign(database, [NUMBER], "Paused", state="paused")
    start = datetime(2026, 11, 25, 5, 30, tzinfo=UTC)
    scheduled = await named_campaign(database, [NUMBER], "Later", state="scheduled", start_at=start)
    for n in range(3):
        await service_message(database, f"7701000010{n}", "bonus_notice", "queued", NOW)
    await service_message(database, "77010000110", "bonus_notice", "queued", NOW, in_window=True)
    async with running_api(settings, clock, database) as api:
        answer = await why(api, NUMBER, running)
        assert answer["answer"] == "waiting"
        assert answer["details"]["reason"] == "behind_queue"
        assert answer["details"]["service_ahead"] == 4
        assert answer["details"]["ahead_in_campaign"] == 1
        assert "behind 4 program messages" in answer["summary"]
        paused_answer = await why(api, NUMBER, paused)
        assert (paused_answer["answer"], paused_answer["details"]["reason"]) == (
            "waiting",
            "campaign_paused",
        )
        assert "paused" in paused_answer["summary"]
        later = await why(api, NUMBER, scheduled)
        assert later["details"]["reason"] == "scheduled"
        assert later["details"]["until"] == start.isoformat()
        assert "2026-11-25 10:30" in later["summary"]  # Astana time
        clock.set(datetime(2026, 11, 23, 17, 0, tzinfo=UTC))  # 22:00 Astana: closed
        closed = await why(api, NUMBER, running)
        assert closed["answer"] == "waiting"
        assert closed["details"]["reason"] == "window_closed"
        assert closed["details"]["until"] == "2026-11-24T05:00:00+00:00"
        assert "window is closed until 10:00" in closed["summary"]
        # The window's edges, a second either side (Astana = UTC+5): open at 20:59:59 and
        # 10:00:00, closed at 21:00:00 and 09:59:59.
        for local, reason in (
            ((20, 59, 59), "behind_queue"),
            ((21, 0, 0), "window_closed"),
            ((9, 59, 59), "window_closed"),
            ((10, 0, 0), "behind_queue"),
        ):
            day = 23 if local[0] >= 10 else 24
            clock.set(datetime(2026, 11, day, local[0], *local[1:], tzinfo=ASTANA))
            edge = await why(api, NUMBER, running)
            assert edge["details"]["reason"] == reason, local


async def test_why_a_triggered_message_that_will_go_stale_says_so(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """A triggered message whose event will be past the campaign's max delay when it can
    first go (the window's opening, or now) is answered "will be dropped as stale", by the
    claim's own rule (stale when claimed after stale_after), a second either side."""
    await members(database, [NUMBER])
    running = await named_campaign(database, [NUMBER], "Top-up thanks")
    opening = datetime(2026, 11, 24, 10, 0, tzinfo=ASTANA)

    async def answer_with(stale_after: datetime) -> dict[str, Any]:
        await database.pool.execute(
            "UPDATE deliveries SET stale_after = $2 WHERE campaign_id = $1", running, stale_after
        )
        return await why(api, NUMBER, running)

    async with running_api(settings, clock, database) as api:
        clock.set(datetime(2026, 11, 23, 22, 0, tzinfo=ASTANA))  # closed until 10:00
        gone = await answer_with(opening - timedelta(seconds=1))
        assert (gone["answer"], gone["details"]["reason"]) == ("waiting", "going_stale")
        assert "dropped as stale" in gone["summary"] and "2026-11-24 09:59" in gone["summary"]
        assert gone["details"]["until"] == "2026-11-24T04:59:59+00:00"
        just = await answer_with(opening)  # claimed at the opening itself: still in time
        assert just["details"]["reason"] == "window_closed"

        deadline = datetime(2026, 11, 24, 12, 0, tzinfo=ASTANA)  # the window open
        for at, reason in (
            (deadline - timedelta(seconds=1), "behind_queue"),
            (deadline, "behind_queue"),
            (deadline + timedelta(seconds=1), "going_stale"),
        ):
            clock.set(at)
            assert (await answer_with(deadline))["details"]["reason"] == reason, at
        late = await answer_with(deadline)
        assert "Waiting: it is past the campaign's max delay" in late["summary"]


async def test_why_sent_with_its_receipt(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    await members(database, [NUMBER, OTHER])
    campaign_id = await named_campaign(database, [NUMBER, OTHER], "Coffee week")
    await sent(database, campaign_id, NUMBER, "delivered", at=NOW - timedelta(hours=1))
    await sent(
        database, campaign_id, OTHER, "expired", at=NOW - timedelta(hours=1), error_code="027"
    )
    async with running_api(settings, clock, database) as api:
        delivered = await why(api, NUMBER, campaign_id)
        assert delivered["answer"] == "sent"
        assert delivered["details"]["outcome"] == "delivered"
        assert delivered["details"]["submitted_at"] == "2026-11-23T11:00:00+00:00"
        assert delivered["details"]["receipt_at"] == "2026-11-23T11:01:00+00:00"
        assert "delivered" in delivered["summary"] and "16:01" in delivered["summary"]
        expired = await why(api, OTHER, campaign_id)
        assert (expired["answer"], expired["details"]["outcome"]) == ("sent", "expired")
        assert expired["details"]["error_code"] == "027"
        assert "error 027" in expired["summary"]


async def test_a_foreign_number_is_named_for_what_it_is(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """A Russian mobile number accepted into an audience (before uploads refused them): the
    lookup says it is not a Kazakhstan mobile number, and what it is, instead of "No
    subscriber"; its history and the why answer still show what happened to it."""
    campaign_id = await named_campaign(database, [RUSSIAN], "Coffee week")
    await suppressed(database, campaign_id, RUSSIAN, "not_member")
    async with running_api(settings, clock, database) as api:
        status, body = await get_json(api, "/api/v1/subscribers/%2B79161234567")
        assert status == 404
        assert "not a Kazakhstan mobile number" in body["error"]["message"]
        assert body["error"]["details"]["number"]["country"] == "RU"
        answer = await why(api, "+7 916 123-45-67", campaign_id)
        assert (await why(api, RUSSIAN, campaign_id))["number"]["msisdn"] == RUSSIAN
        assert answer["number"] == {
            "msisdn": RUSSIAN,
            "country": "RU",
            "country_name": "Russia",
            "type": "mobile",
            "home_mobile": False,
            "description": "a mobile number of Russia",
        }
        assert answer["answer"] == "suppressed"
        assert "not a Kazakhstan mobile number" in answer["summary"]
        status, page = await get_json(api, f"/api/v1/subscribers/{RUSSIAN}/messages")
        assert status == 200, page
        assert page["number"]["home_mobile"] is False
        assert [m["campaign"]["id"] for m in page["messages"]] == [campaign_id]
        await sign_in(api, Role.VIEWER)
        console = await api.client.get("/console/subscribers", params={"msisdn": "+79161234567"})
        text = await console.text()
        assert "not a Kazakhstan mobile number" in text and "Russia" in text
        assert "No subscriber" not in text
        fixed = await api.client.get("/console/subscribers", params={"msisdn": "8 7272 58 44 88"})
        assert "a fixed-line number of Kazakhstan" in await fixed.text()


@hypothesis.settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    prefix=st.sampled_from(["+7", "7", "8", "+7 ", "8 ", "+7(", "8 ("]),
    separators=st.lists(st.sampled_from(["", " ", "-", " - "]), min_size=3, max_size=3),
)
async def test_every_written_form_gets_the_same_answer(
    settings: Settings,
    clock: ManualClock,
    database: Database,
    prefix: str,
    separators: list[str],
) -> None:
    """+7…, 8…, with spaces, dashes or brackets: the number is normalised as the lookup
    does, so every spelling gets the answer of the number itself."""
    campaign_id = await database.pool.fetchval("SELECT id FROM campaigns WHERE name = 'Spellings'")
    if campaign_id is None:
        await members(database, [NUMBER])
        campaign_id = await named_campaign(database, [NUMBER], "Spellings")
        await sent(database, campaign_id, NUMBER, "delivered", at=NOW - timedelta(hours=1))
    area = "701" if not prefix.endswith("(") else "701)"
    a, b, c = separators
    written = f"{prefix}{area}{a}000{b}00{c}42"
    async with running_api(settings, clock, database) as api:
        answer = await why(api, written, campaign_id)
        assert answer["number"]["msisdn"] == NUMBER
        assert (answer["answer"], answer["details"]["outcome"]) == ("sent", "delivered")


# ---------------------------------------------------------------- the console and the CLI


async def test_console_page_shows_history_and_answers_why(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    await members(database, [NUMBER, OTHER])
    campaign_id = await named_campaign(database, [NUMBER, OTHER], "Coffee week")
    await sent(database, campaign_id, NUMBER, "delivered", at=NOW - timedelta(hours=1))
    await sent(
        database, campaign_id, OTHER, "undelivered", at=NOW - timedelta(hours=1), error_code="001"
    )
    async with running_api(settings, clock, database) as api:
        await sign_in(api, Role.VIEWER)
        page = await api.client.get("/console/subscribers", params={"msisdn": NUMBER})
        text = await page.text()
        assert page.status == 200
        assert 'id="messages"' in text and "Coffee week" in text and "Kofe" in text
        assert 'class="msg msg-delivered"' in text
        other = await (
            await api.client.get("/console/subscribers", params={"msisdn": OTHER})
        ).text()
        assert 'class="msg msg-undelivered"' in other and "001" in other
        assert re.search(rf'<option value="{campaign_id}"', text)
        answered = await api.client.get(
            "/console/subscribers", params={"msisdn": OTHER, "campaign": str(campaign_id)}
        )
        body = await answered.text()
        assert answered.status == 200
        assert 'id="why"' in body and "undelivered" in body and "error 001" in body
        bad = await api.client.get(
            "/console/subscribers", params={"msisdn": OTHER, "campaign": "999999"}
        )
        assert bad.status == 404 and "No campaign 999999" in await bad.text()


async def test_cli_subscriber_messages_and_why(database: Database, database_url: str) -> None:
    await members(database, [NUMBER])
    campaign_id = await named_campaign(database, [NUMBER], "Coffee week")
    await sent(
        database, campaign_id, NUMBER, "undelivered", at=NOW - timedelta(hours=1), error_code="001"
    )
    other = await campaign(database, [OTHER])
    env = {"SMARTD_DATABASE_URL": database_url}
    listed = _run("subscriber", "messages", "8 701 000 00 42", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "Coffee week" in listed.stdout and "undelivered" in listed.stdout
    assert "2026-11-23 16:00" in listed.stdout  # Astana time, no seconds
    assert "+00:00" not in listed.stdout and "{" not in listed.stdout
    answered = _run("subscriber", "why", "+77010000042", str(campaign_id), env=env)
    assert answered.returncode == 0, answered.stderr
    assert "undelivered" in answered.stdout and "error 001" in answered.stdout
    assert "answer: sent" in answered.stdout
    missing = _run("subscriber", "why", NUMBER, str(other), env=env)
    assert missing.returncode == 0 and "not in the audience" in missing.stdout
    unknown = _run("subscriber", "why", NUMBER, "999999", env=env)
    assert unknown.returncode != 0 and "no campaign 999999" in unknown.stderr
    invalid = _run("subscriber", "messages", "12", env=env)
    assert invalid.returncode != 0 and "not a phone number" in invalid.stderr
