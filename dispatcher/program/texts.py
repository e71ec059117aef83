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
    "joined_no_present": {
        Language.RU: "Вы подключены к SMART. Бонус месяца уже получен; "
        "следующие {units} ед. {next}.",
        Language.KK: "SMART-қа қосылдыңыз. Осы айдың бонусы алынған; келесі {units} бірлік {next}.",
        Language.EN: "You joined SMART. This month's bonus was already received; "
        "the next {units} units come on {next}.",
    },
    "joined_see_balance": {
        Language.RU: "Вы подключены к SMART. Ваш бонус: *111*3#.",
        Language.KK: "Сіз SMART-қа қосылдыңыз. Бонусыңыз: *111*3#.",
        Language.EN: "You joined SMART. Your bonus: dial *111*3#.",
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
    "dnc_left": {
        Language.RU: "Реклама и опросы на ваш номер отключены (1204). Вы вышли из SMART; "
        "неиспользованных бонусов не было.",
        Language.KK: "Нөміріңізге жарнама мен сауалнамалар өшірілді (1204). Сіз SMART-тан "
        "шықтыңыз; пайдаланылмаған бонус болмады.",
        Language.EN: "Marketing messages and surveys to your number are switched off (1204). "
        "You left SMART; you had no unused bonus units.",
    },
    "dnc_left_lost": {
        Language.RU: "Реклама и опросы на ваш номер отключены (1204). Вы вышли из SMART; "
        "неиспользованные {units} бонусных ед. аннулированы.",
        Language.KK: "Нөміріңізге жарнама мен сауалнамалар өшірілді (1204). Сіз SMART-тан "
        "шықтыңыз; пайдаланылмаған {units} бонус бірлігі жойылды.",
        Language.EN: "Marketing messages and surveys to your number are switched off (1204). "
        "You left SMART and lost your {units} unused bonus units.",
    },
    "dnc_left_unused": {
        Language.RU: "Реклама и опросы на ваш номер отключены (1204). Вы вышли из SMART; "
        "неиспользованные бонусы аннулированы.",
        Language.KK: "Нөміріңізге жарнама мен сауалнамалар өшірілді (1204). Сіз SMART-тан "
        "шықтыңыз; пайдаланылмаған бонустар жойылды.",
        Language.EN: "Marketing messages and surveys to your number are switched off (1204). "
        "You left SMART and lost your unused bonus units.",
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
    "nothing_to_activate_next": {
        Language.RU: "Нет бонусов для активации. Следующие {units} ед. придут {next}.",
        Language.KK: "Белсендіруге бонус жоқ. Келесі {units} бірлік {next} келеді.",
        Language.EN: "No bonus to activate. The next {units} units come on {next}.",
    },
    "activation_not_active": {
        Language.RU: "Бонус не активирован: номер не активен. Пополните баланс.",
        Language.KK: "Бонус белсендірілмеді: нөмір белсенді емес. Балансты толтырыңыз.",
        Language.EN: "Bonus not activated: your number is not active. Top up first.",
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
    "balance_none_next": {
        Language.RU: "Бонусов нет: бонус месяца уже получен. Следующие {units} ед. {next}.",
        Language.KK: "Бонус жоқ: осы айдың бонусы алынған. Келесі {units} бірлік {next}.",
        Language.EN: "No bonus units: this month's bonus was already received. "
        "The next {units} units come on {next}.",
    },
    "pending_next_month": {
        Language.RU: "Активация месяца уже была: {units} ед. с {start} до {deadline}.",
        Language.KK: "Осы айда белсендіру болды: {units} бірлік {start} - {deadline}.",
        Language.EN: "This month's activation is used: {units} bonus units can be activated "
        "from {start} until {deadline}.",
    },
    "pending_lapses": {
        Language.RU: "Активация месяца уже была: {units} ед. сгорят {deadline}.",
        Language.KK: "Осы айда белсендіру болды: {units} бірлік {deadline} жойылады.",
        Language.EN: "This month's activation is used: your {units} bonus units lapse on "
        "{deadline}.",
    },
    "pending_inactive": {
        Language.RU: "{units} ед. ждут активации до {deadline}. Номер не активен: пополните.",
        Language.KK: "{units} бірлік {deadline} дейін. Нөмір белсенді емес: толтырыңыз.",
        Language.EN: "{units} bonus units await activation by {deadline}; your number is not "
        "active: top up first.",
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
    "bonus_notice_next_month": {
        Language.RU: "Ваши {units} бонусов SMART начислены. Активация этого месяца "
        "использована: *555*00# с {start} до {deadline}.",
        Language.KK: "SMART {units} бонусыңыз есептелді. Осы айдың белсендіруі қолданылды: "
        "*555*00# {start} - {deadline}.",
        Language.EN: "Your {units} SMART bonus units are granted. This month's activation is "
        "used: dial *555*00# from {start} until {deadline}.",
    },
    "bonus_notice_inactive": {
        Language.RU: "Ваши {units} бонусов SMART начислены. Номер не активен: пополните баланс "
        "и наберите *555*00# до {deadline}.",
        Language.KK: "SMART {units} бонусыңыз есептелді. Нөмір белсенді емес: балансты толтырып, "
        "*555*00# {deadline} дейін теріңіз.",
        Language.EN: "Your {units} SMART bonus units are granted. Your number is not active: top "
        "up, then dial *555*00# by {deadline}.",
    },
    "bonus_notice_lapses": {
        Language.RU: "Ваши {units} бонусов SMART начислены, но активация этого месяца "
        "использована: бонусы сгорят {deadline}.",
        Language.KK: "SMART {units} бонусыңыз есептелді, бірақ осы айдың белсендіруі "
        "қолданылды: бонус {deadline} жойылады.",
        Language.EN: "Your {units} SMART bonus units are granted, but this month's activation "
        "is used: they lapse on {deadline}.",
    },
}


def text(key: str, language: Language | str | None, **values: object) -> str:
    """The text ``key`` in ``language`` (Russian when unknown), placeholders filled."""
    variants = TEXTS[key]
    return variants[Language(pick_language(variants, language, Language.RU))].format(**values)
