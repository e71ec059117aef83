"""Partner advertising carries a Kazakh text (R15, Law "On Advertising" art. 6; issue 12):
no campaign is created without a text in each language of the ``required_languages``
setting (default kk) — through the API, the console or the CLI — and the refusal names the
missing language."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.spec import SpecError, parse_campaign
from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import ConfigError, Settings, load_settings
from tests.test_campaign_support import BASE, info_payload, survey_payload
from tests.test_cli_commands import _smartd
from tests.test_console import _create_form, sign_in
from tests.web_helpers import running_api

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
LANGS = ("kk", "ru", "en")


def _without(texts: dict[str, Any], lang: str) -> dict[str, Any]:
    return {k: v for k, v in texts.items() if k != lang}


def _survey_without(payload: dict[str, Any], lang: str) -> dict[str, Any]:
    survey = payload["survey"]
    questions = [
        {
            "texts": _without(q["texts"], lang),
            "options": [_without(o, lang) for o in q["options"]],
        }
        for q in survey["questions"]
    ]
    return {
        **payload,
        "survey": {**survey, "questions": questions, "thanks": _without(survey["thanks"], lang)},
    }


async def test_api_refuses_an_info_campaign_without_kazakh(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """No kk text: 400 whose details name kk under texts (beside the other text problems);
    nothing is created. With kk it is created."""
    payload = info_payload()
    payload["texts"] = _without(payload["texts"], "kk")
    async with running_api(settings, clock, database) as api:
        response = await api.client.post(BASE, json=payload, headers=api.auth(Role.MARKETER))
        body = await response.json()
        assert response.status == 400, body
        assert body["error"]["code"] == "invalid_campaign"
        assert "R15" in body["error"]["details"]["texts"]["kk"]
        assert await database.pool.fetchval("SELECT count(*) FROM campaigns") == 0
        response = await api.client.post(BASE, json=info_payload(), headers=api.auth(Role.ADMIN))
        assert response.status == 201


async def test_api_refuses_a_survey_without_kazakh(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """A survey whose questions and thank-you lack kk is refused, naming kk under survey."""
    payload = _survey_without(survey_payload(), "kk")
    async with running_api(settings, clock, database) as api:
        response = await api.client.post(BASE, json=payload, headers=api.auth(Role.MARKETER))
        body = await response.json()
        assert response.status == 400, body
        assert "missing required language(s) kk" in body["error"]["details"]["survey"]
        response = await api.client.post(
            BASE, json=survey_payload(), headers=api.auth(Role.MARKETER)
        )
        assert response.status == 201


async def test_the_required_languages_are_a_setting(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """Another operator's rules: with required_languages = ru, a ru text is needed and kk is
    not; with none required, any one language will do."""
    ru_only = dataclasses.replace(settings, required_languages=("ru",))
    async with running_api(ru_only, clock, database) as api:
        response = await api.client.post(
            BASE, json=info_payload(texts={"kk": "Жеңілдік"}), headers=api.auth(Role.MARKETER)
        )
        assert response.status == 400
        assert set((await response.json())["error"]["details"]["texts"]) == {"ru"}
        response = await api.client.post(
            BASE, json=info_payload(texts={"ru": "Скидка"}), headers=api.auth(Role.MARKETER)
        )
        assert response.status == 201
    none = dataclasses.replace(settings, required_languages=())
    async with running_api(none, clock, database) as api:
        response = await api.client.post(
            BASE, json=info_payload(texts={"en": "Sale"}), headers=api.auth(Role.MARKETER)
        )
        assert response.status == 201


def test_required_languages_setting_is_parsed_and_checked() -> None:
    """SMARTD_REQUIRED_LANGUAGES: default kk; a comma list; empty for none; an unknown
    language stops start-up with the variable named."""
    assert load_settings({}).required_languages == ("kk",)
    parsed = load_settings({"SMARTD_REQUIRED_LANGUAGES": " KK, ru ,kk"}).required_languages
    assert parsed == ("kk", "ru")
    assert load_settings({"SMARTD_REQUIRED_LANGUAGES": ""}).required_languages == ()
    with pytest.raises(ConfigError, match="SMARTD_REQUIRED_LANGUAGES"):
        load_settings({"SMARTD_REQUIRED_LANGUAGES": "kk,de"})


@given(
    required=st.sets(st.sampled_from(LANGS)),
    given_langs=st.sets(st.sampled_from(LANGS), min_size=1),
)
def test_a_campaign_is_valid_exactly_when_every_required_language_has_a_text(
    required: set[str], given_langs: set[str]
) -> None:
    """Over every set of required and given languages: created exactly when the given cover
    the required, and a refusal names precisely the missing ones."""
    payload = {"name": "x", "kind": "info", "texts": {lang: "Text" for lang in given_langs}}
    missing = sorted(required - given_langs)
    try:
        parse_campaign(payload, NOW, 10, sorted(required))
    except SpecError as exc:
        assert missing and set(exc.details["texts"]) == set(missing)
    else:
        assert not missing


async def test_console_form_without_kazakh_says_so(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """The console's create form without a kk text comes back (400) naming texts.kk and
    creates nothing."""
    fields = {"name": "Winter sale", "kind": "info", "text_ru": "Зимняя распродажа"}
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.MARKETER)
        response = await api.client.post(
            "/console/campaigns/new", data=_create_form(csrf, fields, None)
        )
        text = await response.text()
        assert response.status == 400
        assert "texts.kk" in text and "required language kk is missing" in text
        assert 'Text (kk) <span class="required">required</span>' in text
        assert "Text (ru)</label>" in text
        assert await database.pool.fetchval("SELECT count(*) FROM campaigns") == 0


def test_cli_create_without_kazakh_is_refused(database_url: str, tmp_path: Path) -> None:
    """`smartd campaign create` without a kk text exits 1 naming kk; with one it creates."""
    result = _smartd(database_url, "campaign", "create", "--name", "A", "--text", "ru=Привет")
    assert result.returncode == 1
    assert "texts.kk: required language kk is missing" in result.stderr
    assert "nothing was created" in result.stderr
    result = _smartd(
        database_url,
        "campaign",
        "create",
        "--name",
        "A",
        "--text",
        "ru=Привет",
        "--text",
        "kk=Сәлем",
    )
    assert result.returncode == 0, result.stderr
