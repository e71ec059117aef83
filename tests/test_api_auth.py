"""One token mechanism guards every route; errors have the JSON shape of DESIGN.md."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiohttp import web

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from dispatcher.tokens import AUTH_CACHE_SECONDS, TokenRepository, hash_token
from dispatcher.web.app import create_app
from dispatcher.web.auth import check_routes, requires
from tests.web_helpers import Api


def assert_error_shape(body: dict[str, object], code: str) -> None:
    error = body["error"]
    assert isinstance(error, dict)
    assert error["code"] == code and isinstance(error["message"], str) and "details" in error


async def test_health_is_public(api: Api) -> None:
    """/healthz and /readyz need no token; readyz reports the database."""
    assert (await api.client.get("/healthz")).status == 200
    resp = await api.client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["checks"] == {"database": True}


async def test_engine_readiness_is_separate_from_http_readiness(api: Api) -> None:
    """/readyz/engine reports the engine apart from /readyz: a process that runs no engine
    (here, the app alone) is ready for HTTP and not ready to send."""
    assert (await api.client.get("/readyz")).status == 200
    resp = await api.client.get("/readyz/engine")
    assert resp.status == 503
    body = await resp.json()
    assert (body["status"], body["checks"]) == ("not_ready", {"database": True, "engine": False})
    assert body["error"]["code"] == "not_ready" and body["error"]["details"] == {
        "failing": ["engine"]
    }


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "Basic abc", "bearer  "])
async def test_missing_or_bad_token_is_401(api: Api, header: str | None) -> None:
    """No token or a wrong one gets 401 with the error shape."""
    headers = {} if header is None else {"Authorization": header}
    resp = await api.client.get("/api/v1/whoami", headers=headers)
    assert resp.status == 401
    assert_error_shape(await resp.json(), "unauthorized")


@pytest.mark.parametrize(
    ("role", "whoami", "tokens"),
    [
        (Role.ADMIN, 200, 200),
        (Role.MARKETER, 200, 403),
        (Role.VIEWER, 200, 403),
        (Role.GATEWAY, 403, 403),
    ],
)
async def test_role_matrix(api: Api, role: Role, whoami: int, tokens: int) -> None:
    """Each role reaches exactly the endpoints its grants allow."""
    resp = await api.client.get("/api/v1/whoami", headers=api.auth(role))
    assert resp.status == whoami
    if whoami == 200:
        assert await resp.json() == {"name": f"test-{role}", "role": role.value}
    else:
        assert_error_shape(await resp.json(), "forbidden")
    assert (await api.client.get("/api/v1/tokens", headers=api.auth(role))).status == tokens


async def test_tokens_listing_never_shows_secrets(api: Api) -> None:
    """The admin listing has names and roles, never a token or its hash."""
    resp = await api.client.get("/api/v1/tokens", headers=api.auth(Role.ADMIN))
    text = await resp.text()
    assert all(token not in text for token in api.tokens.values())
    assert hash_token(api.tokens[Role.ADMIN]).hex() not in text


async def test_revoked_and_expired_tokens_are_401(
    api: Api, database: Database, clock: ManualClock
) -> None:
    """A revoked token and a token past its expiry no longer authenticate."""
    repo = TokenRepository(database.pool)
    token, info = await repo.create("short", Role.VIEWER, clock.now() + timedelta(hours=1))
    headers = {"Authorization": f"Bearer {token}"}
    assert (await api.client.get("/api/v1/whoami", headers=headers)).status == 200
    clock.advance(timedelta(hours=1))
    assert (await api.client.get("/api/v1/whoami", headers=headers)).status == 401
    assert await repo.revoke(info.id, clock.now())
    assert not await repo.revoke(info.id, clock.now())


async def _who(repo: TokenRepository, token: str, clock: ManualClock) -> int | None:
    """The id of the token's holder now, or None."""
    info = await repo.authenticate(token, clock.now())
    return None if info is None else info.id


