"""Maker-checker approval and the audit trail (issue 15), over real HTTP against a real
database: a second person approves a campaign before it starts (SMARTD_APPROVAL_REQUIRED),
never its creator; a change of its texts or audience clears the approval; every operator
action is recorded append-only, in the action's own transaction, and read through
``GET /api/v1/audit``. The clock is pinned (2026-11-23 17:00 Astana)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from dispatcher.db import Database
from dispatcher.kernel.audit import Actor
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from dispatcher.tokens import TokenRepository
from tests.factories import subscribers
from tests.test_campaign_support import BASE, action, create, survey_payload, upload
from tests.web_helpers import Api, running_api

A, M, V = Role.ADMIN, Role.MARKETER, Role.VIEWER
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MEMBERS = ["77010000001", "77010000002", "77010000003"]
AUDIENCE = "\n".join(MEMBERS).encode()
PAYLOAD = {
    "name": "Coffee week",
    "partner": "Coffee Boom",
    "kind": "info",
    "texts": {"kk": "Coffee Boom-да 20% жеңілдік", "ru": "Скидка 20% в Coffee Boom"},
}


@pytest.fixture
async def checked(settings: Settings, clock: ManualClock, database: Database) -> AsyncIterator[Api]:
    """The app with maker-checker on (SMARTD_APPROVAL_REQUIRED=true)."""
    on = dataclasses.replace(settings, approval_required=True)
    async with running_api(on, clock, database) as api:
        yield api


async def approve(
    api: Api, campaign_id: int, role: Role = A, body: Any = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token or api.tokens[role]}"}
    response = await api.client.post(f"{BASE}/{campaign_id}/approve", json=body, headers=headers)
    return response.status, await response.json()


async def trail(api: Api, role: Role = A, **query: Any) -> dict[str, Any]:
    response = await api.client.get("/api/v1/audit", params=query, headers=api.auth(role))
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def actions_of(api: Api, campaign_id: int) -> list[tuple[str, str]]:
    """The campaign's history, oldest first: (action, actor)."""
    events = (await trail(api, campaign_id=campaign_id))["events"]
    return [(e["action"], e["actor"]) for e in reversed(events)]


async def draft_with_audience(api: Api) -> int:
    campaign = await create(api, PAYLOAD)  # by test-marketer
    status, body = await upload(api, campaign["id"], AUDIENCE)
    assert status == 200, body
    return int(campaign["id"])


# ------------------------------------------------------------------------ approval rules


async def test_start_is_refused_until_another_person_approves(checked: Api) -> None:
    """With approval required, a start without an approval is 409 approval_required and
    changes nothing; the creator's own approval is 409 self_approval; an admin's approval
    records who and which content version, and then the start runs."""
    campaign_id = await draft_with_audience(checked)
    status, body = await action(checked, campaign_id, "start")
    assert status == 409, body
    assert body["error"]["code"] == "approval_required"
    assert body["error"]["details"]["state"] == "draft"

    status, body = await approve(checked, campaign_id, M)
    assert status == 409 and body["error"]["code"] == "self_approval", body

    status, approved = await approve(checked, campaign_id, A, {"version": 2})
    assert status == 200, approved
    assert approved["state"] == "draft" and approved["content_version"] == 2
    assert approved["approval"] == {
        "by": "test-admin",
        "role": "admin",
        "at": "2026-11-23T12:00:00+00:00",
        "version": 2,
    }
    status, started = await action(checked, campaign_id, "start")
    assert status == 200 and started["state"] == "running", started
    assert await actions_of(checked, campaign_id) == [
        ("create", "test-marketer"),
        ("upload", "test-marketer"),
        ("approve", "test-admin"),
        ("start", "test-marketer"),
    ]


