"""The error shape of DESIGN.md, everywhere: ``{"error": {"code", "message", "details"}}``.

Handlers raise :class:`ApiError`; the middleware turns it, refused input (an upload the
domain refuses as a whole: :class:`~campaigns.csvstream.InputRefused`), aiohttp's own HTTP
errors (404, 405, 413, ...) and anything unexpected (500, logged, no internals leaked) into
that shape. Under ``/console`` the same errors are HTML pages: the console registers its
renderer under :data:`HTML_ERRORS` (a browser is never shown the API's JSON). So are they on
any other path outside :data:`MACHINE_PREFIXES` for a client that asks for HTML (a browser
at a mistyped address); the API, the gateway, health and metrics always answer JSON.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import asyncpg
import structlog
from aiohttp import http_exceptions, web

from campaigns.csvstream import InputRefused, TooLarge
from dispatcher.web.keys import Handler

log = structlog.get_logger(__name__)

#: ``(request, status, code, message) -> response``, or None where JSON is the answer (the
#: console's JSON actions). Registered by the console for its paths.
ErrorRenderer = Callable[[web.Request, int, str, str], web.Response | None]
HTML_ERRORS: web.AppKey[ErrorRenderer] = web.AppKey("html_errors")
#: Paths whose clients are programs: their errors are JSON, whatever the client accepts.
MACHINE_PREFIXES = ("/api", "/gateway", "/healthz", "/readyz", "/metrics")


class ApiError(Exception):
    """A client-visible error with a stable machine-readable ``code``."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def error_response(status: int, code: str, message: str, details: Any = None) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details}}
    return web.json_response(body, status=status)


def refused_status(exc: InputRefused) -> int:
    """The HTTP status of refused input: 413 for too many bytes, else 400."""
    return 413 if isinstance(exc, TooLarge) else 400


def _code_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(request, exc.status, exc.code, exc.message, exc.details)
    except InputRefused as exc:
        return _error(request, refused_status(exc), exc.code, exc.explained, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _error(request, exc.status, _code_for(exc.status), exc.reason)
        response.headers.update({k: v for k, v in exc.headers.items() if k.lower() == "allow"})
        return response
    except http_exceptions.BadHttpMessage as exc:  # e.g. a malformed multipart part header
        return _error(request, 400, "bad_request", f"malformed request: {exc.message}"[:200])
    except (
        asyncpg.CharacterNotInRepertoireError,
        asyncpg.UntranslatableCharacterError,
    ):  # a NUL (or unstorable character) in client text; the transaction rolled back
        message = "the request holds a character that cannot be stored (NUL)"
        return _error(request, 400, "invalid_text", message)
    except Exception:
        log.exception("unhandled error", path=request.path, method=request.method)
        return _error(request, 500, "internal_error", "internal server error")


def _error(
    request: web.Request, status: int, code: str, message: str, details: Any = None
) -> web.Response:
    """The error shape, or the console's HTML page for a console path."""
    renderer = request.app.get(HTML_ERRORS)
    if renderer is not None and _html_wanted(request):
        page = renderer(request, status, code, message)
        if page is not None:
            return page
    return error_response(status, code, message, details)


def _html_wanted(request: web.Request) -> bool:
    """A console path, or a browser (it accepts text/html) on a path no program uses."""
    path = request.path
    if path == "/console" or path.startswith("/console/"):
        return True
    if any(path == p or path.startswith(p + "/") for p in MACHINE_PREFIXES):
        return False
    return "text/html" in request.headers.get("Accept", "")
