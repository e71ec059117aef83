"""Every API endpoint × every role and no token: 401 without a token, 403 for a role that
may not call it, and never 401/403 (2xx, or 4xx for a bad body) for one that may."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from dispatcher.tokens import TokenRepository
from dispatcher.web.openapi import api_routes
from tests.web_helpers import Api, running_api

A, M, V, G = Role.ADMIN, Role.MARKETER, Role.VIEWER, Role.GATEWAY
PUBLIC = frozenset(Role)
CAMPAIGN = {"name": "matrix", "kind": "info", "texts": {"kk": "Сәлем", "ru": "Привет"}}
MSISDN = "77011234567"

#: The access table of DESIGN.md (who may call what), written out independently of the
#: handlers' declarations so a wrong ``@requires`` fails here. ``None``: public.
ACCESS: dict[tuple[str, str], frozenset[Role] | None] = {
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/readyz/engine"): None,
    ("GET", "/metrics"): None,
    ("GET", "/api/openapi.json"): None,
    ("GET", "/api/v1/whoami"): frozenset({A, M, V}),
    ("GET", "/api/v1/tokens"): frozenset({A}),
    ("POST", "/gateway/ussd"): frozenset({A, G}),
    ("POST", "/gateway/events"): frozenset({A, G}),
    ("POST", "/api/v1/contacts/reserve"): frozenset({A, G}),
    ("GET", "/api/v1/subscribers/{msisdn}"): frozenset({A, M, V}),
    ("GET", "/api/v1/subscribers/{msisdn}/messages"): frozenset({A, M, V}),
    ("GET", "/api/v1/subscribers/{msisdn}/campaigns/{id}"): frozenset({A, M, V}),
    ("POST", "/api/v1/subscribers/import"): frozenset({A}),
    ("POST", "/api/v1/campaigns"): frozenset({A, M}),
    ("GET", "/api/v1/campaigns"): frozenset({A, M, V}),
    ("POST", "/api/v1/campaigns/preview"): frozenset({A, M}),
    ("GET", "/api/v1/campaigns/{id}"): frozenset({A, M, V}),
    ("GET", "/api/v1/campaigns/{id}/results.csv"): frozenset({A, M, V}),
    ("GET", "/api/v1/campaigns/{id}/forecast"): frozenset({A, M, V}),
    ("GET", "/api/v1/campaigns/{id}/variants"): frozenset({A, M, V}),
    ("POST", "/api/v1/campaigns/{id}/audience"): frozenset({A, M}),
    ("GET", "/api/v1/campaigns/{id}/audience/rejected.csv"): frozenset({A, M}),
    ("POST", "/api/v1/campaigns/{id}/start"): frozenset({A, M}),
    ("POST", "/api/v1/campaigns/{id}/pause"): frozenset({A, M}),
    ("POST", "/api/v1/campaigns/{id}/resume"): frozenset({A, M}),
    ("POST", "/api/v1/campaigns/{id}/cancel"): frozenset({A, M}),
    ("PATCH", "/api/v1/campaigns/{id}"): frozenset({A, M}),
    ("POST", "/api/v1/campaigns/{id}/duplicate"): frozenset({A, M}),
    ("GET", "/api/v1/inbox"): frozenset({A, M, V}),
    ("GET", "/api/v1/calendar"): frozenset({A, M, V}),
    ("GET", "/api/v1/partners"): frozenset({A, M, V}),
    ("POST", "/api/v1/campaigns/{id}/approve"): frozenset({A, M}),
    ("GET", "/api/v1/audit"): frozenset({A, M}),
}

#: A plausible request for each endpoint (keyword arguments of the client call).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/gateway/ussd"): {"json": {"msisdn": MSISDN, "session_id": "s1", "input": "*111*3#"}},
    ("POST", "/gateway/events"): {
        "json": {"type": "tariff_change", "msisdn": MSISDN, "tariff": "Smart 2"}
    },
    ("POST", "/api/v1/contacts/reserve"): {"json": {"msisdn": MSISDN, "kind": "info"}},
    ("POST", "/api/v1/subscribers/import"): {
        "data": f"msisdn,status,language\n{MSISDN},active,kk\n",
        "headers": {"Content-Type": "text/csv"},
    },
    ("POST", "/api/v1/campaigns"): {"json": CAMPAIGN},
    ("POST", "/api/v1/campaigns/preview"): {"json": {"texts": {"ru": "Привет"}}},
    ("POST", "/api/v1/campaigns/{id}/audience"): {
        "data": f"msisdn\n{MSISDN}\n",
        "headers": {"Content-Type": "text/csv"},
    },
    ("PATCH", "/api/v1/campaigns/{id}"): {"json": {"priority": 1}},
    ("GET", "/api/v1/audit"): {"params": {"campaign_id": "1"}},  # a marketer: one campaign's
}


def test_the_access_table_covers_every_route(settings: Settings) -> None:
    """The matrix below walks every API route the app registers, and only those."""
    from dispatcher.web.app import create_app

    app = create_app(settings, database=None, scheduler=False, engine=False)
    assert {(m, p) for m, p, _ in api_routes(app)} == set(ACCESS)


async def _call(api: Api, method: str, path: str, campaign: int, token: str | None) -> int:
    url = path.replace("{id}", str(campaign)).replace("{msisdn}", MSISDN)
    kwargs = dict(BODIES.get((method, path), {}))
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with api.client.request(method, url, headers=headers, **kwargs) as response:
        if response.status >= 400:
            body = await response.json()
            assert set(body["error"]) == {"code", "message", "details"}
        return response.status


async def test_every_endpoint_for_every_role_and_no_token(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """401 without a token, 403 for a forbidden role, neither for an allowed one."""
    async with running_api(settings, clock, database) as api:
        created = await api.client.post("/api/v1/campaigns", json=CAMPAIGN, headers=api.auth(M))
        campaign = (await created.json())["id"]
        for (method, path), allowed in ACCESS.items():
            anonymous = await _call(api, method, path, campaign, None)
            if allowed is None:
                assert anonymous < 400 or path.startswith("/readyz"), (method, path, anonymous)
                continue
            assert anonymous == 401, (method, path)
            for role in Role:
                status = await _call(api, method, path, campaign, api.tokens[role])
                if role in allowed:
                    assert status not in (401, 403) and status < 500, (method, path, role, status)
                else:
                    assert status == 403, (method, path, role, status)


@pytest.mark.parametrize("how", ["expired", "revoked", "garbage", "not bearer"])
async def test_dead_or_malformed_tokens_are_401(
    settings: Settings, clock: ManualClock, database: Database, how: str
) -> None:
    """Expired, revoked, unknown and non-bearer credentials all get 401."""
    tokens = TokenRepository(database.pool)
    async with running_api(settings, clock, database) as api:
        token, info = await tokens.create(f"dead-{how}", A, clock.now() + timedelta(hours=1))
        header = f"Bearer {token}"
        if how == "expired":
            clock.advance(timedelta(hours=2))
        elif how == "revoked":
            assert await tokens.revoke(info.id, clock.now())
        elif how == "garbage":
            header = "Bearer smartd_not-a-token"
        else:
            header = f"Basic {token}"
        response = await api.client.get("/api/v1/whoami", headers={"Authorization": header})
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"


async def test_token_use_is_stamped_and_listed(
    settings: Settings, clock: ManualClock, database: Database
) -> None:
    """A call stamps the token's last use; the admin token list shows it and the expiry."""
    async with running_api(settings, clock, database) as api:
        assert (await api.client.get("/api/v1/whoami", headers=api.auth(V))).status == 200
        listed = await api.client.get("/api/v1/tokens", headers=api.auth(A))
        rows = {t["name"]: t for t in (await listed.json())["tokens"]}
    assert rows["test-viewer"]["last_used_at"] == clock.now().isoformat()
    assert rows["test-viewer"]["expires_at"] is None
