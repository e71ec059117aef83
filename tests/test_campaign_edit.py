"""Editing drafts, duplicating campaigns, searching the list and schedule warnings (issue 14,
"what will happen before it happens"), over real HTTP against a real database: the API and the
console, with the clock pinned (ManualClock, 2026-11-23 17:00 Astana)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from dispatcher.kernel.states import Role
from tests.test_campaign_support import (
    BASE,
    action,
    create,
    info_payload,
    survey_payload,
    upload,
)
from tests.test_console import _create_form, sign_in
from tests.web_helpers import Api, running_api

MEMBERS = ["77010000001", "77010000002"]


async def patch(api: Api, campaign_id: int, body: Any) -> tuple[int, dict[str, Any]]:
    response = await api.client.patch(
        f"{BASE}/{campaign_id}", json=body, headers=api.auth(Role.MARKETER)
    )
    return response.status, await response.json()


async def duplicate(api: Api, campaign_id: int) -> tuple[int, dict[str, Any]]:
    response = await api.client.post(
        f"{BASE}/{campaign_id}/duplicate", headers=api.auth(Role.MARKETER)
    )
    return response.status, await response.json()


async def listed(api: Api, query: str) -> dict[str, Any]:
    response = await api.client.get(f"{BASE}?{query}", headers=api.auth(Role.VIEWER))
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


async def running(api: Api, payload: dict[str, Any] | None = None) -> int:
    """A campaign with an audience, started (running at the test clock's 17:00)."""
    campaign = await create(api, payload or info_payload(variables=[], texts={"kk": "Сәлем"}))
    status, _ = await upload(api, campaign["id"], "\n".join(MEMBERS).encode())
    assert status == 200
    assert (await action(api, campaign["id"], "start"))[0] == 200
    return int(campaign["id"])


# ------------------------------------------------------------------------------ edit (API)


async def test_patch_edits_every_field_of_a_draft(settings, clock, database) -> None:
    """PATCH changes a draft's name, partner, texts, variables, schedule and priority; what
    it does not name is kept; the answer is the campaign as stored now."""
    async with running_api(settings, clock, database) as api:
        draft = await create(api, info_payload())
        body = {
            "name": "Coffee fortnight",
            "texts": {"kk": "{name}, {discount} жеңілдік", "ru": "{name}, скидка {discount}"},
            "variables": ["name", "discount"],
            "priority": 7,
            "start_at": "2026-11-24T12:00:00+05:00",
            "end_at": "2026-11-30T20:00:00+05:00",
        }
        status, edited = await patch(api, draft["id"], body)
        assert status == 200, edited
        assert edited["id"] == draft["id"] and edited["state"] == "draft"
        assert edited["name"] == "Coffee fortnight"
        assert edited["partner"] == "Coffee Boom"  # not named: kept
        assert edited["texts"] == body["texts"] and edited["priority"] == 7
        assert edited["variables"] == ["name", "discount"]
        assert edited["start_at_local"] == "2026-11-24T12:00:00+05:00"
        assert edited["warnings"] == []
        row = await database.pool.fetchrow("SELECT * FROM campaigns WHERE id = $1", draft["id"])
        assert row["name"] == "Coffee fortnight" and row["priority"] == 7
        assert row["updated_at"] == clock.now()


async def test_patch_validates_like_create(settings, clock, database) -> None:
    """The same rules as create: R15's Kazakh text, declared variables, end in the future;
    a refused edit changes nothing."""
    async with running_api(settings, clock, database) as api:
        draft = await create(api, info_payload())
        status, body = await patch(api, draft["id"], {"texts": {"ru": "Только по-русски"}})
        assert status == 400 and body["error"]["code"] == "invalid_campaign"
        assert "R15" in body["error"]["details"]["texts"]["kk"]
        status, body = await patch(
            api, draft["id"], {"texts": {"kk": "{who}"}, "end_at": "2020-01-01T00:00:00+00:00"}
        )
        assert status == 400
        assert "who" in body["error"]["details"]["texts"]["kk"]
        assert body["error"]["details"]["end_at"] == "must be in the future"
        status, body = await patch(api, draft["id"], ["not", "an", "object"])
        assert status == 400
        status, body = await patch(api, draft["id"], {"survey": survey_payload()["survey"]})
        assert status == 400 and "only a campaign of kind 'survey'" in str(body)
        texts = await database.pool.fetchval(
            "SELECT texts FROM campaigns WHERE id = $1", draft["id"]
        )
        assert texts == info_payload()["texts"]


async def test_patch_refuses_a_campaign_that_is_not_a_draft(settings, clock, database) -> None:
    """Only a draft can be edited: a running campaign is a 409 JSON error saying so."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await running(api)
        status, body = await patch(api, campaign_id, {"name": "Renamed"})
        assert status == 409
        assert body["error"]["code"] == "not_a_draft"
        assert "running" in body["error"]["message"]
        assert "only a draft can be edited" in body["error"]["message"]
        assert body["error"]["details"]["state"] == "running"
        name = await database.pool.fetchval("SELECT name FROM campaigns WHERE id = $1", campaign_id)
        assert name != "Renamed"
        status, body = await patch(api, 999999, {"name": "x"})
        assert status == 404


async def test_patch_keeps_the_columns_of_an_uploaded_audience(settings, clock, database) -> None:
    """A draft with an audience keeps its columns (its rows carry their values); texts may
    change within them."""
    async with running_api(settings, clock, database) as api:
        draft = await create(api, info_payload())
        status, _ = await upload(api, draft["id"], b"msisdn,name\n77010000001,Aida\n")
        assert status == 200
        status, body = await patch(api, draft["id"], {"variables": ["name", "city"]})
        assert status == 409 and body["error"]["code"] == "audience_columns_fixed"
        status, body = await patch(api, draft["id"], {"texts": {"kk": "{name}, сәлем!"}})
        assert status == 200, body


async def test_patch_a_survey_keeps_its_intro_and_changes_its_questions(
    settings, clock, database
) -> None:
    """A survey's intro and questions are edited apart: the stored first message is always
    intro + question 1 (as create composes it)."""
    async with running_api(settings, clock, database) as api:
        payload = survey_payload(texts={"kk": "Сауалнама:", "ru": "Опрос:", "en": "Survey:"})
        draft = await create(api, payload)
        survey = payload["survey"]
        survey["questions"][0]["texts"]["ru"] = "Как связь?"
        status, edited = await patch(api, draft["id"], {"survey": survey})
        assert status == 200, edited
        assert edited["texts"]["ru"] == "Опрос:\nКак связь?\n1. Да\n2. Нет"
        status, edited = await patch(api, draft["id"], {"texts": {"kk": "А", "ru": "Б", "en": "C"}})
        assert status == 200, edited
        assert edited["texts"]["ru"] == "Б\nКак связь?\n1. Да\n2. Нет"
        stored = await database.pool.fetchval(
            "SELECT questions->0->'texts'->>'ru' FROM surveys WHERE campaign_id = $1", draft["id"]
        )
        assert stored == "Как связь?"


# -------------------------------------------------------------------------- duplicate


async def test_duplicate_copies_any_campaign_into_a_new_draft(settings, clock, database) -> None:
    """A running campaign's copy is a draft named "… (copy)" with its texts and settings,
    no audience, and no schedule in the past (a future end is kept)."""
    async with running_api(settings, clock, database) as api:
        payload = info_payload(
            variables=[],
            texts={"kk": "Сәлем", "ru": "Привет"},
            priority=3,
            start_at=(clock.now() - timedelta(hours=1)).isoformat(),
            end_at=(clock.now() + timedelta(days=3)).isoformat(),
        )
        original = await running(api, payload)
        status, copy = await duplicate(api, original)
        assert status == 201, copy
        assert copy["id"] != original and copy["state"] == "draft"
        assert copy["name"] == "Coffee week (copy)" and copy["partner"] == "Coffee Boom"
        assert copy["texts"] == {"kk": "Сәлем", "ru": "Привет"} and copy["priority"] == 3
        assert copy["start_at"] is None
        assert copy["end_at_local"] == "2026-11-26T17:00:00+05:00"
        assert copy["duplicated_from"] == original
        audience = await database.pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE campaign_id = $1", copy["id"]
        )
        assert audience == 0
        assert (await duplicate(api, 999999))[0] == 404


async def test_variable_defaults_survive_an_edit_and_a_copy(settings, clock, database) -> None:
    """A variable's default (issue 14, blank cells) is the campaign's like its texts: an edit
    that does not name it keeps it, one that does replaces it, and a copy carries it."""
    async with running_api(settings, clock, database) as api:
        draft = await create(api, info_payload(variable_defaults={"name": "друг"}))
        status, edited = await patch(api, draft["id"], {"priority": 2})
        assert status == 200, edited
        assert edited["variable_defaults"] == {"name": "друг"}
        status, copy = await duplicate(api, draft["id"])
        assert status == 201, copy
        assert copy["variable_defaults"] == {"name": "друг"}
        status, edited = await patch(api, draft["id"], {"variable_defaults": {"name": ""}})
        assert status == 200, edited
        assert edited["variable_defaults"] == {"name": ""}


async def test_duplicate_copies_a_survey_and_a_long_name(settings, clock, database) -> None:
    """A survey's questions, thank-you and timeout are copied; a 200-character name is
    shortened to make room for " (copy)"."""
    async with running_api(settings, clock, database) as api:
        draft = await create(api, survey_payload(name="S" * 200))
        status, copy = await duplicate(api, draft["id"])
        assert status == 201, copy
        assert copy["name"] == "S" * 193 + " (copy)" and copy["kind"] == "survey"
        assert copy["texts"] == draft["texts"]
        rows = await database.pool.fetch(
            "SELECT questions, thanks, timeout FROM surveys ORDER BY campaign_id"
        )
        assert len(rows) == 2 and dict(rows[0]) == dict(rows[1])


# ----------------------------------------------------------------------- list and search


async def test_list_is_searched_by_name_and_partner(settings, clock, database) -> None:
    """``?q=`` finds a word in the name or the partner, case-insensitively (Cyrillic too);
    ``?name=`` and ``?partner=`` each look in their field; paging keeps the search."""
    async with running_api(settings, clock, database) as api:
        made = {}
        for name, partner in [
            ("Кофе неделя", "Kofe Boom"),
            ("Tea time", "Chaihana"),
            ("Winter КОФЕ", "Shop"),
            ("50%_off", "Кофейня"),
        ]:
            made[name] = (await create(api, info_payload(name=name, partner=partner)))["id"]

        def names(body: dict[str, Any]) -> list[str]:
            return [c["name"] for c in body["campaigns"]]

        assert names(await listed(api, "q=кофе")) == ["50%_off", "Winter КОФЕ", "Кофе неделя"]
        assert names(await listed(api, "q=KOFE")) == ["Кофе неделя"]
        assert names(await listed(api, "name=кофе")) == ["Winter КОФЕ", "Кофе неделя"]
        assert names(await listed(api, "partner=chai")) == ["Tea time"]
        assert names(await listed(api, "q=%25_")) == ["50%_off"]  # LIKE's wildcards literal
        assert names(await listed(api, "q=nothing")) == []
        first = await listed(api, "q=кофе&limit=2")
        assert names(first) == ["50%_off", "Winter КОФЕ"]
        second = await listed(api, f"q=кофе&limit=2&before={first['next_before']}")
        assert names(second) == ["Кофе неделя"]
        response = await api.client.get(f"{BASE}?q={'x' * 201}", headers=api.auth(Role.VIEWER))
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "invalid_query"


async def test_list_shows_schedules_in_local_time(settings, clock, database) -> None:
    """Each listed campaign carries its start and end in the program's local time, to the
    second (no microseconds)."""
    async with running_api(settings, clock, database) as api:
        await create(
            api,
            info_payload(
                start_at="2026-11-24T05:00:00.123456+00:00", end_at="2026-11-25T16:00:00+00:00"
            ),
        )
        (campaign,) = (await listed(api, ""))["campaigns"]
        assert campaign["start_at_local"] == "2026-11-24T10:00:00+05:00"
        assert campaign["end_at_local"] == "2026-11-25T21:00:00+05:00"


# --------------------------------------------------------------------- schedule warnings


@pytest.mark.parametrize(
    ("start", "warned", "opens"),
    [
        ("2026-11-24T09:59:59+05:00", True, "2026-11-24 10:00"),
        ("2026-11-24T10:00:00+05:00", False, None),
        ("2026-11-24T20:59:59+05:00", False, None),
        ("2026-11-24T21:00:00+05:00", True, "2026-11-25 10:00"),
    ],
)
async def test_a_start_outside_the_window_is_warned(
    settings, clock, database, start: str, warned: bool, opens: str | None
) -> None:
    """A start_at outside 10:00-21:00 Astana warns that nothing goes before the window
    opens, and says when (local time); one a second inside does not."""
    async with running_api(settings, clock, database) as api:
        body = await create(api, info_payload(start_at=start))
        codes = [w["code"] for w in body["warnings"]]
        assert codes == (["start_outside_window"] if warned else [])
        if warned:
            message = body["warnings"][0]["message"]
            assert f"opens at {opens}" in message and "nothing is sent before" in message


@pytest.mark.parametrize(
    ("end", "nothing_sent"),
    [("2026-11-25T10:00:00+05:00", True), ("2026-11-25T10:00:01+05:00", False)],
)
async def test_an_end_before_the_window_opens_is_warned(
    settings, clock, database, end: str, nothing_sent: bool
) -> None:
    """Starting at 21:00 and ending at the next 10:00 sends nothing at all: warned; ending a
    second later leaves a second of window: only the start is warned."""
    async with running_api(settings, clock, database) as api:
        draft = await create(api, info_payload())
        status, body = await patch(
            api, draft["id"], {"start_at": "2026-11-24T21:00:00+05:00", "end_at": end}
        )
        assert status == 200, body
        codes = [w["code"] for w in body["warnings"]]
        expected = ["start_outside_window"] + (["ends_before_window_opens"] if nothing_sent else [])
        assert codes == expected
        if nothing_sent:
            assert "nothing will be sent at all" in body["warnings"][1]["message"]


async def test_no_start_and_an_end_before_the_next_opening_is_warned(
    settings, clock, database
) -> None:
    """Without start_at the campaign starts when started: at 21:30 local with an end at
    09:00 the next morning nothing can go."""
    clock.set(clock.now().replace(hour=16, minute=30))  # 21:30 Astana
    async with running_api(settings, clock, database) as api:
        body = await create(api, info_payload(end_at="2026-11-24T09:00:00+05:00"))
        assert [w["code"] for w in body["warnings"]] == ["ends_before_window_opens"]


# ----------------------------------------------------------------------------- console


async def test_console_edit_form_is_prefilled_and_saves(settings, clock, database) -> None:
    """The edit form of a draft shows its fields; submitting it changes the draft and goes
    back to its page, which warns of a start outside the window."""
    async with running_api(settings, clock, database) as api:
        draft = await create(
            api,
            info_payload(start_at="2026-11-24T12:00:00+05:00", variable_defaults={"name": "друг"}),
        )
        csrf = await sign_in(api, Role.MARKETER)
        page = await api.client.get(f"/console/campaigns/{draft['id']}/edit")
        text = await page.text()
        assert page.status == 200, text
        assert 'value="Coffee week"' in text and 'value="2026-11-24T12:00"' in text
        assert ">name=друг</textarea>" in text
        assert "{name}, скидка 20% в Coffee Boom</textarea>" in text
        assert 'value="name"' in text
        fields = {
            "name": "Coffee week 2",
            "partner": "Coffee Boom",
            "kind": "info",
            "scope": "smart",
            "text_kk": "{name}, жеңілдік",
            "text_ru": "{name}, скидка",
            "variables": "name",
            "start_at": "2026-11-24T08:30",
            "end_at": "",
        }
        response = await api.client.post(
            f"/console/campaigns/{draft['id']}/edit",
            data=_create_form(csrf, fields, None),
            allow_redirects=False,
        )
        assert response.status == 303, await response.text()
        location = response.headers["Location"]
        assert location == f"/console/campaigns/{draft['id']}?done=edited"
        row = await database.pool.fetchrow("SELECT * FROM campaigns WHERE id = $1", draft["id"])
        assert row["name"] == "Coffee week 2" and "en" not in row["texts"]
        assert row["variable_defaults"] in ({}, "{}")  # the emptied defaults box clears them
        shown = await (await api.client.get(location)).text()
        assert "Campaign saved" in shown
        assert re.search(r"nothing is sent before it opens at 2026-11-24 10:00", shown)


async def test_console_edit_refuses_a_running_campaign(settings, clock, database) -> None:
    """A running campaign has no edit form (409 page offering a copy) and its page no Edit
    link; a bad edit of a draft comes back with the problems (400)."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await running(api)
        csrf = await sign_in(api, Role.MARKETER)
        page = await api.client.get(f"/console/campaigns/{campaign_id}/edit")
        assert page.status == 409
        assert "Only a draft can be edited" in await page.text()
        response = await api.client.post(
            f"/console/campaigns/{campaign_id}/edit",
            data=_create_form(csrf, {"name": "x", "text_kk": "x"}, None),
        )
        assert response.status == 409
        shown = await (await api.client.get(f"/console/campaigns/{campaign_id}")).text()
        assert f'href="/console/campaigns/{campaign_id}/edit"' not in shown
        assert f'action="/console/campaigns/{campaign_id}/duplicate"' in shown
        draft = await create(api, info_payload())
        bad = await api.client.post(
            f"/console/campaigns/{draft['id']}/edit",
            data=_create_form(csrf, {"name": "", "kind": "info", "text_ru": "x"}, None),
        )
        assert bad.status == 400
        assert "required language kk is missing" in await bad.text()


async def test_console_duplicate_makes_a_draft(settings, clock, database) -> None:
    """The Duplicate button copies the campaign and opens the copy; a viewer cannot."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await running(api)
        csrf = await sign_in(api, Role.MARKETER)
        response = await api.client.post(
            f"/console/campaigns/{campaign_id}/duplicate",
            data={"csrf": csrf},
            allow_redirects=False,
        )
        assert response.status == 303, await response.text()
        copy_id = await database.pool.fetchval("SELECT max(id) FROM campaigns")
        assert response.headers["Location"] == (
            f"/console/campaigns/{copy_id}?done=duplicated&from={campaign_id}"
        )
        page = await (await api.client.get(response.headers["Location"])).text()
        assert "Coffee week (copy)" in page and f"copy of campaign #{campaign_id}" in page
        assert f'href="/console/campaigns/{copy_id}/edit"' in page
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.VIEWER)
        refused = await api.client.post(
            f"/console/campaigns/{campaign_id}/duplicate", data={"csrf": csrf}
        )
        assert refused.status == 403


async def test_console_list_search_and_schedule(settings, clock, database) -> None:
    """The list's search box finds by name or partner; it shows each start and end in local
    time, and the pager keeps the search."""
    async with running_api(settings, clock, database) as api:
        await create(api, info_payload(name="Tea", partner="Chaihana"))
        await create(
            api,
            info_payload(
                name="Кофе day",
                partner="Kofe",
                start_at="2026-11-24T05:00:00+00:00",
                end_at="2026-11-25T16:00:00+00:00",
            ),
        )
        await sign_in(api, Role.VIEWER)
        page = await api.client.get("/console/campaigns?q=КОФЕ")
        text = await page.text()
        assert page.status == 200
        assert "Кофе day" in text and "Chaihana" not in text
        assert 'name="q" value="КОФЕ"' in text
        assert "2026-11-24 10:00" in text and "2026-11-25 21:00" in text
        by_partner = await (await api.client.get("/console/campaigns?q=chaih")).text()
        assert "Tea" in by_partner and "Кофе day" not in by_partner
        none = await (await api.client.get("/console/campaigns?q=zzz")).text()
        assert "No campaigns match" in none
