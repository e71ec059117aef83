"""R14 through the USSD gateway (HTTP, the clock set): the subscriber chooses their language
in the *555# menu and the choice is kept; the gateway's language hint is used when no
language is known, never over a choice; every answer fits its screen or pages with "0";
the conditions and the support line (settings) are one menu choice away."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.program import texts
from dispatcher.settings import Settings, load_settings
from tests.charging_server import FakeCharging
from tests.web_helpers import Api, running_api

A, B = "77015550001", "77015550002"
_sessions = itertools.count(1)


@pytest.fixture
async def charging() -> AsyncIterator[FakeCharging]:
    fake = FakeCharging()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, charging: FakeCharging) -> Settings:
    """The charging system answers *111*3# with the main balance (R6)."""
    loaded = load_settings({}, data_dir=tmp_path, database_url=database_url)
    return dataclasses.replace(loaded, charging_url=charging.url, charging_timeout=2.0)


async def dial(
    api: Api, code: str, msisdn: str = A, session: str | None = None, language: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "msisdn": msisdn,
        "session_id": session or f"lang{next(_sessions)}",
        "input": code,
    }
    if language is not None:
        body["language"] = language
    resp = await api.client.post("/gateway/ussd", json=body, headers=api.auth(Role.GATEWAY))
    assert resp.status == 200, await resp.text()
    reply: dict[str, Any] = await resp.json()
    assert texts.fits_screen(reply["text"]), reply  # R14: every screen, every answer
    return reply


async def read_all(
    api: Api, code: str, msisdn: str = A, language: str | None = None
) -> tuple[list[str], str]:
    """Dial ``code`` and follow "0" through every page; the pages and the session id."""
    session = f"lang{next(_sessions)}"
    reply = await dial(api, code, msisdn, session, language)
    pages = [reply["text"]]
    while not reply["end"] and reply["text"].endswith(("0 Далее", "0 Әрі қарай", "0 Next")):
        reply = await dial(api, "0", msisdn, session)
        pages.append(reply["text"])
    return pages, session


async def follow(api: Api, reply: dict[str, Any], session: str) -> str:
    """The whole answer from ``reply`` on: "0" until the session ends."""
    shown = [reply["text"]]
    while not reply["end"]:
        assert reply["text"].endswith(("0 Далее", "0 Әрі қарай", "0 Next")), reply
        reply = await dial(api, "0", A, session)
        shown.append(reply["text"])
    return " ".join(shown)


async def language_of(api: Api, msisdn: str) -> str | None:
    """The subscriber's language as the API shows it; checks a choice is marked as one."""
    resp = await api.client.get(f"/api/v1/subscribers/{msisdn}", headers=api.auth(Role.VIEWER))
    assert resp.status == 200, await resp.text()
    view = await resp.json()
    language: str | None = view["language"]
    return language


async def chosen_at(api: Api, msisdn: str) -> str | None:
    resp = await api.client.get(f"/api/v1/subscribers/{msisdn}", headers=api.auth(Role.VIEWER))
    value: str | None = (await resp.json())["language_chosen_at"]
    return value


async def choose(api: Api, msisdn: str, choice: str) -> dict[str, Any]:
    """*555# → the page with the language item → 6 → ``choice``."""
    pages, session = await read_all(api, "*555#", msisdn)
    assert any("6 Тіл/Язык/Language" in p or "6 Language" in p for p in pages), pages
    language_menu = await dial(api, "6", msisdn, session)
    assert language_menu["end"] is False
    assert "1 Қазақша" in language_menu["text"] and "2 Русский" in language_menu["text"]
    return await dial(api, choice, msisdn, session)


