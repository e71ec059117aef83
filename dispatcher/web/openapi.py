"""``GET /api/openapi.json``: the OpenAPI 3.0 document of every route the app registered.

The operations are described in :mod:`dispatcher.web.openapi_paths`; who may call each is
read from the handler's ``@requires`` / ``@public`` declaration (one source of truth). A
registered route with no description still appears, marked ``x-undocumented`` (a test keeps
that list empty), so the document never silently omits an endpoint. The web console's HTML
pages and static files are not API and are left out.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from aiohttp import web

from dispatcher.kernel.states import Role
from dispatcher.web.auth import GRANTS, PUBLIC, access_of, public
from dispatcher.web.openapi_paths import OPERATIONS, SCHEMAS, ref

#: Path prefixes of HTML pages (the web console) and static files: not part of the API.
NOT_API_PREFIXES = ("/console", "/static")
OPENAPI_KEY = web.AppKey("openapi", dict[str, Any])
_ERROR = {"application/json": {"schema": ref("Error")}}


def api_routes(app: web.Application) -> list[tuple[str, str, object]]:
    """``(METHOD, path template, handler)`` of every API route (HEAD twins of GET left out)."""
    routes: list[tuple[str, str, object]] = []
    for route in app.router.routes():
        info = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or _not_api(info):
            continue
        routes.append((route.method, info, route.handler))
    return routes


def _not_api(path: str) -> bool:
    return path == "/" or any(path == p or path.startswith(p + "/") for p in NOT_API_PREFIXES)


def build_document(app: web.Application) -> dict[str, Any]:
    """The document for ``app``'s routes."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, handler in api_routes(app):
        operation = dict(OPERATIONS.get((method, path)) or _undocumented(handler))
        operation["responses"] = {**operation["responses"], **_error_responses(handler)}
        operation.update(_security(handler))
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "smart-dispatcher",
            "version": _version(),
            "description": "Engine of the SMART loyalty program. Errors are "
            '`{"error": {"code", "message", "details"}}` with a 4xx status.',
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _version() -> str:
    try:
        return metadata.version("smart-dispatcher")
    except metadata.PackageNotFoundError:
        return "0"


def _undocumented(handler: object) -> dict[str, Any]:
    doc = (getattr(handler, "__doc__", None) or "").strip().splitlines()
    return {
        "summary": doc[0] if doc else "",
        "x-undocumented": True,
        "responses": {"200": {"description": "OK"}},
    }


def _error_responses(handler: object) -> dict[str, Any]:
    errors = {"4XX": {"description": "error (the error shape)", "content": _ERROR}}
    if access_of(handler) != PUBLIC:
        errors["401"] = {
            "description": "missing, invalid, expired or revoked token",
            "content": _ERROR,
        }
        errors["403"] = {"description": "the token's role may not call this", "content": _ERROR}
    return errors


def _security(handler: object) -> dict[str, Any]:
    """``security`` and ``x-roles`` (the token roles that may call) from the declaration."""
    needed = access_of(handler)
    if not isinstance(needed, Role):
        return {"security": [], "description": "No token needed.", "x-roles": []}
    roles = sorted(role.value for role, grants in GRANTS.items() if needed in grants)
    return {
        "security": [{"bearer": []}],
        "description": f"Bearer token of role {' or '.join(roles)}.",
        "x-roles": roles,
        "x-required-role": needed.value,
    }


@public
async def openapi_json(request: web.Request) -> web.Response:
    """This service's OpenAPI document."""
    cache = request.app[OPENAPI_KEY]
    if not cache:  # routes are frozen once the app serves: build once, keep
        cache.update(build_document(request.app))
    return web.json_response(cache)


def setup_routes(app: web.Application) -> None:
    app[OPENAPI_KEY] = {}
    app.router.add_get("/api/openapi.json", openapi_json)
