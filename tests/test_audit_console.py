"""Maker-checker and History on the console's campaign page (issue 15), over real HTTP: the
Approval block tells the creator another person must approve, shows a checker the Approve
button of the content version they see, records the approval, and the History lists each
action; the start confirmation refuses an unapproved campaign."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from dispatcher.console.sessions import COOKIE, ConsoleUser, SessionRepository
from dispatcher.db import Database
from dispatcher.kernel.audit import AuditAction, AuditFilter, AuditLog
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from tests.test_audit import draft_with_audience
from tests.test_console import form_token, sign_in
from tests.web_helpers import Api, running_api

PAGE = "/console/campaigns/{}"


@pytest.fixture
async def checked(settings: Settings, clock: ManualClock, database: Database) -> AsyncIterator[Api]:
    on = dataclasses.replace(settings, approval_required=True)
    async with running_api(on, clock, database) as api:
        yield api


async def switch_to(api: Api, role: Role) -> str:
    """Sign the browser out (its cookies forgotten) and in again as ``role``."""
    api.client.session.cookie_jar.clear()
    return await sign_in(api, role)


async def page(api: Api, campaign_id: int) -> str:
    response = await api.client.get(PAGE.format(campaign_id))
    assert response.status == 200
    return await response.text()


async def test_the_maker_waits_and_the_checker_approves(checked: Api) -> None:
    """The creator sees why they cannot approve; the start confirmation refuses; an admin
    approves the version shown; the History names each person and action."""
    campaign_id = await draft_with_audience(checked)
    await sign_in(checked, Role.MARKETER)
    html = await page(checked, campaign_id)
    assert "Not approved." in html
    assert "You created this campaign: another person must approve it." in html
    assert 'data-action="approve"' not in html
    start = re.search(r'<button type="button" class="primary" data-action="start" disabled', html)
    assert start and "needs an approval first" in html  # no Start that can only be refused
    confirm = await checked.client.get(PAGE.format(campaign_id) + "/start")
    assert confirm.status == 409
    assert "needs an approval by someone other than its creator" in await confirm.text()

    csrf = await switch_to(checked, Role.ADMIN)
    html = await page(checked, campaign_id)
    assert 'data-action="approve">Approve version 2</button>' in html
    response = await checked.client.post(
        PAGE.format(campaign_id) + "/approve",
        data={"csrf": csrf, "version": "2"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"].endswith("?done=approved")
    html = await page(checked, campaign_id)
    assert re.search(r"<strong>Approved</strong> by test-admin \(admin\) at 2026-11-23 17:00", html)
    assert '<button type="submit" class="primary" data-action="start">Start</button>' in html
    assert "needs an approval first" not in html
    history = re.findall(r'data-audit="([a-z_]+)"', html)
    assert history == ["approve", "upload", "create"]
    assert "upload 1: 3 accepted, 0 duplicates, 0 rejected" in html


async def test_a_stale_or_own_approval_is_refused_on_the_page(checked: Api) -> None:
    """A form of an older content version is 409 with why; so is the creator's own."""
    campaign_id = await draft_with_audience(checked)
    csrf = await switch_to(checked, Role.ADMIN)
    response = await checked.client.post(
        PAGE.format(campaign_id) + "/approve", data={"csrf": csrf, "version": "1"}
    )
    assert response.status == 409
    assert "Cannot approve: it changed since you saw it" in await response.text()
    csrf = await switch_to(checked, Role.MARKETER)
    response = await checked.client.post(
        PAGE.format(campaign_id) + "/approve", data={"csrf": csrf, "version": "2"}
    )
    assert response.status == 409
    assert "Cannot approve: its creator cannot approve it" in await response.text()


async def test_a_viewer_sees_no_history_and_no_button(checked: Api) -> None:
    """A viewer (partner-facing) sees the approval state, no Approve button, no History;
    an approve POST of theirs is refused."""
    campaign_id = await draft_with_audience(checked)
    csrf = await sign_in(checked, Role.VIEWER)
    html = await page(checked, campaign_id)
    assert 'id="approval"' in html and 'id="history"' not in html
    assert 'data-action="approve"' not in html
    response = await checked.client.post(
        PAGE.format(campaign_id) + "/approve", data={"csrf": csrf, "version": "2"}
    )
    assert response.status == 403


async def test_without_maker_checker_the_block_stays_away(api: Api) -> None:
    """With approval off (the default) the page shows no Approval block, but its History."""
    campaign_id = await draft_with_audience(api)
    await sign_in(api, Role.ADMIN)
    html = await page(api, campaign_id)
    assert 'id="approval"' not in html and 'id="history"' in html


async def test_console_sign_in_and_out_are_recorded(api: Api, database: Database) -> None:
    """A sign-in and a sign-out are each one event with the token's name, role and id; a
    refused sign-in (an unknown token: anyone may try) writes none, and a session ended
    twice is recorded once."""
    log = AuditLog(database.pool)

    async def console_events() -> list[tuple[str, str, str | None, str | None]]:
        events = await log.page(AuditFilter(), limit=50)
        kinds = (AuditAction.SIGN_IN, AuditAction.SIGN_OUT)
        return [(e.action, e.actor, e.actor_role, e.target) for e in events if e.action in kinds]

    refused = await api.client.post(
        "/console/login",
        data={"csrf": await form_token(api), "token": "not-a-token", "next": "/console"},
    )
    assert refused.status == 401
    assert await console_events() == []

    csrf = await sign_in(api, Role.MARKETER)
    token_id = await database.pool.fetchval(
        "SELECT id FROM api_tokens WHERE name = 'test-marketer'"
    )
    signed_in = ("sign_in", "test-marketer", "marketer", f"token:{token_id}")
    assert await console_events() == [signed_in]
    cookies = api.client.session.cookie_jar.filter_cookies(api.client.make_url("/console"))
    session_id = cookies[COOKIE].value
    response = await api.client.post("/console/logout", data={"csrf": csrf}, allow_redirects=False)
    assert response.status == 303
    signed_out = ("sign_out", "test-marketer", "marketer", f"token:{token_id}")
    assert await console_events() == [signed_out, signed_in]

    later = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    user = ConsoleUser(token_id, "test-marketer", Role.MARKETER, "x", later)
    await SessionRepository(database.pool).sign_out(session_id, user, later)
    assert await console_events() == [signed_out, signed_in]  # nothing ended: no record
