"""Web console over real HTTP (aiohttp on 127.0.0.1) and a real database: sign-in and
sessions, cookie flags, CSRF, roles, and the pages with data in them."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from aiohttp import FormData

from dispatcher.console.guard import console_role_of
from dispatcher.console.sessions import COOKIE, hash_id
from dispatcher.kernel.states import Role
from dispatcher.web.auth import PUBLIC, access_of
from tests.factories import survey_answer
from tests.web_helpers import Api, running_api

MEMBERS = ["77010000001", "77010000002", "77010000003"]


async def form_token(api: Api) -> str:
    page = await api.client.get("/console/login")
    assert page.status == 200
    match = re.search(r'name="csrf" value="([^"]+)"', await page.text())
    assert match is not None
    return match.group(1)


async def sign_in(api: Api, role: Role) -> str:
    """Sign in as ``role``; returns the session's CSRF token (from the page's meta tag)."""
    data = {"csrf": await form_token(api), "token": api.tokens[role], "next": "/console"}
    response = await api.client.post("/console/login", data=data, allow_redirects=False)
    assert response.status == 303, await response.text()
    page = await api.client.get("/console/campaigns")
    match = re.search(r'<meta name="csrf-token" content="([^"]+)"', await page.text())
    assert match is not None
    return match.group(1)


async def api_campaign(api: Api, audience: list[str] | None = None, **fields: Any) -> int:
    """A draft campaign made through the HTTP API (and its audience, if given)."""
    body = {
        "name": "Coffee week",
        "partner": "Kofe",
        "kind": "info",
        "texts": {"kk": "Жеңілдік", "ru": "Скидка"},
    }
    response = await api.client.post(
        "/api/v1/campaigns", json=body | fields, headers=api.auth(Role.MARKETER)
    )
    assert response.status == 201, await response.text()
    campaign_id = int((await response.json())["id"])
    if audience:
        headers = api.auth(Role.MARKETER) | {"Content-Type": "text/csv"}
        upload = await api.client.post(
            f"/api/v1/campaigns/{campaign_id}/audience", data="\n".join(audience), headers=headers
        )
        assert upload.status == 200, await upload.text()
    return campaign_id


async def campaign_state(database, campaign_id: int) -> str:
    return await database.pool.fetchval(
        "SELECT state::text FROM campaigns WHERE id = $1", campaign_id
    )


async def test_sign_in_sets_a_strict_http_only_session_cookie(settings, clock, database) -> None:
    """A valid token signs in: 303 on, cookie HttpOnly + SameSite=Strict, only its hash kept."""
    async with running_api(settings, clock, database) as api:
        data = {"csrf": await form_token(api), "token": api.tokens[Role.MARKETER]}
        data["next"] = "/console/subscribers"
        response = await api.client.post("/console/login", data=data, allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == "/console/subscribers"
        cookie = response.cookies[COOKIE]
        assert cookie["httponly"] is True
        assert cookie["samesite"] == "Strict"
        assert cookie["path"] == "/console"
        assert not cookie["secure"]  # plain http on loopback; https sets Secure
        stored = await database.pool.fetchval("SELECT id_hash FROM console_sessions")
        assert stored == hash_id(cookie.value)
        page = await api.client.get("/console/subscribers")
        assert page.status == 200 and "Subscriber lookup" in await page.text()


async def test_sign_in_with_a_wrong_token_is_refused(settings, clock, database) -> None:
    """An unknown token gets the form again with 401 and no session."""
    async with running_api(settings, clock, database) as api:
        data = {"csrf": await form_token(api), "token": "smartd_not-a-token"}
        response = await api.client.post("/console/login", data=data, allow_redirects=False)
        assert response.status == 401
        assert "unknown, expired or revoked" in await response.text()
        assert COOKIE not in response.cookies
        assert await database.pool.fetchval("SELECT count(*) FROM console_sessions") == 0


async def test_sign_in_form_without_its_token_is_refused(settings, clock, database) -> None:
    """Login CSRF: a sign-in POST whose form token does not match the cookie is 403."""
    async with running_api(settings, clock, database) as api:
        await form_token(api)
        data = {"csrf": "forged", "token": api.tokens[Role.ADMIN]}
        response = await api.client.post("/console/login", data=data, allow_redirects=False)
        assert response.status == 403
        assert await database.pool.fetchval("SELECT count(*) FROM console_sessions") == 0


async def test_gateway_token_cannot_use_the_console(settings, clock, database) -> None:
    """A gateway token is valid for the API but cannot open a console session (403)."""
    async with running_api(settings, clock, database) as api:
        data = {"csrf": await form_token(api), "token": api.tokens[Role.GATEWAY]}
        response = await api.client.post("/console/login", data=data, allow_redirects=False)
        assert response.status == 403
        assert await database.pool.fetchval("SELECT count(*) FROM console_sessions") == 0


async def test_pages_send_strangers_to_sign_in(settings, clock, database) -> None:
    """Without a session a page redirects to the sign-in form, remembering where it was."""
    async with running_api(settings, clock, database) as api:
        response = await api.client.get("/console/campaigns?state=running", allow_redirects=False)
        assert response.status == 303
        assert response.headers["Location"] == (
            "/console/login?next=%2Fconsole%2Fcampaigns%3Fstate%3Drunning"
        )
        bearer = await api.client.get(
            "/console/campaigns", headers=api.auth(Role.ADMIN), allow_redirects=False
        )
        assert bearer.status == 303  # the console takes sessions, not bearer tokens


async def test_post_without_or_with_a_wrong_csrf_token_is_403(settings, clock, database) -> None:
    """A state change without the session's CSRF token, or with a wrong one: 403, no change."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(api, MEMBERS)
        await sign_in(api, Role.MARKETER)
        url = f"/console/campaigns/{campaign_id}/cancel"
        missing = await api.client.post(url, data={}, allow_redirects=False)
        wrong = await api.client.post(url, data={"csrf": "x" * 43}, allow_redirects=False)
        assert (missing.status, wrong.status) == (403, 403)
        assert await campaign_state(database, campaign_id) == "draft"


