"""The console's audience flows (issue 14) over real HTTP and a real database: a refusal on
the error-coloured banner, the column-mapping step for a header in another language (the
chosen mapping kept across a refusal), defaults on the create form, and every rejected row
downloadable from the campaign page."""

from __future__ import annotations

import csv
import io
import re

from dispatcher.kernel.states import Role
from tests.test_console import _create_form, api_campaign, sign_in
from tests.web_helpers import running_api

CREATE = {
    "name": "Spring",
    "partner": "Shop",
    "kind": "info",
    "scope": "smart",
    "text_kk": "Көктем, {name}!",
    "text_ru": "Весна, {name}!",
    "variables": "name",
}


def _banners(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<p class="alert (alert-\w+)"[^>]*>([^<]*)</p>', page)


def _selected(page: str, select: str) -> str | None:
    block = re.search(rf'<select id="{select}"[^>]*>(.*?)</select>', page, re.S)
    assert block is not None, select
    chosen = re.search(r'<option value="([^"]*)" selected>', block.group(1))
    return chosen.group(1) if chosen else None


async def test_a_refused_file_on_the_create_form_shows_an_error_banner(
    settings, clock, database
) -> None:
    """The campaign is made but its file refused: said on the error banner, not the
    success-coloured one."""
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.MARKETER)
        form = _create_form(csrf, CREATE, None)
        broken = b"msisdn,name\n\xff\xfe\n"
        form.add_field("file", broken, filename="a.csv", content_type="text/csv")
        response = await api.client.post("/console/campaigns/new", data=form)
        page = await response.text()
        banners = _banners(page)
        assert [kind for kind, _ in banners] == ["alert-error"], banners
        assert "refused" in banners[0][1]


async def test_a_cyrillic_header_gets_the_mapping_step(settings, clock, database) -> None:
    """`Телефон;Имя` on the campaign page: the file is kept and its header offered in
    selects (error banner, 400); a refused mapping comes back with the choice kept; the
    chosen mapping loads it, and every rejected row is a link away."""
    data = "Имя;Телефон\r\nӘлия;+7 701 000 0001\r\nБолат;87172123456\r\n;87010000003\r\n"
    async with running_api(settings, clock, database) as api:
        cid = await api_campaign(
            api,
            variables=["name"],
            texts={"kk": "Сәлем, {name}", "ru": "Привет, {name}"},
        )
        csrf = await sign_in(api, Role.MARKETER)
        url = f"/console/campaigns/{cid}/audience"
        response = await api.client.post(url, data=_create_form(csrf, {}, data))
        page = await response.text()
        assert response.status == 400
        assert [kind for kind, _ in _banners(page)] == ["alert-error"]
        assert "found: Имя, Телефон" in page
        assert 'id="column-mapping"' in page
        assert _selected(page, "number_column") == "2"  # guessed from the name
        token = re.search(r'name="stash" value="([^"]+)"', page)
        assert token is not None
        # The name column left unchosen (no default): refused, the choice kept.
        mapping = {"stash": token.group(1), "number_column": "2", "column.name": ""}
        response = await api.client.post(url, data=_create_form(csrf, mapping, None))
        page = await response.text()
        assert response.status == 400
        assert [kind for kind, _ in _banners(page)] == ["alert-error"]
        assert _selected(page, "number_column") == "2"
        assert await database.pool.fetchval("SELECT count(*) FROM deliveries") == 0
        mapping["column.name"] = "1"
        response = await api.client.post(url, data=_create_form(csrf, mapping, None))
        page = await response.text()
        assert response.status == 200, page
        assert "<strong>1</strong> accepted · <strong>2</strong> rejected" in page
        assert "fixed-line number" in page and "empty value for name" in page
        link = re.search(r'href="(/console/campaigns/\d+/audience/rejected\.csv\?upload=1)"', page)
        assert link is not None
        download = await api.client.get(link.group(1))
        assert download.status == 200 and download.content_type == "text/csv"
        rows = list(csv.reader(io.StringIO(await download.text())))
        assert rows == [
            ["upload", "line", "value", "reason"],
            ["1", "3", "87172123456", "fixed-line number"],
            ["1", "4", "87010000003", "empty value for name (no default)"],
        ]
        variables = await database.pool.fetchval("SELECT variables FROM deliveries")
        assert variables == {"name": "Әлия"}
        # The kept file is gone once loaded.
        again = await api.client.post(url, data=_create_form(csrf, mapping, None))
        assert again.status == 400 and "no longer kept" in await again.text()


async def test_the_create_form_sends_a_file_needing_a_mapping_to_the_step(
    settings, clock, database
) -> None:
    """A Cyrillic-header file on the create form: the campaign is made, the file kept, and
    its page opens on the mapping step; the form's defaults are stored with the campaign."""
    fields = CREATE | {"variable_defaults": "name=друг"}
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.MARKETER)
        form = _create_form(csrf, fields, "Телефон;Город\n87010000001;Алматы\n")
        response = await api.client.post("/console/campaigns/new", data=form, allow_redirects=False)
        assert response.status == 303, await response.text()
        assert "?mapping=" in response.headers["Location"]
        defaults = await database.pool.fetchval("SELECT variable_defaults FROM campaigns")
        assert defaults == {"name": "друг"}
        page = await (await api.client.get(response.headers["Location"])).text()
        assert 'id="column-mapping"' in page
        assert "default “друг”" in page
        assert _selected(page, "number_column") == "1"
        token = re.search(r'name="stash" value="([^"]+)"', page)
        assert token is not None
        cid = await database.pool.fetchval("SELECT id FROM campaigns")
        response = await api.client.post(
            f"/console/campaigns/{cid}/audience",
            data=_create_form(csrf, {"stash": token.group(1), "number_column": "1"}, None),
        )
        assert response.status == 200, await response.text()
        variables = await database.pool.fetchval("SELECT variables FROM deliveries")
        assert variables == {"name": "друг"}


async def test_choosing_the_columns_is_offered_on_request(settings, clock, database) -> None:
    async with running_api(settings, clock, database) as api:
        cid = await api_campaign(api)
        csrf = await sign_in(api, Role.MARKETER)
        form = _create_form(csrf, {"choose_columns": "1"}, "msisdn,extra\n77010000001,x\n")
        response = await api.client.post(f"/console/campaigns/{cid}/audience", data=form)
        page = await response.text()
        assert response.status == 200 and 'id="column-mapping"' in page
        assert [kind for kind, _ in _banners(page)] == []
        viewer = await api.client.get(f"/console/campaigns/{cid}/audience/rejected.csv")
        assert viewer.status == 200  # the marketer's session
