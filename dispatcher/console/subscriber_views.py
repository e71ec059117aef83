"""Subscriber lookup: membership, this month's counters, bonuses and consent history, the
number's recent messages, and why it did (not) get a campaign (issue 14)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatcher.console.guard import render, view
from dispatcher.kernel.msisdn import InvalidMsisdn
from dispatcher.kernel.numbering import lookup_number
from dispatcher.kernel.states import Role
from dispatcher.kernel.values import parse_id
from dispatcher.program.lookup import subscriber_view
from dispatcher.program.why import (
    message_history,
    not_home_mobile,
    number_info,
    recent_campaigns,
    why_not,
)
from dispatcher.web.keys import CLOCK, DATABASE, SETTINGS

#: Messages shown on the page (the API pages through all of them).
MESSAGES_SHOWN = 50


@view(Role.VIEWER)
async def subscriber_lookup(request: web.Request) -> web.StreamResponse:
    """``?msisdn=`` in any written form → the subscriber's page (the API's subscriber
    view and message history); ``&campaign=`` adds why the number did (not) get that
    campaign. An invalid number is a 400 page; a number with neither a subscriber nor a
    message a 404 page (one not of the home region's mobiles says what it is)."""
    raw = request.query.get("msisdn", "").strip()
    context: dict[str, Any] = {
        "query": raw,
        "subscriber": None,
        "error": None,
        "note": None,
        "msisdn": None,
        "messages": [],
        "more_messages": False,
        "campaigns": [],
        "picked": request.query.get("campaign", "").strip()[:24],
        "why": None,
    }
    if not raw:
        return render(request, "subscriber.html", context)
    app = request.app
    settings = app[SETTINGS]
    try:
        msisdn = lookup_number(raw[:32], settings.default_region)
    except InvalidMsisdn as exc:
        context["error"] = f"Not a valid number: {exc.reason}."
        return render(request, "subscriber.html", context, status=400)
    pool = app[DATABASE].pool
    now = app[CLOCK].now()
    found = await subscriber_view(pool, settings, msisdn, now)
    messages = await message_history(pool, msisdn, MESSAGES_SHOWN + 1, 0)
    info = number_info(settings, msisdn)
    context |= {
        "subscriber": found,
        "msisdn": msisdn,
        "messages": messages[:MESSAGES_SHOWN],
        "more_messages": len(messages) > MESSAGES_SHOWN,
        "campaigns": _picker(messages, await recent_campaigns(pool)),
    }
    if not info.home_mobile:
        context["note"] = f"+{msisdn} is {not_home_mobile(settings, info)}."
    elif found is None:
        context["note"] = f"No subscriber +{msisdn}."
    status = 200 if found is not None or messages else 404
    if context["picked"]:
        campaign_id = parse_id(context["picked"])
        answer = None
        if campaign_id is not None:
            answer = await why_not(pool, settings, msisdn, campaign_id, now)
        if answer is None:
            context["error"] = f"No campaign {context['picked']}."
            status = 404
        context["why"] = answer
    return render(request, "subscriber.html", context, status=status)


def _picker(messages: list[dict[str, Any]], recent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The campaigns to ask "why" about: those in the number's history first, then the
    newest ones; each once."""
    seen: dict[int, dict[str, Any]] = {}
    for message in messages:
        campaign = message["campaign"]
        if campaign is not None and message["source"] == "campaign":
            seen.setdefault(campaign["id"], campaign)
    for campaign in recent:
        seen.setdefault(campaign["id"], campaign)
    return list(seen.values())
