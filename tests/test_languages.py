"""R14's language fallback: one pure function, and its SQL mirror agreeing with it on every
combination of available texts, preferred language and default."""

from __future__ import annotations

from itertools import permutations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.languages import pick_language
from campaigns.templates import pick_text
from dispatcher.db import Database
from dispatcher.kernel.states import Language
from dispatcher.program import texts

LANGUAGES = tuple(language.value for language in Language)
CHOICES = (None, *LANGUAGES)
#: Every non-empty set of available languages, in every order (order decides "first").
ORDERS = [list(order) for k in (1, 2, 3) for order in permutations(LANGUAGES, k)]
COMBINATIONS = [(order, p, d) for order in ORDERS for p in CHOICES for d in CHOICES]

available_lists = st.lists(st.sampled_from(LANGUAGES), min_size=1, max_size=3, unique=True)
choices = st.sampled_from((*CHOICES, "de", ""))


@given(available_lists, choices, choices)
def test_theirs_else_the_default_else_the_first(
    available: list[str], preferred: str | None, default: str | None
) -> None:
    """The preferred language when available, else the default when available, else the
    first available; an unknown or empty code is never chosen."""
    chosen = pick_language(available, preferred, default)
    if preferred in available:
        assert chosen == preferred
    elif default in available:
        assert chosen == default
    else:
        assert chosen == available[0]


@given(available_lists, choices, choices)
def test_texts_map_and_language_list_choose_alike(
    available: list[str], preferred: str | None, default: str | None
) -> None:
    """A {language: text} map chooses by its keys, in their order; pick_text returns the
    chosen language's text."""
    texts_by_language = {language: f"text {language}" for language in available}
    chosen = pick_language(available, preferred, default)
    assert pick_language(texts_by_language, preferred, default) == chosen
    if default:
        assert pick_text(texts_by_language, preferred, default) == (chosen, f"text {chosen}")


def test_nothing_available_is_an_error() -> None:
    """No text in any language: ValueError, not a guess."""
    with pytest.raises(ValueError):
        pick_language([], "ru", "kk")


#: A program text without placeholders, so text() needs no values for it.
PLAIN_KEY = next(k for k, v in texts.TEXTS.items() if not any("{" in t for t in v.values()))


@given(st.sampled_from((*CHOICES, "de", *Language)))
def test_program_texts_fall_back_to_russian(language: Language | str | None) -> None:
    """A program text is in the subscriber's language, Russian when it is unknown."""
    expected = Language(language) if language in LANGUAGES else Language.RU
    key = PLAIN_KEY
    assert texts.text(key, language) == texts.TEXTS[key][expected]


async def test_sql_pick_language_agrees_with_python_on_every_combination(
    database: Database,
) -> None:
    """pick_language() in SQL (used by the monthly bonus notice) chooses what the Python one
    does, for every ordered set of available languages × preferred × default."""
    rows = await database.pool.fetch(
        "SELECT pick_language(t.a::language[], t.p::language, t.d::language)::text AS chosen "
        "FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(a, p, d, i) "
        "ORDER BY t.i",
        ["{" + ",".join(order) + "}" for order, _, _ in COMBINATIONS],
        [p for _, p, _ in COMBINATIONS],
        [d for _, _, d in COMBINATIONS],
    )
    assert len(rows) == len(COMBINATIONS) == 15 * 4 * 4
    assert [row["chosen"] for row in rows] == [pick_language(a, p, d) for a, p, d in COMBINATIONS]
