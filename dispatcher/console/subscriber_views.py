"""Subscriber lookup: membership, this month's counters, bonuses and consent history."""

from __future__ import annotations

from aiohttp import web

from dispatcher.console.guard import render, view
from dispatcher.kernel.msisdn import InvalidMsisdn, normalise
from dispatcher.kernel.states import Role
from dispatcher.program.lookup import subscriber_view
from dispatcher.web.keys import CLOCK, DATABASE, SETTINGS


@view(Role.VIEWER)
async def subscriber_lookup(request: web.Request) -> web.StreamResponse:
    """``?msisdn=`` in any written form → the subscriber's page (the API's subscriber
    view); an invalid number is a 400 page, an unknown one a 404 page."""
    raw = request.query.get("msisdn", "").strip()
    context: dict[str, object] = {"query": raw, "subscriber": None, "error": None}
    if not raw:
        return render(request, "subscriber.html", context)
    app = request.app
    try:
        msisdn = normalise(raw[:32], app[SETTINGS].default_region)
    except InvalidMsisdn as exc:
        context["error"] = f"Not a valid number: {exc.reason}."
        return render(request, "subscriber.html", context, status=400)
    found = await subscriber_view(app[DATABASE].pool, app[SETTINGS], msisdn, app[CLOCK].now())
    if found is None:
        context["error"] = f"No subscriber {msisdn}."
        return render(request, "subscriber.html", context, status=404)
    context["subscriber"] = found
    return render(request, "subscriber.html", context)
