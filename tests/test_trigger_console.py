"""The console's "Triggered by event" (issue 15): the create form makes a triggered
campaign, the campaign page shows its rule and counts (R11 for partner-facing roles), an
edit keeps or clears the trigger, bad conditions come back beside the field."""

from __future__ import annotations

from dispatcher.kernel.states import Role
from tests.factories import members
from tests.test_console import _create_form, sign_in
from tests.test_triggers import MEMBER, event
from tests.web_helpers import running_api

FIELDS = {
    "name": "Top-up thanks",
    "kind": "info",
    "scope": "smart",
    "text_kk": "Рақмет!",
    "text_ru": "Спасибо!",
    "trigger_event": "top_up",
    "trigger_condition": "amount >= 1000",
    "trigger_max_delay": "12h",
}


async def test_create_start_and_page(settings, clock, database) -> None:
    """The form makes the trigger; started (confirmed), the page says its rule and counts;
    the audience card offers no upload; a marketer (partner-facing) sees "< 5"."""
    await members(database, [MEMBER])
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.ADMIN)  # exact counts on the page
        response = await api.client.post(
            "/console/campaigns/new", data=_create_form(csrf, FIELDS, None), allow_redirects=False
        )
        assert response.status == 303, await response.text()
        row = await database.pool.fetchrow("SELECT * FROM campaigns")
        assert row["trigger_event"] == "top_up"
        assert row["trigger_condition"] == {"field": "amount", "op": ">=", "value": 1000}
        assert row["trigger_max_delay"].total_seconds() == 12 * 3600
        cid = row["id"]
        started = await api.client.post(
            f"/console/campaigns/{cid}/start",
            data={"csrf": csrf, "confirm": "yes"},
            allow_redirects=False,
        )
        assert started.status == 303, await started.text()
        await event(api, MEMBER, amount=1500)
        page = await (await api.client.get(f"/console/campaigns/{cid}")).text()
        assert 'id="trigger-counts"' in page
        assert "<code>amount &gt;= 1000</code>" in page
        assert "12h after its event is dropped as stale" in page
        assert 'id="trigger-matched">1<' in page and 'id="trigger-waiting">1<' in page
        assert 'id="audience-triggered"' in page
        assert f'action="/console/campaigns/{cid}/audience"' not in page
        await api.client.post("/console/logout", data={"csrf": csrf}, allow_redirects=False)
        await sign_in(api, Role.MARKETER)  # partner-facing: a count under 5 is hidden (R11)
        page = await (await api.client.get(f"/console/campaigns/{cid}")).text()
        assert 'id="trigger-matched">&lt; 5<' in page


async def test_bad_condition_comes_back(settings, clock, database) -> None:
    """A condition that is not ``field op value`` or names no field of the event: 400 with
    the problem, nothing created."""
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.MARKETER)
        for condition, said in (
            ("amount is big", "expected &#39;field op value&#39;"),
            ("tariff = Smart", "top_up events have the field(s) amount"),
        ):
            fields = FIELDS | {"trigger_condition": condition}
            response = await api.client.post(
                "/console/campaigns/new", data=_create_form(csrf, fields, None)
            )
            text = await response.text()
            assert response.status == 400
            assert 'id="trigger-condition-error"' in text and said in text, text
        assert await database.pool.fetchval("SELECT count(*) FROM campaigns") == 0


async def test_edit_keeps_and_clears_the_trigger(settings, clock, database) -> None:
    """The edit form is filled with the trigger; saved as is it stays, emptied it goes."""
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.MARKETER)
        await api.client.post(
            "/console/campaigns/new", data=_create_form(csrf, FIELDS, None), allow_redirects=False
        )
        cid = await database.pool.fetchval("SELECT id FROM campaigns")
        form = await (await api.client.get(f"/console/campaigns/{cid}/edit")).text()
        assert 'value="amount &gt;= 1000"' in form and 'value="PT12H"' in form
        assert '<option value="top_up" selected>' in form
        saved = await api.client.post(
            f"/console/campaigns/{cid}/edit",
            data=_create_form(csrf, FIELDS | {"trigger_max_delay": "PT12H"}, None),
            allow_redirects=False,
        )
        assert saved.status == 303, await saved.text()
        assert (
            await database.pool.fetchval("SELECT trigger_event FROM campaigns WHERE id = $1", cid)
            == "top_up"
        )
        cleared = FIELDS | {"trigger_event": "", "trigger_condition": "", "trigger_max_delay": ""}
        saved = await api.client.post(
            f"/console/campaigns/{cid}/edit",
            data=_create_form(csrf, cleared, None),
            allow_redirects=False,
        )
        assert saved.status == 303, await saved.text()
        assert (
            await database.pool.fetchval("SELECT trigger_event FROM campaigns WHERE id = $1", cid)
            is None
        )
