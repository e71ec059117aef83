"""What the demo's marketers type: the partner campaign and the survey, in kk, ru and en."""

from __future__ import annotations

from typing import Any

NAMES = ("Айгерим", "Нурлан", "Дана", "Ерлан", "Алия", "Тимур", "Asel", "Marat", "Анна")

PARTNER: dict[str, Any] = {
    "name": "Coffee partner: 20% off",
    "partner": "Coffee Boom",
    "kind": "info",
    "scope": "smart",
    "variables": ["name"],
    "texts": {
        "ru": "{name}, скидка 20% в Coffee Boom по коду SMART до воскресенья.",
        "kk": "{name}, Coffee Boom-да SMART кодымен 20% жеңілдік жексенбіге дейін.",
        "en": "{name}, 20% off at Coffee Boom with code SMART until Sunday.",
    },
}

SURVEY: dict[str, Any] = {
    "name": "Coffee habits survey",
    "partner": "Coffee Boom",
    "kind": "survey",
    "scope": "smart",
    "priority": 1,
    "survey": {
        "questions": [
            {
                "texts": {
                    "ru": "Как часто вы пьете кофе?",
                    "kk": "Кофені қаншалықты жиі ішесіз?",
                    "en": "How often do you drink coffee?",
                },
                "options": [
                    {"ru": "Каждый день", "kk": "Күн сайын", "en": "Every day"},
                    {"ru": "Иногда", "kk": "Кейде", "en": "Sometimes"},
                    {"ru": "Никогда", "kk": "Ешқашан", "en": "Never"},
                ],
            },
            {
                "texts": {"ru": "Где обычно?", "kk": "Әдетте қайда?", "en": "Where usually?"},
                "options": [
                    {"ru": "Дома", "kk": "Үйде", "en": "At home"},
                    {"ru": "В кафе", "kk": "Кафеде", "en": "In a café"},
                ],
            },
        ],
        "thanks": {
            "ru": "Спасибо за ответы!",
            "kk": "Жауаптарыңызға рахмет!",
            "en": "Thank you for your answers!",
        },
        "timeout_hours": 24,
    },
}
