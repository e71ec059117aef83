"""What subscribers read, in their language (R14): USSD screens and service SMS.

Every text exists in kk, ru and en and carries its placeholders by name (add a key in all
three languages or not at all). A USSD text (:data:`USSD_KEYS`) is shown as screens: one
when it fits its encoding — 182 GSM-7 septets, or 80 UCS-2 characters when the text needs
UCS-2 (the SMPP encoder decides, :mod:`smpp.text`) — else :func:`screens` pages it, each
page but the last ending with a "0 next" choice. A test renders every USSD text in every
language with worst-case values. SMS texts (:data:`SMS_KEYS`) are split and concatenated
by the dispatcher like any SMS.
"""

from __future__ import annotations

import functools
import re
from typing import Protocol

from campaigns.languages import pick_language
from dispatcher.kernel.states import Language
from smpp.text import choose_encoding, gsm7_encodable, text_units


class HelpSettings(Protocol):
    """The settings the help and conditions texts name."""

    @property
    def support_line(self) -> str: ...

    @property
    def conditions_url(self) -> str | None: ...


#: R14: one USSD screen: 182 GSM-7 septets, or 80 characters in UCS-2.
GSM7_SCREEN = 182
UCS2_SCREEN = 80
#: The choice that shows a paged answer's next screen.
NEXT_CHOICE = "0"

