"""``GET /api/v1/inbox``: subscribers' SMS (replies, STOP, 1204), each attributed to the
campaign that last reached the number (:mod:`dispatcher.program.inbox`).

The operator's admins get the messages newest first, with numbers and texts, keyset-paged;
partner-facing roles (viewer, marketer) get counts per campaign and kind only, small counts
hidden (R11). Filters: ``?campaign=<id>``, ``?kind=reply|stop|dnc``; paging ``?before=<id>``
and ``?limit=`` (admins).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from campaigns.disclosure import sees_exact_counts
from dispatcher.kernel.states import Role
from dispatcher.kernel.values import BIGINT_MAX
from dispatcher.program.inbox import (
    MAX_PAGE,
    PAGE_SIZE,
    CampaignInbox,
    InboxMessage,
    InboxRepository,
    MoKind,
)
from dispatcher.web.auth import requires
from dispatcher.web.errors import ApiError
from dispatcher.web.keys import CALLER, DATABASE, SETTINGS
from dispatcher.web.params import query_int

PATH = "/api/v1/inbox"


def setup_routes(app: web.Application) -> None:
    app.router.add_get(PATH, get_inbox)


def inbox_kind(request: web.Request) -> MoKind | None:
    """``?kind=`` as a kind, None when absent; 400 for anything else."""
    raw = request.query.get("kind")
    if raw is None:
        return None
    try:
        return MoKind(raw)
    except ValueError:
        kinds = ", ".join(kind.value for kind in MoKind)
        raise ApiError(
            400, "invalid_query", f"kind must be one of {kinds}", {"field": "kind"}
        ) from None


@requires(Role.VIEWER)
async def get_inbox(request: web.Request) -> web.Response:
    """The inbox: messages (admins) or counts per campaign (partner-facing roles)."""
    campaign_id = query_int(request, "campaign", 1, BIGINT_MAX)
    kind = inbox_kind(request)
    before = query_int(request, "before", 1, BIGINT_MAX)
    limit = query_int(request, "limit", 1, MAX_PAGE) or PAGE_SIZE
    repository = InboxRepository(request.app[DATABASE].pool)
    if not sees_exact_counts(request[CALLER].role):
        min_cell = int(request.app[SETTINGS].report_min_cell)
        rows = await repository.per_campaign(min_cell, campaign_id)
        return web.json_response({"campaigns": [campaign_json(row) for row in rows]})
    messages = await repository.page(before=before, campaign_id=campaign_id, kind=kind, limit=limit)
    next_before = messages[-1].id if len(messages) == limit else None
    return web.json_response(
        {"messages": [message_json(m) for m in messages], "next_before": next_before}
    )


def message_json(message: InboxMessage) -> dict[str, Any]:
    campaign = message.campaign
    return {
        "id": message.id,
        "msisdn": message.msisdn,
        "to": message.destination,
        "text": message.text,
        "kind": message.kind.value,
        "outcome": message.outcome,
        "received_at": message.received_at.isoformat(),
        "campaign": None
        if campaign is None
        else {"id": campaign.id, "name": campaign.name, "partner": campaign.partner},
    }


def campaign_json(row: CampaignInbox) -> dict[str, Any]:
    campaign = row.campaign
    return {
        "id": campaign.id,
        "name": campaign.name,
        "partner": campaign.partner,
        "counts": dict(row.counts),
    }