async def test_post_from_another_origin_is_403(settings, clock, database) -> None:
    """A POST whose Origin header names another site is refused even with the right token."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(api, MEMBERS)
        csrf = await sign_in(api, Role.MARKETER)
        response = await api.client.post(
            f"/console/campaigns/{campaign_id}/cancel",
            data={"csrf": csrf},
            headers={"Origin": "https://evil.example"},
            allow_redirects=False,
        )
        assert response.status == 403
        assert await campaign_state(database, campaign_id) == "draft"


async def test_viewer_cannot_cancel(settings, clock, database) -> None:
    """A viewer sees a campaign without action buttons, and a cancel POST is 403."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(api, MEMBERS)
        csrf = await sign_in(api, Role.VIEWER)
        page = await api.client.get(f"/console/campaigns/{campaign_id}")
        assert page.status == 200
        assert 'data-action="cancel"' not in await page.text()
        response = await api.client.post(
            f"/console/campaigns/{campaign_id}/cancel", data={"csrf": csrf}, allow_redirects=False
        )
        assert response.status == 403
        assert await campaign_state(database, campaign_id) == "draft"
        new_form = await api.client.get("/console/campaigns/new")
        assert new_form.status == 403


async def test_marketer_starts_pauses_resumes_and_cancels(settings, clock, database) -> None:
    """The state buttons change the campaign (303 back to its page); a refused change is 409."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(api, MEMBERS)
        csrf = await sign_in(api, Role.MARKETER)
        for action, state in [
            ("start", "running"),
            ("pause", "paused"),
            ("resume", "running"),
            ("cancel", "cancelled"),
        ]:
            url = f"/console/campaigns/{campaign_id}/{action}"
            data = {"csrf": csrf, "confirm": "yes"}  # start and cancel are confirmed
            response = await api.client.post(url, data=data, allow_redirects=False)
            assert response.status == 303, (action, await response.text())
            assert await campaign_state(database, campaign_id) == state
        again = await api.client.post(
            f"/console/campaigns/{campaign_id}/resume", data={"csrf": csrf}
        )
        assert again.status == 409
        assert "Cannot resume" in await again.text()


async def test_campaign_list_shows_state_and_progress(settings, clock, database) -> None:
    """The list shows each campaign with its state badge and progress bar counts."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(api, MEMBERS, name="Tea fortnight")
        await database.pool.execute(
            "UPDATE deliveries SET state = 'delivered', submitted_at = $2, finished_at = $2 "
            "WHERE campaign_id = $1 AND msisdn = $3",
            campaign_id,
            clock.now(),
            MEMBERS[0],
        )
        await database.pool.execute(
            "UPDATE deliveries SET state = 'suppressed', suppressed = 'dnc', finished_at = $3 "
            "WHERE campaign_id = $1 AND msisdn = $2",
            campaign_id,
            MEMBERS[1],
            clock.now(),
        )
        await sign_in(api, Role.ADMIN)  # exact counts; partners: test_privacy_reports
        page = await api.client.get("/console/campaigns")
        text = await page.text()
        assert page.status == 200
        assert "Tea fortnight" in text and "state-draft" in text
        assert "1 delivered" in text and "1 suppressed" in text
        assert "66.7% done" in text
        assert 'class="seg seg-delivered"' in text


