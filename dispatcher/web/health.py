"""Liveness, readiness, and who-am-I."""

from __future__ import annotations

from aiohttp import web

from dispatcher.kernel.states import Role
from dispatcher.web.auth import public, requires
from dispatcher.web.keys import CALLER, DATABASE, READINESS, TOKENS


@public
async def healthz(request: web.Request) -> web.Response:
    """The process is alive and serving HTTP."""
    return web.json_response({"status": "ok"})


@public
async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers and every registered component is ready."""
    checks = {"database": await request.app[DATABASE].ping()}
    for name, check in request.app[READINESS].items():
        checks[name] = bool(check())
    ready = all(checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status=200 if ready else 503,
    )


@requires(Role.VIEWER)
async def whoami(request: web.Request) -> web.Response:
    caller = request[CALLER]
    return web.json_response({"name": caller.name, "role": caller.role.value})


@requires(Role.ADMIN)
async def list_tokens(request: web.Request) -> web.Response:
    tokens = await request.app[TOKENS].list()
    return web.json_response(
        {
            "tokens": [
                {
                    "id": t.id,
                    "name": t.name,
                    "role": t.role.value,
                    "created_at": _iso(t.created_at),
                    "expires_at": _iso(t.expires_at),
                    "last_used_at": _iso(t.last_used_at),
                    "revoked_at": _iso(t.revoked_at),
                }
                for t in tokens
            ]
        }
    )


def _iso(value: object) -> str | None:
    return None if value is None else value.isoformat()  # type: ignore[attr-defined]
