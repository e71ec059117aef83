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
    """Ready to serve HTTP — the USSD gateway, operator events, the API and the console —
    when the database answers. The SMPP bind is not part of it: with the SMSC down on every
    replica, subscribers' USSD must still be answered (``/readyz/engine`` reports the bind)."""
    return _readiness({"database": await request.app[DATABASE].ping()})


@public
async def engine_readyz(request: web.Request) -> web.Response:
    """Ready to send: the database answers and every engine component (the SMPP bind) is
    ready; a process that runs no engine is not."""
    checks = {"database": await request.app[DATABASE].ping()}
    components = request.app[READINESS]
    for name, check in components.items():
        checks[name] = bool(check())
    if not components:
        checks["engine"] = False
    return _readiness(checks)


def _readiness(checks: dict[str, bool]) -> web.Response:
    """200 with the checks when all pass; else 503 with them and the error shape every
    other refusal has, naming what failed."""
    if all(checks.values()):
        return web.json_response({"status": "ready", "checks": checks})
    failing = sorted(name for name, ok in checks.items() if not ok)
    error = {
        "code": "not_ready",
        "message": f"not ready: {', '.join(failing)}",
        "details": {"failing": failing},
    }
    return web.json_response({"status": "not_ready", "checks": checks, "error": error}, status=503)


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
