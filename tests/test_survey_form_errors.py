"""The create form's survey errors (issue 14): only the real cause, with where it is, above
the form; the input comes back as written; a chosen audience file is named so it can be
chosen again (the browser keeps it itself with the console's script: tests/browser/
test_reports.py). Real HTTP, real PostgreSQL."""

from __future__ import annotations

import html
import re

from dispatcher.console.forms import merge_languages, parse_script, question_lines
from dispatcher.kernel.states import Role
from tests.test_console import _create_form, sign_in
from tests.web_helpers import running_api

KK = "Кофе қалай?\n1. Керемет\n2. Орташа\n\nТағы келесіз бе?\n1. Иә\n2. Жоқ\n3. Білмеймін"
RU = "Как вам кофе?\n1. Отлично\n2. Так себе\n\nПридёте ещё?\n1. Да\n2. Нет"
FIELDS = {
    "name": "Coffee survey",
    "kind": "survey",
    "survey_kk": KK,
    "survey_ru": RU,
    "thanks_kk": "Рақмет!",
    "thanks_ru": "Спасибо!",
}


def _errors(page: str) -> list[str]:
    """The items of the page's error summary, as text."""
    summary = page[page.index('id="form-errors"') :]
    summary = summary[: summary.index("</ul>")]
    items = re.findall(r"<li>(.*?)</li>", summary, re.S)
    return [html.unescape(re.sub(r"<[^>]+>", "", item)) for item in items]


async def test_a_survey_of_two_shapes_shows_only_the_real_cause(settings, clock, database) -> None:
    """kk's question 2 has three options, ru's two: the one error names question 2, both
    languages and the line; no "expected 1..10 questions" above it; the scripts, the
    thank-yous and the name come back; the chosen file is named to be chosen again."""
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.MARKETER)
        form = _create_form(csrf, FIELDS, "77010000001\n")
        response = await api.client.post("/console/campaigns/new", data=form)
        page = await response.text()
    assert response.status == 400
    errors = _errors(page)
    assert len(errors) == 1, errors
    assert "expected 1..10 questions" not in page
    assert "question 2" in errors[0] and "kk has 3 options" in errors[0]
    assert "ru has 2" in errors[0] and "line 5" in errors[0]
    assert html.escape(KK, quote=False) in page and "Так себе" in page
    assert 'value="Рақмет!"' in page and 'value="Coffee survey"' in page
    assert 'id="file-again"' in page and "audience.csv" in page
    assert await database.pool.fetchval("SELECT count(*) FROM campaigns") == 0


async def test_a_survey_without_questions_says_so_once(settings, clock, database) -> None:
    """No script at all: one error, the form's own ("write the survey's questions…")."""
    fields = {k: v for k, v in FIELDS.items() if not k.startswith("survey_")}
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.MARKETER)
        response = await api.client.post(
            "/console/campaigns/new", data=_create_form(csrf, fields, None)
        )
        page = await response.text()
    assert response.status == 400
    errors = _errors(page)
    assert errors == ["survey: write the survey's questions in at least one language"]
    assert 'id="file-again"' not in page


def test_question_lines_are_where_each_question_starts() -> None:
    """The line of each question of a script (blank lines and surrounding space allowed)."""
    assert question_lines("\nQ1?\n1. a\n\n\n  Q2?\n1. b\n") == [2, 6]
    assert question_lines(KK) == [1, 5]


def test_a_missing_question_is_named_with_its_language_and_line() -> None:
    """ru has one question fewer: the message names the question, the languages, the line."""
    scripts = {"kk": parse_script(KK), "ru": parse_script(RU.split("\n\n")[0])}
    lines = {"kk": question_lines(KK), "ru": question_lines(RU)}
    _, problem = merge_languages(scripts, lines)
    assert problem is not None
    assert problem.startswith("question 2 (kk, line 5) has no ru counterpart")
