"""The inbox page: subscribers' SMS (replies, STOP, 1204) as they arrive, each with the
campaign that last reached the number (:mod:`dispatcher.program.inbox`).

The operator's admins see the messages newest first with their numbers (linked to the
subscriber lookup) and texts, filtered by campaign and kind, keyset-paged; the newest page
refreshes itself (static/inbox.js: new messages are put on top and older pages load as the
list is scrolled; without it, a link pages and the page reloads). Partner-facing roles see
counts per campaign and kind only (R11).
"""

from __future__ import annotations

from aiohttp import web

from campaigns.disclosure import sees_exact_counts
from dispatcher.console.guard import USER, render, view
from dispatcher.kernel.states import Role
from dispatcher.kernel.values import BIGINT_MAX, parse_int
from dispatcher.program.inbox import PAGE_SIZE, InboxRepository, MoKind
from dispatcher.web.keys import DATABASE, SETTINGS

#: Seconds between refreshes of the newest page (new messages appear without a click).
REFRESH_SECONDS = 20


@view(Role.VIEWER)
async def inbox_page(request: web.Request) -> web.StreamResponse:
    """``?campaign=<id>&kind=reply|stop|dnc&before=<id>``; a value that is none of these is
    ignored, as an absent one is."""
    query = request.query
    campaign_id = parse_int(query.get("campaign"), 1, BIGINT_MAX)
    kind = MoKind(query["kind"]) if query.get("kind") in set(MoKind) else None
    before = parse_int(query.get("before"), 1, BIGINT_MAX)
    repository = InboxRepository(request.app[DATABASE].pool)
    user = request[USER]
    context: dict[str, object] = {
        "campaign_id": campaign_id,
        "kind": kind.value if kind else "",
        "kinds": [k.value for k in MoKind],
        "detail": sees_exact_counts(user.role),
        "messages": [],
        "campaigns": [],
        "next_before": None,
        "refresh": REFRESH_SECONDS if before is None else None,  # the plain page's
        "refresh_every": REFRESH_SECONDS,  # the script's: it pages on and polls the newest
        "settings_days": request.app[SETTINGS].inbox_attribution_days,
    }
    if context["detail"]:
        messages = await repository.page(
            before=before, campaign_id=campaign_id, kind=kind, limit=PAGE_SIZE
        )
        context["messages"] = messages
        context["next_before"] = messages[-1].id if len(messages) == PAGE_SIZE else None
    else:
        min_cell = int(request.app[SETTINGS].report_min_cell)
        context["campaigns"] = await repository.per_campaign(min_cell, campaign_id)
    return render(request, "inbox.html", context)
