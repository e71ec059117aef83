"""The console's finish (issue 14, "Accessibility and finish"): error pages in HTML for a
browser (JSON stays for the API), refusals in words, every kk/ru/en text marked with its
language. Real HTTP and database."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.demo_data import SURVEY
from dispatcher.kernel.states import Role
from dispatcher.web.app import create_app
from dispatcher.web.auth import public
from tests.test_console import MEMBERS, api_campaign, sign_in
from tests.web_helpers import running_api

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


async def test_unknown_paths_are_html_pages_for_a_browser(settings, clock, database) -> None:
    """A browser at the root goes to the console; an unknown page is an HTML 404 that says
    so and links back; the API (and a client that does not ask for HTML) keeps JSON."""
    async with running_api(settings, clock, database) as api:
        root = await api.client.get("/", headers=BROWSER, allow_redirects=False)
        assert (root.status, root.headers["Location"]) == (303, "/console/campaigns")
        for path in ("/console/no-such-page", "/no-such-page", "/favicon.ico"):
            page = await api.client.get(path, headers=BROWSER)
            assert page.status == 404, path
            assert page.content_type == "text/html", path
            text = await page.text()
            assert "<h1>Page not found</h1>" in text, path
            assert f"There is no page at {path}." in text
            assert 'href="/console/campaigns"' in text
        for path, headers in (("/api/v1/no-such-thing", BROWSER), ("/no-such-page", {})):
            missing = await api.client.get(path, headers=headers)
            assert (missing.status, missing.content_type) == (404, "application/json"), path
            assert (await missing.json())["error"]["code"] == "not_found"


async def test_a_console_failure_is_an_html_500_page(settings, clock, database) -> None:
    """An unexpected error under /console is an HTML page with no internals."""

    @public
    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    app = create_app(settings, clock=clock, database=database)
    app.router.add_get("/console/boom", boom)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        page = await client.get("/console/boom", headers=BROWSER)
        assert (page.status, page.content_type) == (500, "text/html")
        text = await page.text()
        assert "<h1>Something went wrong</h1>" in text
        assert "secret internals" not in text and "Traceback" not in text
        api = await client.get("/api/v1/boom", headers=BROWSER)
        assert api.content_type == "application/json"


async def test_console_refusals_are_sentences(settings, clock, database) -> None:
    """Starting a running campaign again: "Cannot start: the campaign is already running.";
    the API keeps its code and gives the same words."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(api, MEMBERS)
        csrf = await sign_in(api, Role.MARKETER)
        url = f"/console/campaigns/{campaign_id}/start"
        confirmed = {"csrf": csrf, "confirm": "yes"}  # Start is confirmed first (issue 14)
        first = await api.client.post(url, data=confirmed, allow_redirects=False)
        assert first.status == 303
        assert first.headers["Location"] == f"/console/campaigns/{campaign_id}?done=start"
        again = await api.client.post(url, data=confirmed)
        assert again.status == 409
        assert "Cannot start: the campaign is already running." in await again.text()
        by_api = await api.client.post(
            f"/api/v1/campaigns/{campaign_id}/start", headers=api.auth(Role.MARKETER)
        )
        error = (await by_api.json())["error"]
        assert (by_api.status, error["code"]) == (409, "invalid_transition")
        assert error["message"] == (
            f"campaign {campaign_id}: cannot start: the campaign is already running"
        )
        assert error["details"] == {
            "state": "running",
            "action": "start",
            "reason": "the campaign is already running",
        }


async def test_texts_in_kk_ru_en_carry_their_lang(settings, clock, database) -> None:
    """Each text shown or typed per language is marked with that language (screen readers
    and hyphenation read Kazakh as Kazakh), inside the English page."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(
            api, texts={"kk": "Жеңілдік", "ru": "Скидка", "en": "Discount"}
        )
        await sign_in(api, Role.MARKETER)
        page = await (await api.client.get(f"/console/campaigns/{campaign_id}")).text()
        assert re.search(r'<html lang="en">', page)
        for lang, text in (("kk", "Жеңілдік"), ("ru", "Скидка"), ("en", "Discount")):
            assert re.search(rf'<pre class="sms" lang="{lang}">{text}</pre>', page), lang
        form = await (await api.client.get("/console/campaigns/new")).text()
        for lang in ("kk", "ru", "en"):
            for name in ("text", "survey", "thanks"):
                tag = re.search(rf'<(textarea|input) id="{name}_{lang}"[^>]*>', form)
                assert tag and f'lang="{lang}"' in tag.group(0), (name, lang)
        survey = await api.client.post(
            "/api/v1/campaigns", json=SURVEY, headers=api.auth(Role.MARKETER)
        )
        assert survey.status == 201, await survey.text()
        survey_id = (await survey.json())["id"]
        results = await (await api.client.get(f"/console/campaigns/{survey_id}")).text()
        language = settings.default_language
        assert f'<figure class="question" lang="{language}">' in results
