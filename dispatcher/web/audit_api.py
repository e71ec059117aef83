"""``GET /api/v1/audit``: the audit trail of operator actions, newest first (issue 15).

Admins read all of it (token events too); a marketer reads one campaign's history
(``?campaign_id=`` required), as the console's campaign page shows it. Filters:
``campaign_id``, ``actor`` (exact), ``action``, ``since`` and ``until`` (ISO 8601 instants
with an offset: at or after, before); keyset paging ``?before=<id>&limit=``.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from dispatcher.kernel.audit import MAX_PAGE, PAGE_SIZE, AuditAction, AuditFilter, AuditLog
from dispatcher.kernel.states import Role
from dispatcher.kernel.values import BIGINT_MAX, parse_instant
from dispatcher.web.auth import requires
from dispatcher.web.errors import ApiError
from dispatcher.web.keys import CALLER, DATABASE
from dispatcher.web.params import query_int

PATH = "/api/v1/audit"
MAX_ACTOR = 200


def setup_routes(app: web.Application) -> None:
    app.router.add_get(PATH, get_audit)


@requires(Role.MARKETER)
async def get_audit(request: web.Request) -> web.Response:
    """A page of the trail, newest first, and ``next_before`` for the next page."""
    found = audit_filter(request)
    if request[CALLER].role is not Role.ADMIN and found.campaign_id is None:
        raise ApiError(
            403,
            "campaign_required",
            "only an admin reads the whole trail; give campaign_id for a campaign's history",
            {"field": "campaign_id"},
        )
    before = query_int(request, "before", 1, BIGINT_MAX)
    limit = query_int(request, "limit", 1, MAX_PAGE) or PAGE_SIZE
    events = await AuditLog(request.app[DATABASE].pool).page(found, before=before, limit=limit)
    next_before = events[-1].id if len(events) == limit else None
    return web.json_response(
        {"events": [event.as_json() for event in events], "next_before": next_before}
    )


def audit_filter(request: web.Request) -> AuditFilter:
    """The query's filters, each checked (400 ``invalid_query`` naming the field)."""
    actor = request.query.get("actor")
    if actor is not None and not (0 < len(actor) <= MAX_ACTOR and "\x00" not in actor):
        raise _invalid("actor", f"actor must be 1-{MAX_ACTOR} characters, without NUL")
    raw_action = request.query.get("action")
    try:
        action = None if raw_action is None else AuditAction(raw_action)
    except ValueError:
        names = ", ".join(a.value for a in AuditAction)
        raise _invalid("action", f"action must be one of {names}") from None
    return AuditFilter(
        campaign_id=query_int(request, "campaign_id", 1, BIGINT_MAX),
        actor=actor,
        action=action,
        since=_instant(request, "since"),
        until=_instant(request, "until"),
    )


def _instant(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    value = parse_instant(raw)
    if value is None:
        raise _invalid(name, f"{name} must be an ISO 8601 instant with an offset")
    return value


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid_query", message, {"field": field})
