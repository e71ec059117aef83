"""Shared helpers for the campaign tests (no tests here): payloads and API calls."""

from __future__ import annotations

from typing import Any

from dispatcher.kernel.states import Role
from tests.web_helpers import Api

BASE = "/api/v1/campaigns"


def info_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": "Coffee week",
        "partner": "Coffee Boom",
        "kind": "info",
        "scope": "smart",
        "variables": ["name"],
        "texts": {
            "kk": "{name}, Coffee Boom-да 20% жеңілдік",
            "ru": "{name}, скидка 20% в Coffee Boom",
            "en": "{name}, 20% off at Coffee Boom",
        },
    }
    payload.update(overrides)
    return payload


def survey_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": "Satisfaction",
        "kind": "survey",
        "scope": "smart",
        "survey": {
            "questions": [
                {
                    "texts": {
                        "kk": "Байланыс сізге ұнай ма?",
                        "ru": "Довольны связью?",
                        "en": "Happy with the network?",
                    },
                    "options": [
                        {"kk": "Иә", "ru": "Да", "en": "Yes"},
                        {"kk": "Жоқ", "ru": "Нет", "en": "No"},
                    ],
                },
                {
                    "texts": {
                        "kk": "Бізді ұсынасыз ба?",
                        "ru": "Порекомендуете нас?",
                        "en": "Would you recommend us?",
                    },
                    "options": [
                        {"kk": "Иә", "ru": "Да", "en": "Yes"},
                        {"kk": "Мүмкін", "ru": "Может быть", "en": "Maybe"},
                        {"kk": "Жоқ", "ru": "Нет", "en": "No"},
                    ],
                },
            ],
            "thanks": {"kk": "Рақмет!", "ru": "Спасибо!", "en": "Thank you!"},
        },
    }
    payload.update(overrides)
    return payload


async def create(api: Api, payload: dict[str, Any], role: Role = Role.MARKETER) -> dict[str, Any]:
    response = await api.client.post(BASE, json=payload, headers=api.auth(role))
    body: dict[str, Any] = await response.json()
    assert response.status == 201, body
    return body


async def upload(
    api: Api, campaign_id: int, data: bytes, content_type: str = "text/csv"
) -> tuple[int, dict[str, Any]]:
    headers = {**api.auth(Role.MARKETER), "Content-Type": content_type}
    response = await api.client.post(f"{BASE}/{campaign_id}/audience", data=data, headers=headers)
    return response.status, await response.json()


async def action(api: Api, campaign_id: int, name: str) -> tuple[int, dict[str, Any]]:
    response = await api.client.post(
        f"{BASE}/{campaign_id}/{name}", headers=api.auth(Role.MARKETER)
    )
    return response.status, await response.json()


async def report(api: Api, campaign_id: int, role: Role = Role.ADMIN) -> dict[str, Any]:
    """The report as ``role`` reads it: the admin's exact counts by default (partner-facing
    roles see small counts as "< 5", R11: tests/test_privacy_reports.py)."""
    response = await api.client.get(f"{BASE}/{campaign_id}", headers=api.auth(role))
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body