class _CountingPool:
    """A pool that counts the token lookups it is asked for."""

    def __init__(self, pool: object) -> None:
        self._pool = pool
        self.lookups = 0

    async def fetchrow(self, *args: object) -> object:
        self.lookups += 1
        return await self._pool.fetchrow(*args)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._pool, name)


async def test_a_busy_token_is_looked_up_once_per_cache_period(
    database: Database, clock: ManualClock
) -> None:
    """Issue 16: a gateway calling 1,000 times a second does not cost a token query per
    request; the database is asked again once the cache period has passed."""
    pool = _CountingPool(database.pool)
    repo = TokenRepository(pool)  # type: ignore[arg-type]
    token, info = await repo.create("busy", Role.GATEWAY)
    pool.lookups = 0
    for _ in range(50):
        assert await _who(repo, token, clock) == info.id
        clock.advance(timedelta(milliseconds=10))
    assert pool.lookups == 1
    clock.advance(timedelta(seconds=AUTH_CACHE_SECONDS))
    assert await _who(repo, token, clock) == info.id
    assert pool.lookups == 2


async def test_a_token_revoked_elsewhere_stops_within_the_bound(
    database: Database, clock: ManualClock
) -> None:
    """A token revoked by another process (``smartd token revoke``, another replica) stops
    working here within AUTH_CACHE_SECONDS; revoked through this repository, at once; an
    expiry is never overstayed."""
    serving, elsewhere = TokenRepository(database.pool), TokenRepository(database.pool)
    token, info = await serving.create("gw", Role.GATEWAY)
    assert await _who(serving, token, clock) == info.id
    assert await elsewhere.revoke(info.id, clock.now())
    clock.advance(timedelta(seconds=AUTH_CACHE_SECONDS))
    assert await _who(serving, token, clock) is None
    token2, info2 = await serving.create("gw2", Role.GATEWAY)
    assert await _who(serving, token2, clock) == info2.id
    assert await serving.revoke(info2.id, clock.now())
    assert await _who(serving, token2, clock) is None
    token3, info3 = await serving.create("gw3", Role.GATEWAY, clock.now() + timedelta(seconds=1))
    assert await _who(serving, token3, clock) == info3.id
    clock.advance(timedelta(seconds=1))
    assert await _who(serving, token3, clock) is None


async def test_use_stamps_last_used(api: Api, database: Database, clock: ManualClock) -> None:
    """An authenticated call records when the token was last used."""
    await api.client.get("/api/v1/whoami", headers=api.auth(Role.VIEWER))
    used = await database.pool.fetchval(
        "SELECT last_used_at FROM api_tokens WHERE name = 'test-viewer'"
    )
    assert used == clock.now()


async def test_token_is_stored_hashed(api: Api, database: Database) -> None:
    """Only the SHA-256 of a token is stored."""
    stored = await database.pool.fetch("SELECT token_hash FROM api_tokens")
    hashes = {bytes(r["token_hash"]) for r in stored}
    assert {hash_token(t) for t in api.tokens.values()} == hashes


async def test_404_and_405_have_error_shape(api: Api) -> None:
    """Unknown paths and wrong methods answer in the same JSON error shape."""
    resp = await api.client.get("/nope")
    assert resp.status == 404
    assert_error_shape(await resp.json(), "not_found")
    resp = await api.client.post("/healthz")
    assert resp.status == 405
    assert_error_shape(await resp.json(), "method_not_allowed")
    assert "GET" in resp.headers["Allow"]


def test_undeclared_route_refused_at_startup(settings: Settings) -> None:
    """An app with a route that declares no role does not start."""
    app = create_app(settings)

    async def open_door(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/open", open_door)
    with pytest.raises(RuntimeError, match="declares no access"):
        check_routes(app)
    requires(Role.VIEWER)(open_door)
    check_routes(app)