async def test_campaign_page_shows_counts_throughput_and_survey(settings, clock, database) -> None:
    """The campaign page has counts by state and reason, the throughput chart and survey bars."""
    survey = {
        "questions": [
            {
                "texts": {"kk": "Ұнай ма?", "ru": "Нравится?"},
                "options": [{"kk": "Иә", "ru": "Да"}, {"kk": "Жоқ", "ru": "Нет"}],
            },
        ],
        "thanks": {"kk": "Рақмет", "ru": "Спасибо"},
    }
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(api, MEMBERS, kind="survey", texts=None, survey=survey)
        await _deliver_and_answer(database, campaign_id, clock.now())
        await sign_in(api, Role.ADMIN)  # exact counts; partners: test_privacy_reports
        page = await api.client.get(f"/console/campaigns/{campaign_id}")
        text = await page.text()
        assert page.status == 200
        assert 'id="throughput-chart"' in text and 'class="chart-bar"' in text
        assert "cap info" in text  # the suppression reason of the third recipient
        assert 'id="survey-results"' in text and "Нравится?" in text
        assert "2 · 100.0%" in text  # both answers were "Да"
        for msisdn in MEMBERS:
            assert msisdn not in text  # R11: counts only


async def _deliver_and_answer(database, campaign_id: int, now) -> None:
    """Two recipients delivered a minute apart and answering option 1; one capped."""
    pool = database.pool
    for offset, msisdn in enumerate(MEMBERS[:2]):
        await pool.execute(
            "UPDATE deliveries SET state = 'delivered', submitted_at = $3, finished_at = $3 "
            "WHERE campaign_id = $1 AND msisdn = $2",
            campaign_id,
            msisdn,
            now - timedelta(minutes=offset),
        )
    await pool.execute(
        "UPDATE deliveries SET state = 'suppressed', suppressed = 'cap_info', finished_at = $3 "
        "WHERE campaign_id = $1 AND msisdn = $2",
        campaign_id,
        MEMBERS[2],
        now,
    )
    survey_id = await pool.fetchval("SELECT id FROM surveys WHERE campaign_id = $1", campaign_id)
    for msisdn in MEMBERS[:2]:
        await survey_answer(database, survey_id, msisdn, 1, at=now, closed_at=now)


def _create_form(csrf: str, fields: dict[str, str], csv: str | None) -> FormData:
    form = FormData(default_to_multipart=True)  # as a browser sends enctype=multipart
    form.add_field("csrf", csrf)
    for name, value in fields.items():
        form.add_field(name, value)
    if csv is not None:
        form.add_field("file", csv.encode(), filename="audience.csv", content_type="text/csv")
    return form


