"""Pure parts of the program: USSD parsing, MO classification, texts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dispatcher.kernel.states import Language
from dispatcher.program import texts
from dispatcher.program.mo import Intent, classify
from dispatcher.program.ussd import Action, language_hint, parse_request


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
        ("5", True, Action.CONDITIONS),
        ("6", True, Action.LANGUAGE_MENU),
        ("7", True, Action.UNKNOWN),
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


def test_every_text_exists_in_every_language_and_is_classified() -> None:
    """Each text exists in kk, ru and en; each is a USSD screen, a piece of one, or SMS."""
    for key, variants in texts.TEXTS.items():
        assert set(variants) == set(Language), key
    assert set(texts.TEXTS) == texts.USSD_KEYS | texts.USSD_PIECES | texts.SMS_KEYS
    assert texts.USSD_KEYS.isdisjoint(texts.SMS_KEYS)


_WORST_VALUES = st.fixed_dictionaries(
    {
        "units": st.integers(0, 10**7 - 1),  # settings allow 10**6; charging may say more
        # local day and time are fixed-width; any day of any month
        "expires": st.datetimes().map(lambda d: d.strftime("%d.%m.%Y %H:%M")),
        "deadline": st.datetimes().map(lambda d: d.strftime("%d.%m.%Y %H:%M")),
        "next": st.dates().map(lambda d: d.strftime("%d.%m.%Y")),
        "start": st.dates().map(lambda d: d.strftime("%d.%m.%Y")),
        "info_cap": st.integers(0, 1000),
        "survey_cap": st.integers(0, 1000),
        "support": st.sampled_from(["3030", "8 (727) 258-83-00", "+7 (727) 258-83-00 12"]),
        "amount": st.decimals(-(10**12), 10**12, places=2).map(lambda a: f"{a} KZT"),
        "url": st.sampled_from(["https://example.kz/" + "s" * 41]),
    }
)


@settings(max_examples=60, deadline=None)
@given(_WORST_VALUES)
def test_every_ussd_text_fits_its_screens_in_every_language(values: dict[str, object]) -> None:
    """R14, the one complete check: every USSD text in every language, with worst-case
    values (largest units, any date, a main balance of many digits, the longest support
    line and conditions URL the settings allow) and the pieces appended to it, is shown as
    screens that each fit their encoding (182 GSM-7, 80 UCS-2, as the SMPP encoder decides);
    a longer one pages with "0", and no character is lost."""
    for key in sorted(texts.USSD_KEYS):
        for lang in Language:
            shown = texts.text(key, lang, **values)
            for piece in ("main_balance", "conditions_url"):
                shown += texts.text(piece, lang, **values)
            pages = texts.screens(shown, lang)
            assert all(texts.fits_screen(p) for p in pages), (key, lang, pages)
            more = "\n0 " + texts.text("next_page", lang)
            assert all(p.endswith(more) for p in pages[:-1]), (key, lang, pages)
            assert not pages[-1].endswith(more)
            rebuilt = " ".join(p.removesuffix(more) for p in pages)
            assert rebuilt.split() == shown.split(), (key, lang)
            if texts.fits_screen(shown):
                assert pages == [shown]


def test_screens_page_a_long_word_and_menus_at_line_ends() -> None:
    """A word longer than a screen is cut; the menu pages at its line ends."""
    pages = texts.screens("ж" * 200, Language.KK)
    assert all(texts.fits_screen(p) for p in pages) and len(pages) == 3
    menu = texts.screens(texts.text("menu", Language.RU), Language.RU)
    assert menu[0].endswith("4 Баланс бонуса\n0 Далее")
    assert menu[1] == "5 Условия и помощь\n6 Тіл/Язык/Language"
    assert texts.screens("SMART: " + "x" * 175, Language.EN) == ["SMART: " + "x" * 175]


def test_language_menu_choices_and_hints() -> None:
    """R14: inside the language menu 1/2/3 choose kk/ru/en; "0" pages only with pages left;
    a gateway hint is read in the forms gateways send, anything else is ignored."""
    assert parse_request("2", "language") is Action.CHOOSE_LANGUAGE
    assert parse_request("4", "language") is Action.UNKNOWN
    assert parse_request("0", "main", more=True) is Action.NEXT_PAGE
    assert parse_request("0", "main") is Action.UNKNOWN
    for raw, lang in [
        ("kk", Language.KK),
        ("KAZ", Language.KK),
        ("kz", Language.KK),
        ("ru-RU", Language.RU),
        ("rus", Language.RU),
        ("en_GB", Language.EN),
    ]:
        assert language_hint(raw) is lang, raw
    for raw in (None, "", "de", "uz-Cyrl", "k"):
        assert language_hint(raw) is None, raw


def test_kazakh_texts_read_as_written_by_a_native_writer() -> None:
    """Issue 12: the calques and awkward phrases are gone — "already a member" says
    "already" (-ып қойғансыз), the present is "сыйға берілді", lost bonuses are "жойылды"
    (not "күйді", a calque of "сгорели")."""
    kk = {key: variants[Language.KK] for key, variants in texts.TEXTS.items()}
    assert kk["already_member"] == "Сіз SMART-қа қосылып қойғансыз."
    assert "сыйға берілді" in kk["joined"]
    for key, shown in kk.items():
        for awkward in ("күйді", "күйеді", "бонус сыйлық", "қатысушысысыз", "бірлік бонус"):
            assert awkward not in shown, (key, awkward)
