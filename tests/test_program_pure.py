"""Pure parts of the program: USSD parsing, MO classification, texts."""

from __future__ import annotations

import pytest

from dispatcher.kernel.states import Language
from dispatcher.program import texts
from dispatcher.program.mo import Intent, classify
from dispatcher.program.ussd import Action, parse_request


@pytest.mark.parametrize(
    ("dialled", "in_menu", "action"),
    [
        ("*555#", False, Action.MENU),
        (" *555*1# ", False, Action.JOIN),
        ("*555*2#", False, Action.LEAVE),
        ("*555*00#", False, Action.ACTIVATE),
        ("*111*3#", False, Action.BALANCE),
        ("1", True, Action.JOIN),
        ("4", True, Action.BALANCE),
        ("1", False, Action.UNKNOWN),
        ("5", True, Action.UNKNOWN),
        ("*555*0#", False, Action.UNKNOWN),
    ],
)
def test_parse_request(dialled: str, in_menu: bool, action: Action) -> None:
    """USSD codes and menu choices map to actions (R1, R2, R4, R6)."""
    assert parse_request(dialled, in_menu) is action


@pytest.mark.parametrize("text", ["STOP", "stop", "  Stop ", "СТОП", "стоп", "ТОҚТАТ", "тоқтат"])
def test_stop_words_leave(text: str) -> None:
    """R2: STOP, СТОП, ТОҚТАТ in any case with spaces to the short code mean leave."""
    assert classify("5555", text, "5555", "1204") is Intent.LEAVE


def test_anything_to_1204_is_dnc() -> None:
    """R9: any text to 1204 is the telemarketing opt-out."""
    assert classify("1204", "hello", "5555", "1204") is Intent.DNC
    assert classify("1204", "", "5555", "1204") is Intent.DNC


def test_other_texts() -> None:
    """HELP asks for the codes; other short-code texts may be survey replies."""
    assert classify("5555", "help", "5555", "1204") is Intent.HELP
    assert classify("5555", "2", "5555", "1204") is Intent.REPLY
    assert classify("5555", "STOP please", "5555", "1204") is Intent.REPLY
    assert classify("7777", "STOP", "5555", "1204") is Intent.OTHER


def test_every_text_fits_a_ussd_screen_in_every_language() -> None:
    """Each text exists in kk, ru and en and fits 182 characters with realistic values."""
    values = {
        "units": 500,
        "expires": "2026-11-30 21:00",
        "deadline": "2026-12-23",
        "amount": "1 234.56 KZT",
        "next": "01.12.2026",  # the next grant's day (R3)
        "start": "01.12.2026",  # the first day a pending grant can be activated (R4)
    }
    for key, variants in texts.TEXTS.items():
        assert set(variants) == set(Language), key
        for lang in Language:
            assert len(texts.text(key, lang, **values)) <= texts.USSD_SCREEN, (key, lang)