async def test_a_scheduled_start_needs_the_approval_too(checked: Api) -> None:
    """A start with start_at ahead (→ scheduled) is refused alike without an approval."""
    campaign = await create(checked, PAYLOAD | {"start_at": "2026-11-24T11:00:00+05:00"})
    assert (await upload(checked, campaign["id"], AUDIENCE))[0] == 200
    status, body = await action(checked, campaign["id"], "start")
    assert status == 409 and body["error"]["code"] == "approval_required", body
    assert (await approve(checked, campaign["id"]))[0] == 200
    status, body = await action(checked, campaign["id"], "start")
    assert status == 200 and body["state"] == "scheduled", body


async def test_an_edit_after_approval_needs_a_new_approval(checked: Api) -> None:
    """PATCHing an approved draft's texts clears its approval (a new content version): the
    start is refused again, the edit's record says the approval was cleared, and a new
    approval of the new version lets it start."""
    campaign_id = await draft_with_audience(checked)
    assert (await approve(checked, campaign_id))[0] == 200
    response = await checked.client.patch(
        f"{BASE}/{campaign_id}",
        json={"texts": {"kk": "Жаңа мәтін", "ru": "Новый текст"}},
        headers=checked.auth(M),
    )
    edited = await response.json()
    assert response.status == 200, edited
    assert edited["approval"] is None and edited["content_version"] == 3
    status, body = await action(checked, campaign_id, "start")
    assert status == 409 and body["error"]["code"] == "approval_required", body
    edit = (await trail(checked, campaign_id=campaign_id, action="edit"))["events"][0]
    assert edit["details"] == {"changed": ["texts"], "content_version": 3, "approval_cleared": True}
    status, body = await approve(checked, campaign_id, A, {"version": 2})  # what they saw before
    assert status == 409 and body["error"]["code"] == "content_changed", body
    assert (await approve(checked, campaign_id, A, {"version": 3}))[0] == 200
    assert (await action(checked, campaign_id, "start"))[0] == 200


async def test_a_survey_question_edit_clears_the_approval(checked: Api) -> None:
    """A survey's second question changed (its first message, the campaign's texts, stays
    the same) is a change of content too."""
    campaign = await create(checked, survey_payload())
    assert (await upload(checked, campaign["id"], AUDIENCE))[0] == 200
    assert (await approve(checked, campaign["id"]))[0] == 200
    survey = survey_payload()["survey"]
    survey["questions"][1]["texts"]["ru"] = "Посоветуете нас друзьям?"
    response = await checked.client.patch(
        f"{BASE}/{campaign['id']}", json={"survey": survey}, headers=checked.auth(M)
    )
    edited = await response.json()
    assert response.status == 200 and edited["approval"] is None, edited
    event = (await trail(checked, campaign_id=campaign["id"], action="edit"))["events"][0]
    assert event["details"]["changed"] == ["survey"]


async def test_an_upload_after_approval_sends_it_back(checked: Api) -> None:
    """More recipients for an approved draft clear the approval; for an approved campaign
    scheduled to start later, they send it back to draft, to be approved again."""
    campaign = await create(checked, PAYLOAD | {"start_at": "2026-11-24T11:00:00+05:00"})
    assert (await upload(checked, campaign["id"], MEMBERS[0].encode()))[0] == 200
    assert (await approve(checked, campaign["id"]))[0] == 200
    assert (await action(checked, campaign["id"], "start"))[1]["state"] == "scheduled"
    status, body = await upload(checked, campaign["id"], MEMBERS[1].encode())
    assert status == 200, body
    got = await checked.client.get(f"{BASE}/{campaign['id']}", headers=checked.auth(A))
    report = await got.json()
    assert report["state"] == "draft"
    assert report["approval"] is None
    event = (await trail(checked, campaign_id=campaign["id"], action="upload"))["events"][0]
    assert event["details"] == {
        "upload_no": 2,
        "lines": 1,
        "accepted": 1,
        "duplicates": 0,
        "rejected": 0,
        "approval_cleared": True,
        "state": "draft",
    }


