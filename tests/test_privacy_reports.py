"""R11 (issue 13): partner-facing counts below the minimum cell size are "< 5" — in the
API's report, the survey results CSV and the console's pages — with secondary suppression so
a total minus the shown parts gives no hidden count back; and every CSV export is safe to
open in a spreadsheet (no formula injection)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from campaigns.csvsafe import FORMULA_START, csv_text, safe_cell
from campaigns.disclosure import suppress
from dispatcher.kernel.states import Role
from tests.test_console import MEMBERS, _deliver_and_answer, api_campaign, sign_in
from tests.web_helpers import running_api

ROOT = Path(__file__).resolve().parent.parent
SURVEY = {
    "questions": [
        {
            "texts": {"kk": "Ұнай ма?", "ru": '=HYPERLINK("http://x","Нравится?")'},
            "options": [{"kk": "Иә", "ru": "+Да"}, {"kk": "Жоқ", "ru": "-Нет"}],
        },
    ],
    "thanks": {"kk": "Рақмет", "ru": "Спасибо"},
}


# ---------------------------------------------------------------- suppression, as a property


@st.composite
def tables(draw: st.DrawFn) -> tuple[dict[str, int], list[tuple[str, list[str]]], int]:
    """A two-level table: a total, its parts, and some parts split into sub-parts."""
    threshold = draw(st.integers(2, 10))
    leaves = draw(st.lists(st.integers(0, 30), min_size=1, max_size=8))
    cells = {f"l{i}": n for i, n in enumerate(leaves)}
    names = list(cells)
    groups: list[tuple[str, list[str]]] = []
    cut = draw(st.integers(0, len(names)))
    middle = []
    for k, chunk in enumerate((names[:cut], names[cut:])):
        if chunk:
            cells[f"m{k}"] = sum(cells[n] for n in chunk)
            groups.append((f"m{k}", chunk))
            middle.append(f"m{k}")
    cells["total"] = sum(leaves)
    groups += [("total", names), ("total", middle)]
    return cells, groups, threshold


@given(tables())
def test_no_count_below_the_threshold_shows_nor_follows_by_subtraction(
    table: tuple[dict[str, int], list[tuple[str, list[str]]], int],
) -> None:
    cells, groups, threshold = table
    shown = suppress(cells, groups, threshold)
    for key, n in cells.items():
        if n < threshold:
            assert shown[key] == f"< {threshold}"
        else:
            assert shown[key] in (n, f">= {threshold}")
    for total, parts in groups:
        if isinstance(shown[total], int):
            hidden = [p for p in parts if not isinstance(shown[p], int)]
            assert len(hidden) != 1, (total, parts, shown)


def test_threshold_one_shows_every_count() -> None:
    assert suppress({"a": 0, "b": 1}, [("a", ["b"])], 1) == {"a": 0, "b": 1}


# ---------------------------------------------------------------- API, CSV and console


async def test_a_partner_never_sees_a_small_count(settings, clock, database) -> None:
    """Two recipients answered "Да": a viewer and a marketer see "< 5" for every count of
    the report, the CSV and the console page; the admin sees the exact counts."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(api, MEMBERS, kind="survey", texts=None, survey=SURVEY)
        await _deliver_and_answer(database, campaign_id, clock.now())
        url = f"/api/v1/campaigns/{campaign_id}"
        for role in (Role.VIEWER, Role.MARKETER):
            body = await (await api.client.get(url, headers=api.auth(role))).json()
            question = body["survey"]["questions"][0]
            assert question["answers"] == "< 5"
            assert [o["count"] for o in question["options"]] == ["< 5", "< 5"]
            assert body["total"] == "< 5" and body["states"]["delivered"] == "< 5"
            assert body["suppressed"]["cap_info"] == "< 5"
            assert body["progress"]["percent"] is None
            assert set(body["survey"]["sessions"].values()) == {"< 5"}
            response = await api.client.get(f"{url}/results.csv", headers=api.auth(role))
            rows = list(csv.reader(io.StringIO(await response.text())))
            assert [row[4:] for row in rows[1:]] == [["< 5", ""], ["< 5", ""]]
        admin = await (await api.client.get(url, headers=api.auth(Role.ADMIN))).json()
        assert [o["count"] for o in admin["survey"]["questions"][0]["options"]] == [2, 0]
        assert admin["total"] == 3

        await sign_in(api, Role.VIEWER)
        page = await (await api.client.get(f"/console/campaigns/{campaign_id}")).text()
        survey = page[page.index('id="survey-results"') :]
        assert "&lt; 5 answers" in survey and "&lt; 5 · –%" in survey
        assert "2 · 100.0%" not in survey
        assert not re.search(r'class="answer-bar"[^>]*width="[1-9]', survey)
        listing = await (await api.client.get("/console/campaigns")).text()
        assert "&lt; 5" in listing


async def test_admin_console_shows_exact_counts(settings, clock, database) -> None:
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(api, MEMBERS, kind="survey", texts=None, survey=SURVEY)
        await _deliver_and_answer(database, campaign_id, clock.now())
        await sign_in(api, Role.ADMIN)
        page = await (await api.client.get(f"/console/campaigns/{campaign_id}")).text()
        assert "2 · 100.0%" in page


def test_a_large_count_shows_beside_secondary_suppression() -> None:
    """Above the threshold a count shows; a group with one small part hides one more."""
    shown = suppress(
        {"total": 12, "yes": 10, "no": 2, "maybe": 0},
        [("total", ["yes", "no", "maybe"])],
        5,
    )
    assert shown == {"total": 12, "yes": 10, "no": "< 5", "maybe": "< 5"}
    shown = suppress({"total": 12, "yes": 10, "no": 2}, [("total", ["yes", "no"])], 5)
    assert shown == {"total": 12, "yes": ">= 5", "no": "< 5"}


# ---------------------------------------------------------------- CSV formula injection


@given(st.text(max_size=20))
def test_a_safe_cell_never_starts_a_formula(text: str) -> None:
    cell = safe_cell(text)
    assert isinstance(cell, str)
    assert cell[:1] not in FORMULA_START
    assert cell in (text, "'" + text)
    (row,) = csv.reader(io.StringIO(csv_text([[text]]), newline=""))
    assert row == [cell]


async def test_survey_results_csv_neutralises_formulas(settings, clock, database) -> None:
    """The one CSV export (survey results): texts starting =, +, - come out as text."""
    async with running_api(settings, clock, database) as api:
        campaign_id = await api_campaign(api, MEMBERS, kind="survey", texts=None, survey=SURVEY)
        await _deliver_and_answer(database, campaign_id, clock.now())
        url = f"/api/v1/campaigns/{campaign_id}/results.csv?lang=ru"
        response = await api.client.get(url, headers=api.auth(Role.ADMIN))
        rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[1] == ["1", '\'=HYPERLINK("http://x","Нравится?")', "1", "'+Да", "2", "100.0"]
    assert rows[2][3] == "'-Нет"
    for row in rows:
        for cell in row:
            assert cell[:1] not in FORMULA_START


def test_every_csv_export_goes_through_the_safe_writer() -> None:
    """No module writes CSV but campaigns/csvsafe.py: a new export cannot skip it."""
    writers = [
        path.relative_to(ROOT).as_posix()
        for package in ("campaigns", "dispatcher", "smpp")
        for path in (ROOT / package).rglob("*.py")
        if re.search(r"csv\.(writer|DictWriter)\(", path.read_text(encoding="utf-8"))
    ]
    assert writers == ["campaigns/csvsafe.py"]
