"""R14 over SMPP: a USSD screen goes out whole as one submit_sm (no SMS concatenation
header, nothing cut at the 67 / 153 characters of an SMS part), a longer answer pages with
"0", and HELP names where the conditions are and the support line (settings)."""

from __future__ import annotations

import dataclasses

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.program import texts
from dispatcher.settings import Settings
from smpp.constants import Tag
from smpp.pdu import ShortMessage
from smpp.text import ESM_CLASS_UDHI, decode_short_message
from tests.dispatch_helpers import dispatch_rig

MSISDN = "77013334466"
USSR_REQUEST, PSSR_RESPONSE = 2, 17


def screen(sm: ShortMessage) -> tuple[str, int]:
    """The text of a USSD reply and its ussd_service_op."""
    assert not sm.esm_class & ESM_CLASS_UDHI, "a USSD screen carries no concatenation header"
    assert not sm.tlvs.get(Tag.MESSAGE_PAYLOAD)
    return decode_short_message(sm.data_coding, sm.short_message), sm.tlvs[Tag.USSD_SERVICE_OP][0]


async def test_menu_over_smpp_is_sent_whole_and_pages(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """*555# in Russian (UCS-2, 80 characters a screen) over SMPP: the first page whole with
    "0 Далее" and the session kept (USSR request); "0" the rest; "6" the language menu."""
    async with dispatch_rig(database, settings, clock) as rig:
        session = {"session_info": b"\x00\x09"}
        await rig.sim.inject_ussd(MSISDN, settings.short_code, "*555#", **session)
        await rig.sim.wait_for(lambda: len(rig.sim.submits()) == 1)
        await rig.sim.inject_ussd(MSISDN, settings.short_code, "0", service_op=18, **session)
        await rig.sim.wait_for(lambda: len(rig.sim.submits()) == 2)
        await rig.sim.inject_ussd(MSISDN, settings.short_code, "6", service_op=18, **session)
        await rig.sim.wait_for(lambda: len(rig.sim.submits()) == 3)
        shown = [screen(sm) for _, sm in rig.sim.submits()]
    menu = texts.screens(texts.text("menu", "ru"), "ru")
    assert shown[0] == (menu[0], USSR_REQUEST) and shown[0][0].endswith("\n0 Далее")
    assert shown[1] == (menu[1], USSR_REQUEST)
    assert shown[2] == (texts.text("language_menu", "ru"), USSR_REQUEST)
    assert all(texts.fits_screen(text) for text, _ in shown)


async def test_help_names_the_conditions_and_the_support_line(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """HELP by SMS: the codes, where the conditions are, and SMARTD_SUPPORT_LINE (3030 by
    default, as the operator's FAQ gives it); a published conditions page when one is set."""
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.sim.inject_mo(MSISDN, settings.short_code, "help")
    body = await database.pool.fetchval("SELECT body FROM service_messages WHERE kind = 'help'")
    assert "Условия: *555#, пункт 5." in body and body.endswith("Поддержка: 3030.")
    custom = dataclasses.replace(
        settings, support_line="+7 727 258 83 00", conditions_url="https://smart.example.kz/t"
    )
    async with dispatch_rig(database, custom, clock) as rig:
        await rig.sim.inject_mo(MSISDN, settings.short_code, "помощь")
    bodies = await database.pool.fetch("SELECT body FROM service_messages WHERE kind = 'help'")
    assert "Условия: https://smart.example.kz/t." in bodies[-1]["body"]
    assert bodies[-1]["body"].endswith("Поддержка: +7 727 258 83 00.")