async def test_a_started_campaigns_audience_is_frozen(checked: Api) -> None:
    """Under maker-checker a paused campaign takes no more recipients (409 approval_frozen),
    and nothing of the refused upload is recorded."""
    campaign_id = await draft_with_audience(checked)
    assert (await approve(checked, campaign_id))[0] == 200
    assert (await action(checked, campaign_id, "start"))[0] == 200
    assert (await action(checked, campaign_id, "pause"))[0] == 200
    status, body = await upload(checked, campaign_id, b"77010000009\n")
    assert status == 409 and body["error"]["code"] == "approval_frozen", body
    uploads = (await trail(checked, campaign_id=campaign_id, action="upload"))["events"]
    assert len(uploads) == 1


async def test_two_approvers_racing_one_wins(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Two checkers approving at once: one approval, one 409 already_approved, one record."""
    second, _ = await TokenRepository(database.pool).create("checker-2", Role.ADMIN)
    on = dataclasses.replace(settings, approval_required=True)
    async with running_api(on, clock, database) as api:
        campaign_id = await draft_with_audience(api)
        results = await asyncio.gather(
            approve(api, campaign_id, A), approve(api, campaign_id, token=second)
        )
        statuses = sorted(status for status, _ in results)
        assert statuses == [200, 409], results
        loser = next(body for status, body in results if status == 409)
        assert loser["error"]["code"] == "already_approved"
        approvals = (await trail(api, campaign_id=campaign_id, action="approve"))["events"]
        assert len(approvals) == 1


async def test_only_the_approver_roles_approve(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """With SMARTD_APPROVER_ROLES=admin, a marketer who did not create the campaign is 403
    not_an_approver; a viewer cannot call approve at all."""
    other, _ = await TokenRepository(database.pool).create("marketer-2", Role.MARKETER)
    only_admins = dataclasses.replace(settings, approval_required=True, approver_roles=("admin",))
    async with running_api(only_admins, clock, database) as api:
        campaign_id = await draft_with_audience(api)
        status, body = await approve(api, campaign_id, token=other)
        assert status == 403 and body["error"]["code"] == "not_an_approver", body
        assert (await approve(api, campaign_id, V))[0] == 403
        assert (await approve(api, campaign_id, A))[0] == 200


@pytest.mark.parametrize(
    "body", [[], {"version": "2"}, {"version": 0}, {"version": 2.0}, {"version": True}]
)
async def test_a_malformed_approval_is_400(checked: Api, body: Any) -> None:
    """The optional body is {"version": n}; anything else is 400 invalid_approval."""
    campaign_id = await draft_with_audience(checked)
    status, answer = await approve(checked, campaign_id, A, body)
    assert status == 400 and answer["error"]["code"] == "invalid_approval", answer


async def test_approval_off_keeps_starting_as_before(api: Api) -> None:
    """Without SMARTD_APPROVAL_REQUIRED a draft starts unapproved (and is still audited)."""
    campaign_id = await draft_with_audience(api)
    assert (await action(api, campaign_id, "start"))[0] == 200
    assert [a for a, _ in await actions_of(api, campaign_id)] == ["create", "upload", "start"]


# ------------------------------------------------------------------------ the audit trail


async def test_every_operator_action_is_recorded(api: Api, database: Database) -> None:
    """create, edit, upload, approve, start, pause, resume, cancel, duplicate (a create) and
    token create and revoke each leave one event with who, when and what: counts and field
    names, never a subscriber's number nor a token."""
    tokens = TokenRepository(database.pool)
    secret, info = await tokens.create("ops-bot", Role.VIEWER, actor=Actor("root-admin", "admin"))
    assert await tokens.revoke(info.id, NOW, actor=Actor("root-admin", "admin"))
    campaign_id = await draft_with_audience(api)
    response = await api.client.patch(
        f"{BASE}/{campaign_id}", json={"priority": 3}, headers=api.auth(M)
    )
    assert response.status == 200
    assert (await approve(api, campaign_id))[0] == 200
    for name in ("start", "pause", "resume", "cancel"):
        assert (await action(api, campaign_id, name))[0] == 200, name
    copy = await api.client.post(f"{BASE}/{campaign_id}/duplicate", headers=api.auth(A))
    copy_id = (await copy.json())["id"]

    events = (await trail(api))["events"]
    seen = [(e["action"], e["actor"], e["campaign_id"]) for e in reversed(events)]
    assert seen[-11:] == [
        ("token_create", "root-admin", None),
        ("token_revoke", "root-admin", None),
        ("create", "test-marketer", campaign_id),
        ("upload", "test-marketer", campaign_id),
        ("edit", "test-marketer", campaign_id),
        ("approve", "test-admin", campaign_id),
        ("start", "test-marketer", campaign_id),
        ("pause", "test-marketer", campaign_id),
        ("resume", "test-marketer", campaign_id),
        ("cancel", "test-marketer", campaign_id),
        ("create", "test-admin", copy_id),
    ]
    by_action = {e["action"]: e for e in reversed(events)}  # the newest of each
    assert by_action["token_create"]["target"] == f"token:{info.id}"
    assert by_action["token_create"]["details"] == {
        "name": "ops-bot",
        "role": "viewer",
        "expires_at": None,
    }
    assert by_action["upload"]["details"]["accepted"] == len(MEMBERS)
    assert by_action["edit"]["details"]["changed"] == ["priority"]
    assert by_action["cancel"]["details"] == {"state": "cancelled", "suppressed": len(MEMBERS)}
    assert by_action["create"]["details"]["duplicated_from"] == campaign_id
    assert all(e["at"] == "2026-11-23T12:00:00+00:00" for e in events if e["campaign_id"])
    written = json.dumps(events)
    assert secret not in written
    assert not any(number[1:] in written for number in MEMBERS)


async def test_a_refused_action_leaves_no_record(api: Api, database: Database) -> None:
    """A start without an audience, an invalid edit, a refused file, a second revoke: each
    is refused and none leaves an event (the record is in the action's transaction)."""
    campaign = await create(api, PAYLOAD)
    before = await database.pool.fetchval("SELECT count(*) FROM audit_events")
    assert (await action(api, campaign["id"], "start"))[0] == 409
    bad = await api.client.patch(
        f"{BASE}/{campaign['id']}", json={"texts": {"ru": "нет казахского"}}, headers=api.auth(M)
    )
    assert bad.status == 400
    assert (await upload(api, campaign["id"], b"\xff\xfe not utf-8\n"))[0] == 400
    assert (await action(api, campaign["id"], "resume"))[0] == 409
    assert not await TokenRepository(database.pool).revoke(999_999, NOW)
    assert await database.pool.fetchval("SELECT count(*) FROM audit_events") == before


async def test_a_failing_record_undoes_its_action(database: Database, clock: ManualClock) -> None:
    """The record is part of the action: when it cannot be written (an actor name past the
    column's bound), the start it records does not happen either."""
    from campaigns.repository import CampaignRepository
    from campaigns.spec import parse_campaign

    repository = CampaignRepository(database.pool)
    spec = parse_campaign(PAYLOAD, clock.now(), 10, ("kk",))
    campaign = await repository.create(spec, "maker", clock.now())
    await database.pool.execute(
        "INSERT INTO deliveries (campaign_id, msisdn) VALUES ($1, $2)", campaign.id, MEMBERS[0]
    )
    with pytest.raises(asyncpg.CheckViolationError):
        await repository.transition(campaign.id, "start", clock.now(), actor=Actor("x" * 201))
    assert (await repository.get(campaign.id)).state.value == "draft"  # type: ignore[union-attr]


async def test_filters_and_paging(api: Api) -> None:
    """Newest first; ?limit pages with next_before; ?action, ?actor, ?campaign_id, ?since
    and ?until filter."""
    first = await draft_with_audience(api)
    second = await draft_with_audience(api)
    everything = (await trail(api))["events"]  # the fixture's tokens' creation too
    assert [e["action"] for e in everything[:4]] == ["upload", "create", "upload", "create"]
    paged, before = [], None
    while True:
        page = await trail(api, limit=3, **({"before": before} if before else {}))
        assert len(page["events"]) <= 3
        paged += page["events"]
        if (before := page["next_before"]) is None:
            break
    assert paged == everything
    ids = [e["id"] for e in paged]
    assert ids == sorted(ids, reverse=True)
    uploads = (await trail(api, action="upload"))["events"]
    assert [e["campaign_id"] for e in uploads] == [second, first]
    assert (await trail(api, actor="test-admin"))["events"] == []
    assert len((await trail(api, campaign_id=first))["events"]) == 2
    window = {"since": "2026-11-23T17:00:00+05:00", "until": "2026-11-23T17:00:01+05:00"}
    assert len((await trail(api, **window))["events"]) == 4
    assert (await trail(api, until="2026-11-23T17:00:00+05:00"))["events"] == []


async def test_who_reads_the_trail(api: Api) -> None:
    """An admin reads all of it; a marketer one campaign's history (else 403
    campaign_required); a viewer none."""
    campaign_id = await draft_with_audience(api)
    response = await api.client.get("/api/v1/audit", headers=api.auth(M))
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "campaign_required"
    assert len((await trail(api, M, campaign_id=campaign_id))["events"]) == 2
    response = await api.client.get(
        "/api/v1/audit", params={"campaign_id": campaign_id}, headers=api.auth(V)
    )
    assert response.status == 403


@pytest.mark.parametrize(
    "query",
    [
        {"action": "delete"},
        {"since": "2026-11-23T12:00:00"},  # no offset
        {"until": "yesterday"},
        {"campaign_id": "0"},
        {"limit": "501"},
        {"before": "x"},
        {"actor": "x" * 201},
    ],
)
async def test_bad_filters_are_400(api: Api, query: dict[str, str]) -> None:
    """Each filter is checked: 400 invalid_query naming the field."""
    response = await api.client.get("/api/v1/audit", params=query, headers=api.auth(A))
    body = await response.json()
    assert response.status == 400, body
    assert body["error"]["code"] == "invalid_query"
    assert body["error"]["details"]["field"] == next(iter(query))


# ------------------------------------------------------------------------ the database


async def test_the_trail_refuses_update_delete_and_truncate(api: Api, database: Database) -> None:
    """audit_events is append-only in the database itself."""
    await draft_with_audience(api)
    async with database.pool.acquire() as conn:
        count = await conn.fetchval("SELECT count(*) FROM audit_events")
        assert count >= 2
        for statement in (
            "UPDATE audit_events SET actor = 'someone else'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM audit_events") == count


async def test_the_database_holds_the_approval_rules(api: Api, database: Database) -> None:
    """Past the application: no self-approval, no stale approval, and a campaign started
    under maker-checker cannot be running without one; a change of texts clears it."""
    campaign_id = await draft_with_audience(api)
    async with database.pool.acquire() as conn:
        with pytest.raises(asyncpg.CheckViolationError, match="campaigns_not_self_approved"):
            await conn.execute(
                "UPDATE campaigns SET approved_by = created_by, approved_at = now(), "
                "approved_version = content_version WHERE id = $1",
                campaign_id,
            )
        with pytest.raises(asyncpg.CheckViolationError, match="campaigns_approval_current"):
            await conn.execute(
                "UPDATE campaigns SET approved_by = 'checker', approved_at = now(), "
                "approved_version = content_version - 1 WHERE id = $1",
                campaign_id,
            )
        with pytest.raises(asyncpg.CheckViolationError, match="campaigns_started_approved"):
            await conn.execute(
                "UPDATE campaigns SET state = 'running', approval_required = true WHERE id = $1",
                campaign_id,
            )
        await conn.execute(
            "UPDATE campaigns SET approved_by = 'checker', approved_at = now(), "
            "approved_version = content_version WHERE id = $1",
            campaign_id,
        )
        await conn.execute(
            'UPDATE campaigns SET texts = \'{"kk": "басқа"}\' WHERE id = $1', campaign_id
        )
        row = await conn.fetchrow(
            "SELECT approved_by, content_version FROM campaigns WHERE id = $1", campaign_id
        )
    assert row["approved_by"] is None and row["content_version"] == 3


async def test_clock_is_the_callers(api: Api, clock: ManualClock) -> None:
    """Events carry the service's clock, not the database's."""
    clock.advance(timedelta(days=3))
    campaign = await create(api, PAYLOAD)
    event = (await trail(api, campaign_id=campaign["id"]))["events"][0]
    assert event["at"] == "2026-11-26T12:00:00+00:00"


async def test_a_segment_is_an_upload_of_the_audience(checked: Api, database: Database) -> None:
    """A segment audience is recorded as an upload (the segment and how many it added) and,
    like a file, clears an approval."""
    await subscribers(database, MEMBERS)
    campaign_id = await draft_with_audience(checked)
    assert (await approve(checked, campaign_id))[0] == 200
    response = await checked.client.post(
        f"{BASE}/{campaign_id}/audience",
        json={"segment": "active_subscribers"},
        headers=checked.auth(M),
    )
    assert response.status == 200, await response.text()
    event = (await trail(checked, campaign_id=campaign_id, action="upload"))["events"][0]
    assert event["details"] == {
        "segment": "active_subscribers",
        "accepted": 0,  # every subscriber was in the file already
        "approval_cleared": True,
    }
    status, body = await action(checked, campaign_id, "start")
    assert status == 409 and body["error"]["code"] == "approval_required", body


TEXTS_B = {"kk": "Coffee Boom-да 30% жеңілдік", "ru": "Скидка 30% в Coffee Boom"}
TOP_UP = {"event": "top_up", "condition": {"field": "amount", "op": ">=", "value": 1000}}


@pytest.mark.parametrize(
    ("first", "edit", "changed"),
    [
        ({}, {"holdout_percent": 10}, ["holdout_percent"]),
        (
            {},
            {
                "variants": [
                    {"name": "A", "texts": PAYLOAD["texts"], "percent": 50},
                    {"name": "B", "texts": TEXTS_B, "percent": 50},
                ]
            },
            ["variants"],
        ),
        (
            {"trigger": TOP_UP},
            {"trigger": {**TOP_UP, "condition": {**TOP_UP["condition"], "value": 5000}}},
            ["trigger"],
        ),
    ],
    ids=["holdout", "variants", "trigger"],
)
async def test_a_split_or_trigger_edit_clears_the_approval(
    checked: Api, first: dict[str, Any], edit: dict[str, Any], changed: list[str]
) -> None:
    """The holdout, the variants and the trigger (issue 15's other parts) are content an
    approval freezes (migration 0042): an edit of one clears the approval, names it in the
    trail, and the start is refused until a new approval."""
    campaign = await create(checked, PAYLOAD | first)
    campaign_id = int(campaign["id"])
    if "trigger" not in first:
        status, body = await upload(checked, campaign_id, AUDIENCE)
        assert status == 200, body
    assert (await approve(checked, campaign_id))[0] == 200
    response = await checked.client.patch(
        f"{BASE}/{campaign_id}", json=edit, headers=checked.auth(M)
    )
    edited = await response.json()
    assert response.status == 200, edited
    assert edited["approval"] is None
    status, body = await action(checked, campaign_id, "start")
    assert status == 409 and body["error"]["code"] == "approval_required", body
    record = (await trail(checked, campaign_id=campaign_id, action="edit"))["events"][0]
    assert record["details"]["changed"] == changed and record["details"]["approval_cleared"]
    assert (await approve(checked, campaign_id))[0] == 200
    assert (await action(checked, campaign_id, "start"))[0] == 200