TEXTS: dict[str, dict[Language, str]] = {
    # ---------------------------------------------------------------- USSD screens
    "menu": {
        Language.RU: "SMART\n1 Подключиться\n2 Отключиться\n3 Активировать бонус\n"
        "4 Баланс бонуса\n5 Условия и помощь\n6 Тіл/Язык/Language",
        Language.KK: "SMART\n1 Қосылу\n2 Шығу\n3 Бонусты белсендіру\n4 Бонус балансы\n"
        "5 Шарттар мен анықтама\n6 Тіл/Язык/Language",
        Language.EN: "SMART\n1 Join\n2 Leave\n3 Activate bonus\n4 Bonus balance\n"
        "5 Terms and help\n6 Language",
    },
    "language_menu": {
        Language.RU: "Тіл/Язык/Language\n1 Қазақша\n2 Русский\n3 English",
        Language.KK: "Тіл/Язык/Language\n1 Қазақша\n2 Русский\n3 English",
        Language.EN: "Тіл/Язык/Language\n1 Қазақша\n2 Русский\n3 English",
    },
    "language_set": {
        Language.RU: "Сообщения SMART будут на русском языке.",
        Language.KK: "SMART хабарламалары енді қазақ тілінде болады.",
        Language.EN: "SMART messages will be in English.",
    },
    "next_page": {
        Language.RU: "Далее",
        Language.KK: "Әрі қарай",
        Language.EN: "Next",
    },
    "conditions": {
        Language.RU: "SMART бесплатно: {units} бонусных ед. каждый месяц; активация *555*00# "
        "в течение 30 дней, бонус действует 7 дней. До {info_cap} сообщений партнёров и "
        "{survey_cap} опросов в месяц. Отключение *555*2#: бонусы сгорают. "
        "Поддержка: {support}.",
        Language.KK: "SMART тегін: ай сайын {units} бонус; оны 30 күн ішінде *555*00# арқылы "
        "белсендіресіз, бонус 7 күн жарамды. Айына серіктестерден {info_cap} хабарламаға "
        "және {survey_cap} сауалнамаға дейін. Шығу *555*2#: бонустар жойылады. "
        "Анықтама: {support}.",
        Language.EN: "SMART is free: {units} bonus units every month; activate with *555*00# "
        "within 30 days, valid 7 days. Up to {info_cap} partner messages and {survey_cap} "
        "surveys a month. Leave with *555*2#: bonus units are lost. Support: {support}.",
    },
    "conditions_url": {
        Language.RU: " Условия: {url}",
        Language.KK: " Толық шарттар: {url}",
        Language.EN: " Full terms: {url}",
    },
    "joined": {
        Language.RU: "Вы подключены к SMART. Подарок {units} бонусов: наберите *555*00#.",
        Language.KK: "SMART-қа қосылдыңыз! Сізге {units} бонус сыйға берілді: *555*00# теріңіз.",
        Language.EN: "You joined SMART. A present of {units} bonus units: dial *555*00#.",
    },
    "joined_no_present": {
        Language.RU: "Вы подключены к SMART. Бонус месяца уже получен; "
        "следующие {units} ед. {next}.",
        Language.KK: "SMART-қа қосылдыңыз. Осы айдың бонусын алғансыз; келесі {units} бонус "
        "{next} беріледі.",
        Language.EN: "You joined SMART. This month's bonus was already received; "
        "the next {units} units come on {next}.",
    },
    "joined_see_balance": {
        Language.RU: "Вы подключены к SMART. Ваш бонус: *111*3#.",
        Language.KK: "SMART-қа қосылдыңыз. Бонусыңызды білу: *111*3#.",
        Language.EN: "You joined SMART. Your bonus: dial *111*3#.",
    },
    "already_member": {
        Language.RU: "Вы уже участник SMART.",
        Language.KK: "Сіз SMART-қа қосылып қойғансыз.",
        Language.EN: "You are already a SMART member.",
    },
    "not_active": {
        Language.RU: "Подключение недоступно: номер не активен.",
        Language.KK: "Қосылу мүмкін емес: нөміріңіз белсенді емес.",
        Language.EN: "Joining is not available: the number is not active.",
    },
    "left": {
        Language.RU: "Вы отключены от SMART. Неиспользованные бонусы сгорели.",
        Language.KK: "Сіз SMART-тан шықтыңыз. Пайдаланылмаған бонустар жойылды.",
        Language.EN: "You left SMART. Unused bonus units are lost.",
    },
    "not_member": {
        Language.RU: "Вы не участник SMART. Подключение: *555*1#.",
        Language.KK: "Сіз SMART-қа қосылмағансыз. Қосылу: *555*1#.",
        Language.EN: "You are not a SMART member. To join dial *555*1#.",
    },
    "unknown_code": {
        Language.RU: "Неизвестная команда. SMART: *555#.",
        Language.KK: "Белгісіз команда. SMART мәзірі: *555#.",
        Language.EN: "Unknown code. SMART: *555#.",
    },
    "activated": {
        Language.RU: "Бонус {units} ед. активирован до {expires}.",
        Language.KK: "{units} бонус белсендірілді, {expires} дейін жарамды.",
        Language.EN: "{units} bonus units activated until {expires}.",
    },
    "nothing_to_activate": {
        Language.RU: "Нет бонусов для активации.",
        Language.KK: "Белсендіретін бонус жоқ.",
        Language.EN: "No bonus to activate.",
    },
    "nothing_to_activate_next": {
        Language.RU: "Нет бонусов для активации. Следующие {units} ед. придут {next}.",
        Language.KK: "Белсендіретін бонус жоқ. Келесі {units} бонус {next} беріледі.",
        Language.EN: "No bonus to activate. The next {units} units come on {next}.",
    },
    "activation_not_active": {
        Language.RU: "Бонус не активирован: номер не активен. Пополните баланс.",
        Language.KK: "Бонус белсендірілмеді: нөміріңіз белсенді емес. Балансты толтырыңыз.",
        Language.EN: "Bonus not activated: your number is not active. Top up first.",
    },
    "already_activated": {
        Language.RU: "Бонус в этом месяце уже активирован.",
        Language.KK: "Осы айдың бонусы белсендіріліп қойған.",
        Language.EN: "A bonus was already activated this month.",
    },
    "try_again": {
        Language.RU: "Сервис временно недоступен, повторите позже.",
        Language.KK: "Қызмет уақытша қолжетімсіз, кейінірек қайталап көріңіз.",
        Language.EN: "Service temporarily unavailable, please try again shortly.",
    },
    "balance": {
        Language.RU: "Бонус: {units} ед. до {expires}.",
        Language.KK: "Бонус: {units}, {expires} дейін жарамды.",
        Language.EN: "Bonus: {units} units until {expires}.",
    },
    "balance_pending": {
        Language.RU: "Бонус {units} ед. ждет активации: *555*00# до {deadline}.",
        Language.KK: "{units} бонус белсендіруді күтуде: {deadline} дейін *555*00# теріңіз.",
        Language.EN: "{units} bonus units await activation: dial *555*00# by {deadline}.",
    },
    "balance_none": {
        Language.RU: "Бонусов нет.",
        Language.KK: "Бонусыңыз жоқ.",
        Language.EN: "You have no bonus units.",
    },
    "balance_none_next": {
        Language.RU: "Бонусов нет: бонус месяца уже получен. Следующие {units} ед. {next}.",
        Language.KK: "Бонус жоқ: осы айдың бонусын алғансыз. Келесі {units} бонус {next} беріледі.",
        Language.EN: "No bonus units: this month's bonus was already received. "
        "The next {units} units come on {next}.",
    },
    "pending_next_month": {
        Language.RU: "Активация месяца уже была: {units} ед. с {start} до {deadline}.",
        Language.KK: "Осы айдың белсендіруі пайдаланылды: {units} бонусты {start} бастап "
        "{deadline} дейін белсендіруге болады.",
        Language.EN: "This month's activation is used: {units} bonus units can be activated "
        "from {start} until {deadline}.",
    },
    "pending_lapses": {
        Language.RU: "Активация месяца уже была: {units} ед. сгорят {deadline}.",
        Language.KK: "Осы айдың белсендіруі пайдаланылды: {units} бонустың мерзімі {deadline} "
        "бітеді.",
        Language.EN: "This month's activation is used: your {units} bonus units lapse on "
        "{deadline}.",
    },
    "pending_inactive": {
        Language.RU: "{units} ед. ждут активации до {deadline}. Номер не активен: пополните.",
        Language.KK: "{units} бонус {deadline} дейін белсендіруді күтеді. Нөміріңіз белсенді "
        "емес: балансты толтырыңыз.",
        Language.EN: "{units} bonus units await activation by {deadline}; your number is not "
        "active: top up first.",
    },
    "main_balance": {
        Language.RU: " Баланс: {amount}.",
        Language.KK: " Баланс: {amount}.",
        Language.EN: " Main balance: {amount}.",
    },
    # ---------------------------------------------------------------- SMS only
    "help": {
        Language.RU: "SMART: *555*1# подключиться, *555*2# или STOP отключиться, "
        "*555*00# активировать бонус, *111*3# баланс. Условия: {where}. "
        "Поддержка: {support}.",
        Language.KK: "SMART: *555*1# қосылу, *555*2# немесе STOP шығу, "
        "*555*00# бонусты белсендіру, *111*3# баланс. Шарттар: {where}. "
        "Қолдау қызметі: {support}.",
        Language.EN: "SMART: *555*1# join, *555*2# or STOP leave, "
        "*555*00# activate bonus, *111*3# balance. Terms: {where}. Support: {support}.",
    },
    "conditions_in_menu": {
        Language.RU: "*555#, пункт 5",
        Language.KK: "*555#, 5-тармақ",
        Language.EN: "*555#, item 5",
    },
    "dnc_blocked": {
        Language.RU: "Рекламные сообщения и опросы на ваш номер отключены (1204).",
        Language.KK: "Нөміріңізге жарнама мен сауалнама жіберу тоқтатылды (1204).",
        Language.EN: "Marketing messages and surveys to your number are switched off (1204).",
    },
    "dnc_left": {
        Language.RU: "Реклама и опросы на ваш номер отключены (1204). Вы вышли из SMART; "
        "неиспользованных бонусов не было.",
        Language.KK: "Нөміріңізге жарнама мен сауалнама жіберу тоқтатылды (1204). Сіз "
        "SMART-тан шықтыңыз; пайдаланылмаған бонусыңыз болған жоқ.",
        Language.EN: "Marketing messages and surveys to your number are switched off (1204). "
        "You left SMART; you had no unused bonus units.",
    },
    "dnc_left_lost": {
        Language.RU: "Реклама и опросы на ваш номер отключены (1204). Вы вышли из SMART; "
        "неиспользованные {units} бонусных ед. аннулированы.",
        Language.KK: "Нөміріңізге жарнама мен сауалнама жіберу тоқтатылды (1204). Сіз "
        "SMART-тан шықтыңыз; пайдаланылмаған {units} бонусыңыз жойылды.",
        Language.EN: "Marketing messages and surveys to your number are switched off (1204). "
        "You left SMART and lost your {units} unused bonus units.",
    },
    "dnc_left_unused": {
        Language.RU: "Реклама и опросы на ваш номер отключены (1204). Вы вышли из SMART; "
        "неиспользованные бонусы аннулированы.",
        Language.KK: "Нөміріңізге жарнама мен сауалнама жіберу тоқтатылды (1204). Сіз "
        "SMART-тан шықтыңыз; пайдаланылмаған бонустарыңыз жойылды.",
        Language.EN: "Marketing messages and surveys to your number are switched off (1204). "
        "You left SMART and lost your unused bonus units.",
    },
    "bonus_notice": {
        Language.RU: "Ваши {units} бонусов SMART готовы: наберите *555*00#.",
        Language.KK: "SMART: {units} бонусыңыз дайын, белсендіру үшін *555*00# теріңіз.",
        Language.EN: "Your {units} SMART bonus units are ready: dial *555*00#.",
    },
    "bonus_notice_next_month": {
        Language.RU: "Ваши {units} бонусов SMART начислены. Активация этого месяца "
        "использована: *555*00# с {start} до {deadline}.",
        Language.KK: "SMART: {units} бонус есептелді. Осы айдың белсендіруі пайдаланылды: "
        "{start} бастап {deadline} дейін *555*00# теріңіз.",
        Language.EN: "Your {units} SMART bonus units are granted. This month's activation is "
        "used: dial *555*00# from {start} until {deadline}.",
    },
    "bonus_notice_inactive": {
        Language.RU: "Ваши {units} бонусов SMART начислены. Номер не активен: пополните баланс "
        "и наберите *555*00# до {deadline}.",
        Language.KK: "SMART: {units} бонус есептелді. Нөміріңіз белсенді емес: балансты "
        "толтырып, {deadline} дейін *555*00# теріңіз.",
        Language.EN: "Your {units} SMART bonus units are granted. Your number is not active: top "
        "up, then dial *555*00# by {deadline}.",
    },
    "bonus_notice_lapses": {
        Language.RU: "Ваши {units} бонусов SMART начислены, но активация этого месяца "
        "использована: бонусы сгорят {deadline}.",
        Language.KK: "SMART: {units} бонус есептелді, бірақ осы айдың белсендіруі "
        "пайдаланылды: бонустың мерзімі {deadline} бітеді.",
        Language.EN: "Your {units} SMART bonus units are granted, but this month's activation "
        "is used: they lapse on {deadline}.",
    },
}

