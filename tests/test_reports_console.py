"""Survey results in the console (issue 14): in the survey's own languages (kk, ru, en) by a
switch, the response rate (of the surveys sent), each option's percent of those who answered
the question, bars relative to 100 %, and the CSV download beside them — counts only, small
counts hidden for partner-facing roles (R11). Real HTTP, real PostgreSQL."""

from __future__ import annotations

import csv
import io
import re

from dispatcher.kernel.states import Role
from tests.factories import survey_answer
from tests.test_console import api_campaign, sign_in
from tests.web_helpers import Api, running_api

AUDIENCE = [f"7701000{n:04d}" for n in range(1, 9)]
SURVEY = {
    "questions": [
        {
            "texts": {"kk": "Кофе ұнай ма?", "ru": "Нравится кофе?", "en": "Like coffee?"},
            "options": [
                {"kk": "Иә", "ru": "Да", "en": "Yes"},
                {"kk": "Жоқ", "ru": "Нет", "en": "No"},
            ],
        },
    ],
    "thanks": {"kk": "Рақмет", "ru": "Спасибо", "en": "Thanks"},
}


async def _survey_with_answers(api: Api, database, now) -> int:
    """Eight surveys sent; six answered (four "yes", two "no"), two still open."""
    campaign_id = await api_campaign(api, AUDIENCE, kind="survey", texts=None, survey=SURVEY)
    survey_id = await database.pool.fetchval(
        "SELECT id FROM surveys WHERE campaign_id = $1", campaign_id
    )
    for n, msisdn in enumerate(AUDIENCE[:6]):
        await survey_answer(database, survey_id, msisdn, 1 if n < 4 else 2, at=now, closed_at=now)
    for msisdn in AUDIENCE[6:]:
        await database.pool.execute(
            "INSERT INTO survey_sessions (survey_id, msisdn, opened_at, expires_at) "
            "VALUES ($1, $2, $3, $3::timestamptz + interval '1 day')",
            survey_id,
            msisdn,
            now,
        )
    return campaign_id


def _results(page: str) -> str:
    """The survey results section of a campaign page."""
    start = page.index('id="survey-results"')
    return page[start : page.index("</section>", start)]


async def test_results_switch_language_and_show_rate_and_percentages(
    settings, clock, database
) -> None:
    """The admin's page: labels in the language asked for (each of the survey's three), the
    response rate 6 of 8 (75.0 %), options 66.7 % and 33.3 % of those who answered, bars as
    long as their percentages (the track is 100 %), and the CSV link in that language."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await _survey_with_answers(api, database, clock.now())
        await sign_in(api, Role.ADMIN)
        url = f"/console/campaigns/{campaign_id}"
        pages = {}
        for lang in ("kk", "ru", "en"):
            response = await api.client.get(f"{url}?lang={lang}")
            assert response.status == 200
            pages[lang] = _results(await response.text())
        assert "Кофе ұнай ма?" in pages["kk"] and "Иә" in pages["kk"]
        assert "Нравится кофе?" in pages["ru"] and "Нет" in pages["ru"]
        assert "Like coffee?" in pages["en"] and "1. Yes" in pages["en"]
        assert "Like coffee?" not in pages["ru"]
        en = pages["en"]
        assert re.search(r'data-lang="en"\s+aria-current="true"', en)
        assert "response rate <strong>75.0%</strong>" in en
        assert "<strong>6</strong> of <strong>8</strong> surveys sent" in en
        assert "4 · 66.7%" in en and "2 · 33.3%" in en
        widths = re.findall(r'class="answer-bar"[^>]*width="([0-9.]+)"', en)
        assert [float(w) for w in widths] == [round(66.7 * 3.3, 2), round(33.3 * 3.3, 2)]
        link = re.search(r'id="results-csv" href="([^"]+)"', en)
        assert link is not None and link.group(1).endswith("results.csv?lang=en")
        download = await api.client.get(link.group(1))
        assert download.status == 200 and download.content_type == "text/csv"
        rows = list(csv.reader(io.StringIO(await download.text())))
        assert rows[1:] == [
            ["1", "Like coffee?", "1", "Yes", "4", "66.7"],
            ["1", "Like coffee?", "2", "No", "2", "33.3"],
        ]
        unknown = _results(await (await api.client.get(f"{url}?lang=xx")).text())
        assert f"lang={settings.default_language}" in unknown  # an unknown language: default


async def test_a_partner_sees_no_small_count_nor_its_percentage(settings, clock, database) -> None:
    """A viewer (partner-facing) sees "< 5" for the two "no" answers and no percentage or
    bar for it, nor for the response rate's hidden counts; the CSV hides them too."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await _survey_with_answers(api, database, clock.now())
        await sign_in(api, Role.VIEWER)
        url = f"/console/campaigns/{campaign_id}"
        page = _results(await (await api.client.get(f"{url}?lang=en")).text())
        assert "&lt; 5 · –%" in page
        assert "2 · 33.3%" not in page
        assert not re.search(r'width="110\.', page)  # the hidden "no" draws no bar
        assert "response rate" in page  # 6 and 8 are shown: at least the threshold
        download = await api.client.get(f"{url}/results.csv?lang=ru")
        rows = list(csv.reader(io.StringIO(await download.text())))
        assert [row[4:] for row in rows[1:]] != [["4", "66.7"], ["2", "33.3"]]
        assert all(row[4] in ("< 5", ">= 5") for row in rows[1:])


async def test_results_download_of_an_info_campaign_is_a_404_page(
    settings, clock, database
) -> None:
    """An info campaign has no survey results to download."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(api, AUDIENCE[:1])
        await sign_in(api, Role.VIEWER)
        response = await api.client.get(f"/console/campaigns/{campaign_id}/results.csv")
        assert response.status == 404