async def test_create_form_makes_a_campaign_with_its_audience(settings, clock, database) -> None:
    """The create form (multipart, CSV last) makes a draft campaign and loads its audience."""
    fields = {
        "name": "Winter sale",
        "partner": "Shop",
        "kind": "info",
        "scope": "operator",
        "text_kk": "Қысқы жеңілдік, {name}!",
        "text_ru": "Зимняя распродажа, {name}!",
        "text_en": "Winter sale, {name}!",
        "variables": "name",
        "start_at": "2026-11-24T10:00",
        "end_at": "2026-11-30T21:00",
    }
    csv = "msisdn,name\n+7 701 000 0001,Aida\n87010000002,Bolat\nnot-a-number,X\n"
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.MARKETER)
        response = await api.client.post(
            "/console/campaigns/new", data=_create_form(csrf, fields, csv), allow_redirects=False
        )
        assert response.status == 303, await response.text()
        location = response.headers["Location"]
        assert location.endswith("?accepted=2&rejected=1&duplicates=0")
        row = await database.pool.fetchrow("SELECT * FROM campaigns")
        assert row["name"] == "Winter sale" and row["scope"] == "operator"
        assert row["start_at"].isoformat() == "2026-11-24T05:00:00+00:00"  # Astana UTC+5
        assert row["created_by"] == "test-marketer"
        page = await api.client.get(location)
        assert "2 accepted, 1 rejected" in await page.text()


async def test_create_form_reports_what_is_wrong(settings, clock, database) -> None:
    """An invalid form comes back (400) with each problem, and nothing is created."""
    fields = {"name": "", "kind": "info", "text_ru": "Hello {nobody}", "end_at": "2020-01-01T10:00"}
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.MARKETER)
        response = await api.client.post(
            "/console/campaigns/new", data=_create_form(csrf, fields, None)
        )
        text = await response.text()
        assert response.status == 400
        assert "texts.ru" in text and "unknown variable" in text
        assert "must be in the future" in text and "required text" in text
        assert await database.pool.fetchval("SELECT count(*) FROM campaigns") == 0


async def test_create_form_makes_a_survey_from_scripts(settings, clock, database) -> None:
    """Per-language survey scripts become the survey's questions and options."""
    script_ru = "Как вам кофе?\n1. Отлично\n2. Так себе\n\nПридёте ещё?\n1. Да\n2. Нет"
    script_kk = "Кофе қалай?\n1. Керемет\n2. Орташа\n\nТағы келесіз бе?\n1. Иә\n2. Жоқ"
    fields = {
        "name": "Coffee survey",
        "kind": "survey",
        "survey_ru": script_ru.replace("\n", "\r\n"),
        "survey_kk": script_kk,
        "thanks_ru": "Спасибо!",
        "thanks_kk": "Рақмет!",
        "timeout_hours": "12",
    }
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.MARKETER)
        response = await api.client.post(
            "/console/campaigns/new", data=_create_form(csrf, fields, None), allow_redirects=False
        )
        assert response.status == 303, await response.text()
        survey = await database.pool.fetchrow("SELECT questions::text, timeout FROM surveys")
        assert '"Придёте ещё?"' in survey["questions"]
        assert survey["timeout"] == timedelta(hours=12)


