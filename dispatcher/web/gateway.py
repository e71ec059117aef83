"""Gateway endpoints for operator systems: USSD (R1, R2, R4, R6) and events (R9, R10, R12)."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from typing import TypeVar

from aiohttp import web

from campaigns.triggers import json_number
from dispatcher.kernel.states import CampaignScope, Channel, ContactKind, Role, SubscriberStatus
from dispatcher.kernel.values import EARLIEST_YEAR, LATEST_YEAR, parse_instant
from dispatcher.program import contacts
from dispatcher.program.events import EVENT_ALIASES, EVENT_TYPES
from dispatcher.program.ussd import language_hint
from dispatcher.web.auth import requires
from dispatcher.web.bodies import json_object, msisdn_field, string_field
from dispatcher.web.errors import ApiError
from dispatcher.web.keys import CLOCK, DATABASE, EVENTS, SETTINGS, USSD

USSD_INPUT_MAX = 182


@requires(Role.GATEWAY)
async def ussd(request: web.Request) -> web.Response:
    """``{"msisdn", "session_id", "input", "language"?}`` → ``{"text", "end"}``; committed
    before replying. ``language``: the gateway's hint (``kk``, ``ru``, ``en``, ISO 639-2 or a
    locale such as ``ru-RU``), used when the number has no language yet (R14); another value
    is ignored, never refused (the subscriber must get an answer)."""
    body = await json_object(request)
    msisdn = msisdn_field(request, body)
    session_id = string_field(body, "session_id", max_length=100)
    dialled = string_field(body, "input", max_length=USSD_INPUT_MAX)
    hint = language_hint(string_field(body, "language", max_length=35, required=False))
    assert session_id is not None and dialled is not None
    now = request.app[CLOCK].now()
    reply = await request.app[USSD].handle(msisdn, session_id, dialled, now, hint)
    return web.json_response({"text": reply.text, "end": reply.end})


@requires(Role.GATEWAY)
async def events(request: web.Request) -> web.Response:
    """Operator events; a repeated ``event_id`` is acknowledged and changes nothing. An
    applied event says how many triggered campaign messages it queued (``triggered``)."""
    body = await json_object(request)
    kind = body.get("type")
    kind = EVENT_ALIASES.get(kind, kind) if isinstance(kind, str) else kind
    if kind not in EVENT_TYPES:
        names = ", ".join([*EVENT_TYPES, *EVENT_ALIASES])
        raise ApiError(400, "invalid_field", f"type must be one of {names}", {"field": "type"})
    msisdn = msisdn_field(request, body)
    event_id = string_field(body, "event_id", max_length=100, required=False)
    payload = _payload(kind, body)
    now = request.app[CLOCK].now()
    occurred_at = _occurred_at(body, now)
    queued = await request.app[EVENTS].record(kind, msisdn, payload, event_id, occurred_at, now)
    if queued is None:
        return web.json_response({"status": "duplicate"})
    return web.json_response({"status": "applied", "triggered": queued})


def _payload(kind: str, body: dict[str, object]) -> dict[str, object]:
    if kind == "subscriber_status":
        status = body.get("status")
        if status not in {s.value for s in SubscriberStatus}:
            raise ApiError(
                400,
                "invalid_field",
                "status must be one of " + ", ".join(s.value for s in SubscriberStatus),
                {"field": "status"},
            )
        return {"status": status}
    if kind == "tariff_change":
        return {"tariff": string_field(body, "tariff", max_length=100)}
    if kind == "top_up":
        return {"amount": _amount(body)}
    return {}


def _amount(body: dict[str, object]) -> int | float:
    """A top-up's ``amount``: a positive decimal (a JSON number or a decimal text, no
    currency), at most 10^12, kept as a JSON number."""
    amount = json_number(body.get("amount"))
    if amount is None or amount <= 0:
        raise ApiError(
            400,
            "invalid_field",
            "amount must be a positive decimal number (no currency), at most 10^12",
            {"field": "amount"},
        )
    return amount


def _occurred_at(body: dict[str, object], now: datetime) -> datetime:
    raw = body.get("occurred_at")
    if raw is None:
        return now
    value = parse_instant(raw)
    if value is None:
        raise ApiError(
            400,
            "invalid_field",
            f"occurred_at must be an ISO 8601 time with offset, in years "
            f"{EARLIEST_YEAR}-{LATEST_YEAR}",
            {"field": "occurred_at"},
        )
    return value


@requires(Role.GATEWAY)
async def reserve_contact(request: web.Request) -> web.Response:
    """R7: another channel asks for a cap slot → granted, or refused with a reason; 409 for
    a ``reference`` already used for another number, kind or month."""
    body = await json_object(request)
    msisdn = msisdn_field(request, body)
    kind = _choice(body, "kind", ContactKind, None)
    scope = _choice(body, "scope", CampaignScope, CampaignScope.SMART)
    channel = _choice(body, "channel", Channel, Channel.IVR)
    reference = string_field(body, "reference", max_length=100, required=False)
    app = request.app
    try:
        result = await contacts.reserve(
            app[DATABASE].pool,
            app[SETTINGS],
            msisdn,
            kind,
            scope,
            channel,
            reference,
            app[CLOCK].now(),
        )
    except contacts.ReferenceConflict as exc:
        raise ApiError(
            409,
            "reference_conflict",
            f"reference was already used for another {', '.join(exc.differs)}: a reference "
            "repeats only the same contact (number, kind and month)",
            {"field": "reference", "differs": exc.differs},
        ) from None
    return web.json_response(dataclasses.asdict(result))


E = TypeVar("E", bound=enum.Enum)


def _choice(body: dict[str, object], name: str, kinds: type[E], default: E | None) -> E:
    raw = body.get(name)
    if raw is None and default is not None:
        return default
    try:
        return kinds(raw)
    except ValueError:
        allowed = ", ".join(str(k.value) for k in kinds)
        raise ApiError(
            400, "invalid_field", f"{name} must be one of {allowed}", {"field": name}
        ) from None


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/gateway/ussd", ussd)
    app.router.add_post("/gateway/events", events)
    app.router.add_post("/api/v1/contacts/reserve", reserve_contact)