async def test_menu_offers_the_language_and_the_choice_is_kept(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """A number first seen by USSD gets the default (ru); *555# → 6 → 1 chooses Kazakh, the
    answer is in Kazakh, and every later answer is too (the choice is kept)."""
    chosen = await choose(api, A, "1")
    assert chosen["end"] is True and "қазақ тілінде" in chosen["text"]
    assert await language_of(api, A) == "kk"
    assert await chosen_at(api, A) == clock.now().isoformat()
    clock.advance(timedelta(hours=1))
    joined = await dial(api, "*555*1#")
    assert "SMART-қа қосылдыңыз" in joined["text"]
    again = await dial(api, "*555*1#")
    assert again["text"] == "Сіз SMART-қа қосылып қойғансыз."  # "already" (issue 12)
    chosen = await choose(api, A, "3")
    assert chosen["text"] == "SMART messages will be in English."
    assert (await dial(api, "*555*1#"))["text"] == "You are already a SMART member."


async def test_gateway_hint_fills_an_unknown_language_never_a_choice(
    api: Api, database: Database
) -> None:
    """The gateway's hint is used on first contact (kk, kaz, ru-RU …); it never replaces a
    language the subscriber chose, and an unknown hint is ignored."""
    first = await dial(api, "*555*1#", A, language="KAZ")
    assert first["text"].startswith("SMART-қа қосылдыңыз")
    assert await language_of(api, A) == "kk" and await chosen_at(api, A) is None
    await choose(api, A, "2")  # the subscriber wants Russian
    later = await dial(api, "*555*1#", A, language="kk")
    assert later["text"] == "Вы уже участник SMART."
    assert await language_of(api, A) == "ru"
    unknown = await dial(api, "*555*1#", B, language="de")
    assert unknown["text"].startswith("Вы подключены к SMART")  # the default, ru
    assert await language_of(api, B) is None
    hinted = await dial(api, "*555*2#", B, language="en-GB")
    assert hinted["text"].startswith("You left SMART")


async def test_import_does_not_override_a_chosen_language(api: Api, database: Database) -> None:
    """A subscriber import (the CRM's language) does not override the subscriber's choice."""
    await choose(api, A, "3")
    resp = await api.client.post(
        "/api/v1/subscribers/import",
        data=f"{A},active,kk\n{B},active,kk\n".encode(),
        headers={**api.auth(Role.ADMIN), "Content-Type": "text/csv"},
    )
    assert resp.status == 200, await resp.text()
    assert await language_of(api, A) == "en"
    assert await language_of(api, B) == "kk"


@pytest.mark.parametrize("choice", ["1", "2", "3"])
async def test_balance_with_an_active_bonus_and_main_balance_fits_or_pages(
    api: Api, charging: FakeCharging, choice: str
) -> None:
    """*111*3# with an active bonus and a main balance of many digits was 88-100 characters
    in ru and kk (over the 80 of UCS-2): now every screen fits its encoding and a longer
    answer pages with "0", no word lost."""
    charging.main_balance = "-1234567890.12"
    await choose(api, A, choice)
    await dial(api, "*555*1#")
    activated = await dial(api, "*555*00#")
    assert activated["end"] is True, activated
    pages, _ = await read_all(api, "*111*3#")
    whole = " ".join(pages)
    assert "-1234567890.12 KZT" in whole and "500" in whole


async def test_conditions_and_support_line_are_in_the_menu(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """*555# → 5: the conditions in short and the support line, both settings (default
    3030); the full conditions' page when one is set."""
    async with running_api(settings, clock, database) as api:
        _, session = await read_all(api, "*555#")
        whole = await follow(api, await dial(api, "5", A, session), session)
        assert "Поддержка: 3030." in whole and "*555*00#" in whole
    custom = dataclasses.replace(
        settings, support_line="8 (727) 258-83-00", conditions_url="https://smart.example.kz/t"
    )
    async with running_api(custom, clock, database) as api:
        await choose(api, A, "3")
        _, session = await read_all(api, "*555#")
        whole = await follow(api, await dial(api, "5", A, session), session)
        assert "Support: 8 (727) 258-83-00." in whole
        assert whole.endswith("Full terms: https://smart.example.kz/t")