#: Texts shown on a USSD screen (the *555# menu and the codes' answers): they fit a screen
#: or page (:func:`screens`). The join and leave replies are also sent by SMS.
USSD_KEYS = frozenset(
    {
        "menu",
        "language_menu",
        "language_set",
        "conditions",
        "joined",
        "joined_no_present",
        "joined_see_balance",
        "already_member",
        "not_active",
        "left",
        "not_member",
        "unknown_code",
        "activated",
        "nothing_to_activate",
        "nothing_to_activate_next",
        "activation_not_active",
        "already_activated",
        "try_again",
        "balance",
        "balance_pending",
        "balance_none",
        "balance_none_next",
        "pending_next_month",
        "pending_lapses",
        "pending_inactive",
    }
)
#: Pieces of a screen, never shown alone: appended to a USSD text, or its "next" choice.
USSD_PIECES = frozenset({"main_balance", "conditions_url", "next_page"})
#: Texts sent only by SMS (split and concatenated when long).
SMS_KEYS = frozenset(TEXTS) - USSD_KEYS - USSD_PIECES


def text(key: str, language: Language | str | None, **values: object) -> str:
    """The text ``key`` in ``language`` (Russian when unknown), placeholders filled."""
    variants = TEXTS[key]
    return variants[Language(pick_language(variants, language, Language.RU))].format(**values)