async def test_audience_upload_shows_rejected_lines(settings, clock, database) -> None:
    """Uploading a CSV on the campaign page shows the counts and each rejected line."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(api)
        csrf = await sign_in(api, Role.MARKETER)
        form = _create_form(csrf, {}, "77010000001\n77010000001\n12\n")
        response = await api.client.post(f"/console/campaigns/{campaign_id}/audience", data=form)
        text = await response.text()
        assert response.status == 200
        assert re.search(r"<strong>1</strong> accepted · <strong>1</strong> rejected", text)
        assert '<td class="num">3</td>' in text  # the line number of "12"


async def test_preview_needs_the_csrf_header(settings, clock, database) -> None:
    """The JSON preview answers encoding and parts, and is 403 without X-CSRF-Token."""
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.MARKETER)
        body = {"texts": {"en": "Hello", "ru": "Привет " * 20}}
        refused = await api.client.post("/console/preview", json=body)
        assert refused.status == 403
        response = await api.client.post(
            "/console/preview", json=body, headers={"X-CSRF-Token": csrf}
        )
        assert response.status == 200
        costs = await response.json()
        assert costs["en"] == {"encoding": "gsm7", "segments": 1, "characters": 5}
        assert costs["ru"]["encoding"] == "ucs2" and costs["ru"]["segments"] == 3


async def test_subscriber_lookup_shows_membership_and_consent(settings, clock, database) -> None:
    """Looking up a number that joined by USSD shows membership, counters, bonus and consent."""
    async with running_api(settings, clock, database) as api:
        joined = await api.client.post(
            "/gateway/ussd",
            json={"msisdn": "77010000009", "session_id": "s1", "input": "*555*1#"},
            headers=api.auth(Role.GATEWAY),
        )
        assert joined.status == 200
        await sign_in(api, Role.VIEWER)
        page = await api.client.get("/console/subscribers", params={"msisdn": "8 701 000 0009"})
        text = await page.text()
        assert page.status == 200
        assert "+77010000009" in text and ">member<" in text
        assert 'id="info-count">0 / 10<' in text
        assert 'id="grants"' in text and "500" in text
        assert "event-joined" in text
        unknown = await api.client.get("/console/subscribers", params={"msisdn": "77019999999"})
        invalid = await api.client.get("/console/subscribers", params={"msisdn": "12"})
        assert (unknown.status, invalid.status) == (404, 400)


async def test_sign_out_ends_the_session(settings, clock, database) -> None:
    """Signing out deletes the session: the old cookie opens nothing any more."""
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.VIEWER)
        cookie = api.client.session.cookie_jar.filter_cookies(api.client.make_url("/console"))
        old = cookie[COOKIE].value
        response = await api.client.post(
            "/console/logout", data={"csrf": csrf}, allow_redirects=False
        )
        assert response.status == 303 and response.headers["Location"] == "/console/login"
        assert await database.pool.fetchval("SELECT count(*) FROM console_sessions") == 0
        api.client.session.cookie_jar.update_cookies({COOKIE: old})
        again = await api.client.get("/console/campaigns", allow_redirects=False)
        assert again.status == 303


async def test_revoked_token_or_expiry_ends_console_sessions(settings, clock, database) -> None:
    """A session lives no longer than its token, and no longer than eight hours."""
    async with running_api(settings, clock, database) as api:
        await sign_in(api, Role.VIEWER)
        assert (await api.client.get("/console/campaigns", allow_redirects=False)).status == 200
        clock.advance(timedelta(hours=8, seconds=1))
        assert (await api.client.get("/console/campaigns", allow_redirects=False)).status == 303
        await sign_in(api, Role.VIEWER)
        await database.pool.execute("UPDATE api_tokens SET revoked_at = $1", clock.now())
        assert (await api.client.get("/console/campaigns", allow_redirects=False)).status == 303


async def test_console_pages_carry_security_headers(settings, clock, database) -> None:
    """Console pages forbid framing, inline scripts and caching."""
    async with running_api(settings, clock, database) as api:
        page = await api.client.get("/console/login")
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Cache-Control"] == "no-store"
        css = await api.client.get("/console/static/console.css")
        assert css.status == 200 and css.content_type == "text/css"
        assert (await api.client.get("/console/static/..%2Fconsole.py")).status == 404


async def test_every_console_route_declares_its_access(settings, clock, database) -> None:
    """Console routes are public to the bearer middleware only with a console role, or are
    the sign-in, static and home routes."""
    async with running_api(settings, clock, database) as api:
        open_paths = {"/console", "/console/login", "/console/static/{name}"}
        for route in api.client.app.router.routes():
            path = route.resource.canonical if route.resource else ""
            if not path.startswith("/console"):
                continue
            assert access_of(route.handler) == PUBLIC
            if path not in open_paths and path != "/console/logout":
                assert console_role_of(route.handler) in (Role.VIEWER, Role.MARKETER), path
