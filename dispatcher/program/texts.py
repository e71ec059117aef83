"""What subscribers read, in their language (R14): USSD screens and service SMS.

Every text fits one USSD screen (182 characters, checked by a test) and carries its
placeholders by name. Add a key in all three languages or not at all.
"""

from __future__ import annotations

from campaigns.languages import pick_language
from dispatcher.kernel.states import Language

USSD_SCREEN = 182

TEXTS: dict[str, dict[Language, str]] = {
    "menu": {
        Language.RU: "SMART: 1 Подключиться 2 Отключиться 3 Активировать бонус 4 Баланс бонуса",
        Language.KK: "SMART: 1 Қосылу 2 Ажырату 3 Бонусты белсендіру 4 Бонус балансы",
        Language.EN: "SMART: 1 Join 2 Leave 3 Activate bonus 4 Bonus balance",
    },
    "joined": {
        Language.RU: "Вы подключены к SMART. Подарок {units} бонусов: наберите *555*00#.",
        Language.KK: "Сіз SMART-қа қосылдыңыз. {units} бонус сыйлық: *555*00# теріңіз.",
        Language.EN: "You joined SMART. A present of {units} bonus units: dial *555*00#.",
    },
    "already_member": {
        Language.RU: "Вы уже участник SMART.",
        Language.KK: "Сіз SMART қатысушысысыз.",
        Language.EN: "You are already a SMART member.",
    },
    "not_active": {
        Language.RU: "Подключение недоступно: номер не активен.",
        Language.KK: "Қосылу мүмкін емес: нөмір белсенді емес.",
        Language.EN: "Joining is not available: the number is not active.",
    },
    "left": {
        Language.RU: "Вы отключены от SMART. Неиспользованные бонусы сгорели.",
        Language.KK: "Сіз SMART-тан ажыратылдыңыз. Пайдаланылмаған бонустар күйді.",
        Language.EN: "You left SMART. Unused bonus units are lost.",
    },
    "not_member": {
        Language.RU: "Вы не участник SMART. Подключение: *555*1#.",
        Language.KK: "Сіз SMART қатысушысы емессіз. Қосылу: *555*1#.",
        Language.EN: "You are not a SMART member. To join dial *555*1#.",
    },
    "dnc_blocked": {
        Language.RU: "Рекламные сообщения и опросы на ваш номер отключены (1204).",
        Language.KK: "Нөміріңізге жарнамалық хабарламалар мен сауалнамалар өшірілді (1204).",
        Language.EN: "Marketing messages and surveys to your number are switched off (1204).",
    },
    "unknown_code": {
        Language.RU: "Неизвестная команда. SMART: *555#.",
        Language.KK: "Белгісіз команда. SMART: *555#.",
        Language.EN: "Unknown code. SMART: *555#.",
    },
    "help": {
        Language.RU: "SMART: *555*1# подключиться, *555*2# или STOP отключиться, "
        "*555*00# активировать бонус, *111*3# баланс.",
        Language.KK: "SMART: *555*1# қосылу, *555*2# немесе STOP ажырату, "
        "*555*00# бонусты белсендіру, *111*3# баланс.",
        Language.EN: "SMART: *555*1# join, *555*2# or STOP leave, "
        "*555*00# activate bonus, *111*3# balance.",
    },
    "activated": {
        Language.RU: "Бонус {units} ед. активирован до {expires}.",
        Language.KK: "{units} бірлік бонус {expires} дейін белсендірілді.",
        Language.EN: "{units} bonus units activated until {expires}.",
    },
    "nothing_to_activate": {
        Language.RU: "Нет бонусов для активации.",
        Language.KK: "Белсендіруге бонус жоқ.",
        Language.EN: "No bonus to activate.",
    },
    "already_activated": {
        Language.RU: "Бонус в этом месяце уже активирован.",
        Language.KK: "Осы айда бонус белсендірілген.",
        Language.EN: "A bonus was already activated this month.",
    },
    "try_again": {
        Language.RU: "Сервис временно недоступен, повторите позже.",
        Language.KK: "Қызмет уақытша қолжетімсіз, кейінірек қайталаңыз.",
        Language.EN: "Service temporarily unavailable, please try again shortly.",
    },
    "balance": {
        Language.RU: "Бонус: {units} ед. до {expires}.",
        Language.KK: "Бонус: {units} бірлік {expires} дейін.",
        Language.EN: "Bonus: {units} units until {expires}.",
    },
    "balance_pending": {
        Language.RU: "Бонус {units} ед. ждет активации: *555*00# до {deadline}.",
        Language.KK: "{units} бірлік бонус белсендіруді күтуде: *555*00# {deadline} дейін.",
        Language.EN: "{units} bonus units await activation: dial *555*00# by {deadline}.",
    },
    "balance_none": {
        Language.RU: "Бонусов нет.",
        Language.KK: "Бонус жоқ.",
        Language.EN: "You have no bonus units.",
    },
    "main_balance": {
        Language.RU: " Основной баланс: {amount}.",
        Language.KK: " Негізгі баланс: {amount}.",
        Language.EN: " Main balance: {amount}.",
    },
    "bonus_notice": {
        Language.RU: "Ваши {units} бонусов SMART готовы: наберите *555*00#.",
        Language.KK: "SMART {units} бонусыңыз дайын: *555*00# теріңіз.",
        Language.EN: "Your {units} SMART bonus units are ready: dial *555*00#.",
    },
}


def text(key: str, language: Language | str | None, **values: object) -> str:
    """The text ``key`` in ``language`` (Russian when unknown), placeholders filled."""
    variants = TEXTS[key]
    return variants[Language(pick_language(variants, language, Language.RU))].format(**values)