def help_text(language: Language | str | None, settings: HelpSettings) -> str:
    """The reply to HELP: the codes, where the conditions are (the published page when set,
    else the *555# conditions screen) and the support line (R14; settings)."""
    where = settings.conditions_url or text("conditions_in_menu", language)
    return text("help", language, where=where, support=settings.support_line)


def screen_limit(shown: str) -> int:
    """R14: the units one USSD screen holds for ``shown``'s encoding."""
    return GSM7_SCREEN if gsm7_encodable(shown) else UCS2_SCREEN


def fits_screen(shown: str) -> bool:
    """R14: ``shown`` fits one USSD screen in the encoding the SMPP encoder would choose."""
    return text_units(shown, choose_encoding(shown)) <= screen_limit(shown)


_BREAK = re.compile(r"\n|(?<=[.;:!?]) |(?<=,) | ")


def screens(shown: str, language: Language | str | None) -> list[str]:
    """R14: ``shown`` as USSD screens: itself when it fits one, else pages that each fit
    with a ``0 Next`` line (the last page without it). Pages break at a line end, else
    after a sentence or clause, else between words; no character is lost. Remembered for
    the texts asked for most (the menus and answers without a figure repeat on every
    request; issue 16: paging the menu was a tenth of a USSD request's CPU)."""
    return list(_screens(shown, language))


@functools.lru_cache(maxsize=4096)
def _screens(shown: str, language: Language | str | None) -> tuple[str, ...]:
    more = "\n" + NEXT_CHOICE + " " + text("next_page", language)
    pages: list[str] = []
    rest = shown
    while not fits_screen(rest):
        cut = _cut(rest, more)
        pages.append(rest[:cut].rstrip() + more)
        rest = rest[cut:].lstrip()
    return (*pages, rest)


def _cut(rest: str, more: str) -> int:
    """Where the next page of ``rest`` ends: the best break whose page fits with ``more``."""
    best: dict[int, int] = {}  # break kind (0: line end, 1: sentence, 2: clause, 3: word) → end
    for match in _BREAK.finditer(rest):
        end = match.start()
        if end == 0:
            continue
        if not fits_screen(rest[:end].rstrip() + more):
            break
        kind = 0 if match.group() == "\n" else 3
        if kind == 3 and end > 0 and rest[end - 1] in ".;:!?":
            kind = 1
        elif kind == 3 and end > 0 and rest[end - 1] == ",":
            kind = 2
        best[kind] = end
    for kind in sorted(best):
        # prefer a stronger break unless it leaves the page less than half full
        if best[kind] * 2 >= max(best.values()):
            return best[kind]
    # no break fits: the longest prefix that does (one long word)
    end = 1
    while end < len(rest) and fits_screen(rest[: end + 1] + more):
        end += 1
    return end
