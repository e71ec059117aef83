"""A number's message history, and why it did (not) get a campaign (issue 14).

Read for operator roles only (``GET /api/v1/subscribers/{msisdn}/messages`` and
``…/campaigns/{id}``, the console's subscriber page, ``smartd subscriber``): it names
the number, so it is never part of a partner-facing report (R11).

:func:`message_history` lists the number's campaign deliveries and program service
messages, newest first, each with its state, suppression reason, parts, times and the
receipt with the SMSC's error code. :func:`why_not` answers for one campaign with one of
:data:`ANSWERS`, in plain words (``summary``) and in machine fields (``details``):

* ``not_in_audience`` — no delivery row and no rejected upload row;
* ``rejected_at_upload`` — the upload rows that named the number (upload, line, reason);
* ``suppressed`` — the rule; at a cap, the campaigns (and other channels) that used the
  month's slots;
* ``waiting`` — queued: the campaign is a draft, scheduled or paused, the window is closed
  until its next opening, a retry waits for its time, or the message is behind the program
  messages and earlier recipients the engine claims first;
* ``sending`` — claimed or being written to the SMSC now;
* ``sent`` — submitted, with its receipt (delivered, undelivered, expired; error code) or
  none yet; ``failed`` — the SMSC refused it for good; ``unknown`` — written, fate unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

from dispatcher.kernel.numbering import NumberInfo, describe_number, home_country_name
from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import CampaignState, DeliveryState
from dispatcher.settings import Settings

ANSWERS = (
    "not_in_audience",
    "rejected_at_upload",
    "suppressed",
    "waiting",
    "sending",
    "sent",
    "failed",
    "unknown",
)
WAITING_REASONS = (
    "campaign_draft",
    "scheduled",
    "campaign_paused",
    "campaign_finished",
    "window_closed",
    "retry_later",
    "behind_queue",
    "going_stale",
)
#: Counts of messages ahead stop here (the count is a probe of a partial index).
AHEAD_COUNTED = 100_000
#: The most messages one history page holds.
MAX_PAGE = 500

_FINAL_RECEIPTS = ("delivered", "undelivered", "expired", "rejected", "deleted", "unknown")

#: Each suppression reason (suppression_reason, migration 0001) in plain words.
SUPPRESSION_WORDS = {
    "not_member": "the number was not a SMART member (or not a subscriber) when it was due",
    "dnc": "the number is blocked by 1204 (no telemarketing)",
    "blocked": "the line is blocked",
    "cap_info": "this month's cap of {cap} partner messages was already used",
    "cap_survey": "this month's cap of {cap} surveys was already used",
    "opted_out": "the subscriber opted out",
    "outside_campaign_window": "the campaign's end time had passed",
    "cancelled": "the campaign was cancelled before it reached the number",
    "recycled": "the number passed to a new owner",
    "invalid_text": "the text could not be made for this number (a variable's value)",
    "holdout": "the number is in the campaign's holdout (control group): held back on purpose",
    "stale": "the event that triggered it was older than the campaign's max delay when the "
    "message could go (it waited for the send window)",
}


class WhySQL(SqlFile, domain="why"):
    campaign_of: str
    messages: str
    delivery: str
    parts: str
    rejections: str
    cap_users: str
    cap_reservations: str
    counters: str
    service_ahead: str
    ahead_in_campaign: str
    recent_campaigns: str


def number_info(settings: Settings, msisdn: str) -> NumberInfo:
    return describe_number(msisdn, settings.default_region)


def not_home_mobile(settings: Settings, info: NumberInfo) -> str:
    """``not a Kazakhstan mobile number: a mobile number of Russia``."""
    home = home_country_name(settings.default_region)
    return f"not a {home} mobile number: {info.description}"


async def message_history(
    db: asyncpg.Pool | asyncpg.Connection, msisdn: str, limit: int, offset: int
) -> list[dict[str, Any]]:
    """The number's messages, newest first, as JSON values (one page)."""
    rows = await db.fetch(WhySQL.messages, msisdn, limit, offset)
    return await _with_parts(db, msisdn, rows)


async def recent_campaigns(db: asyncpg.Pool, count: int = 50) -> list[dict[str, Any]]:
    return [dict(r) for r in await db.fetch(WhySQL.recent_campaigns, count)]


async def why_not(
    db: asyncpg.Pool, settings: Settings, msisdn: str, campaign_id: int, now: datetime
) -> dict[str, Any] | None:
    """Why ``msisdn`` did (not) get campaign ``campaign_id`` at ``now``; None when there is
    no such campaign."""
    campaign = await db.fetchrow(WhySQL.campaign_of, campaign_id)
    if campaign is None:
        return None
    info = number_info(settings, msisdn)
    row = await db.fetchrow(WhySQL.delivery, campaign_id, msisdn)
    message = None if row is None else (await _with_parts(db, msisdn, [row]))[0]
    if row is None or message is None:
        answer, summary, details = await _absent(db, campaign, msisdn)
    else:
        stale_after = row["stale_after"]
        answer, summary, details = await _present(db, settings, campaign, message, now, stale_after)
    if not info.home_mobile:
        summary = f"+{msisdn} is {not_home_mobile(settings, info)}. {summary}"
    return {
        "msisdn": msisdn,
        "number": info.as_dict(),
        "campaign": _campaign(campaign),
        "answer": answer,
        "summary": summary,
        "details": details,
        "message": message,
    }


# ---------------------------------------------------------------- the answers

Answer = tuple[str, str, dict[str, Any]]


async def _absent(db: asyncpg.Pool, campaign: Mapping[str, Any], msisdn: str) -> Answer:
    campaign_id = campaign["id"]
    name = f"{campaign_id} ({campaign['name']})"
    rejections = [
        {
            "upload_no": r["upload_no"],
            "line": r["line"],
            "value": r["value"],
            "reason": r["reason"],
            "uploaded_at": r["uploaded_at"].isoformat(),
        }
        for r in await db.fetch(WhySQL.rejections, campaign_id, msisdn)
    ]
    if not rejections:
        return "not_in_audience", f"+{msisdn} is not in the audience of campaign {name}.", {}
    where = "; ".join(
        f"upload {r['upload_no']}, line {r['line']} ({r['value']!r}): {r['reason']}"
        for r in rejections
    )
    return (
        "rejected_at_upload",
        f"+{msisdn} was rejected at the upload of campaign {name}: {where}.",
        {"rejections": rejections},
    )


async def _present(
    db: asyncpg.Pool,
    settings: Settings,
    campaign: Mapping[str, Any],
    message: dict[str, Any],
    now: datetime,
    stale_after: datetime | None,
) -> Answer:
    state = DeliveryState(message["state"])
    when = _local_formatter(settings)
    if state is DeliveryState.SUPPRESSED:
        return await _suppressed(db, settings, campaign, message)
    if state is DeliveryState.QUEUED:
        return await _waiting(db, settings, campaign, message, now, stale_after)
    if state in (DeliveryState.CLAIMED, DeliveryState.IN_FLIGHT):
        return "sending", "Being sent now (claimed by the engine).", {"state": state.value}
    receipt = message["receipt"]
    details = {
        "outcome": state.value if state is not DeliveryState.SUBMITTED else "awaiting_receipt",
        "submitted_at": message["submitted_at"],
        "receipt_at": receipt["at"] if receipt else None,
        "error_code": receipt["error_code"] if receipt else None,
        "parts": message["parts"],
        "parts_delivered": message["parts_delivered"],
    }
    submitted = when(message["submitted_at"])
    if state is DeliveryState.SUBMITTED:
        return "sent", f"Sent {submitted}; no receipt yet.", details
    if state is DeliveryState.FAILED:
        refusal = message["error"] or f"SMPP status {message['submit_status']}"
        return "failed", f"Not sent: the SMSC refused it ({refusal}).", details
    if state is DeliveryState.UNKNOWN:
        return (
            "unknown",
            f"Written to the SMSC, outcome unknown ({message['error'] or 'no response'}).",
            details,
        )
    error = f" (error {details['error_code']})" if details["error_code"] else ""
    at = f" at {when(details['receipt_at'])}" if details["receipt_at"] else ""
    return "sent", f"Sent {submitted}; {state.value}{error}{at}.", details


async def _suppressed(
    db: asyncpg.Pool, settings: Settings, campaign: Mapping[str, Any], message: dict[str, Any]
) -> Answer:
    rule = message["suppressed"]
    when = _local_formatter(settings)
    details: dict[str, Any] = {"rule": rule, "at": message["finished_at"]}
    if rule not in ("cap_info", "cap_survey"):
        words = SUPPRESSION_WORDS.get(rule, rule)
        return "suppressed", f"Suppressed {when(message['finished_at'])}: {words}.", details
    kind = "info" if rule == "cap_info" else "survey"
    at = datetime.fromisoformat(message["finished_at"])
    month = settings.calendar.month_of(at)
    msisdn = message["msisdn"]
    counters = await db.fetchrow(WhySQL.counters, msisdn, month)
    default_cap = settings.info_cap if kind == "info" else settings.survey_cap
    cap = counters[f"{kind}_cap"] if counters else default_cap
    users = [
        {
            "id": r["id"],
            "name": r["name"],
            "partner": r["partner"],
            "state": r["state"],
            "claimed_at": _iso(r["claimed_at"]),
            "submitted_at": _iso(r["submitted_at"]),
        }
        for r in await db.fetch(WhySQL.cap_users, msisdn, month, kind)
    ]
    reservations = [
        {
            "channel": r["channel"],
            "reference": r["reference"],
            "reserved_at": _iso(r["reserved_at"]),
        }
        for r in await db.fetch(WhySQL.cap_reservations, msisdn, month, kind)
    ]
    details |= {
        "month": month.isoformat(),
        "cap": cap,
        "used": counters[f"{kind}_count"] if counters else len(users) + len(reservations),
        "used_by": users,
        "reservations": reservations,
    }
    words = SUPPRESSION_WORDS[rule].format(cap=cap)
    named = ", ".join(
        f"{u['id']} {u['name']}" + (f" ({u['partner']})" if u["partner"] else "") for u in users
    )
    channels = ", ".join(f"{r['channel']} {when(r['reserved_at'])}" for r in reservations)
    used = "; ".join(
        part
        for part in (
            f"campaigns {named}" if named else "",
            f"other channels: {channels}" if channels else "",
        )
        if part
    )
    summary = f"Suppressed {when(message['finished_at'])}: {words} ({month:%Y-%m})"
    return "suppressed", f"{summary}; the slots went to {used or 'nothing recorded'}.", details


async def _waiting(
    db: asyncpg.Pool,
    settings: Settings,
    campaign: Mapping[str, Any],
    message: dict[str, Any],
    now: datetime,
    stale_after: datetime | None,
) -> Answer:
    """Why a queued message is not sent yet. ``stale_after``: a triggered message's
    deadline (the event's time + the campaign's max delay; a claim after it drops it)."""
    when = _local_formatter(settings)
    state = CampaignState(campaign["state"])
    if state is CampaignState.DRAFT:
        return _wait("campaign_draft", "the campaign has not been started (draft).")
    if state is CampaignState.SCHEDULED:
        start = campaign["start_at"]
        if start is None:
            return _wait("scheduled", "the campaign is scheduled.")
        return _wait("scheduled", f"the campaign is scheduled for {when(start)}.", until=start)
    if state is CampaignState.PAUSED:
        return _wait("campaign_paused", "the campaign is paused.")
    if state is not CampaignState.RUNNING:
        return _wait("campaign_finished", f"the campaign is {state.value}: it will not be sent.")
    calendar = settings.calendar
    not_before = message["not_before"]
    earliest = now if calendar.is_open(now) else calendar.next_open(now)
    if not_before is not None:
        earliest = max(earliest, datetime.fromisoformat(not_before))
    if stale_after is not None and earliest > stale_after:  # the claim's rule: dispatch.sql
        late = "it is" if earliest == now else f"it cannot go before {when(earliest)}, and is then"
        return _wait(
            "going_stale",
            f"{late} past the campaign's max delay after the event that triggered it (until "
            f"{when(stale_after)}): it will be dropped as stale, not sent.",
            until=stale_after,
        )
    if not calendar.is_open(now):
        opens = calendar.next_open(now)
        local = calendar.local(opens)
        day = "today" if local.date() == calendar.local(now).date() else f"{local:%Y-%m-%d}"
        return _wait(
            "window_closed",
            f"the send window is closed until {local:%H:%M} ({day}, local time).",
            until=opens,
        )
    if not_before is not None and datetime.fromisoformat(not_before) > now:
        return _wait(
            "retry_later",
            f"a retry after a temporary SMSC refusal, at {when(not_before)}.",
            until=datetime.fromisoformat(not_before),
        )
    services = await db.fetchval(WhySQL.service_ahead, now, True, AHEAD_COUNTED)
    earlier = await db.fetchval(
        WhySQL.ahead_in_campaign, campaign["id"], message["id"], AHEAD_COUNTED
    )
    return _wait(
        "behind_queue",
        f"behind {more(services)} program messages (sent first) and {more(earlier)} earlier "
        "recipients of this campaign.",
        service_ahead=services,
        ahead_in_campaign=earlier,
    )


def more(count: int) -> str:
    """A count of messages ahead, ``100000+`` where counting stopped."""
    return f"{count}+" if count >= AHEAD_COUNTED else str(count)


def _wait(reason: str, words: str, until: datetime | None = None, **counts: int) -> Answer:
    details: dict[str, Any] = {"reason": reason, "until": _iso(until)} | counts
    return "waiting", f"Waiting: {words}", details


# ---------------------------------------------------------------- messages as JSON values


async def _with_parts(
    db: asyncpg.Pool | asyncpg.Connection, msisdn: str, rows: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    deliveries = [r["id"] for r in rows if r["source"] == "campaign"]
    services = [r["id"] for r in rows if r["source"] == "service"]
    parts: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    if rows:
        for part in await db.fetch(WhySQL.parts, msisdn, deliveries, services):
            if part["delivery_id"] is not None:
                key = ("campaign", part["delivery_id"])
            else:
                key = ("service", part["service_message_id"])
            parts.setdefault(key, []).append(part)
    return [_message(msisdn, r, parts.get((r["source"], r["id"]), [])) for r in rows]


def _message(
    msisdn: str, row: Mapping[str, Any], parts: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    campaign = None
    if row["campaign_id"] is not None:
        campaign = {
            "id": row["campaign_id"],
            "name": row["campaign_name"],
            "partner": row["partner"],
            "kind": row["campaign_kind"],
            "state": row["campaign_state"],
        }
    return {
        "source": row["source"],
        "id": row["id"],
        "msisdn": msisdn,
        "campaign": campaign,
        "kind": row["kind"],
        "state": row["state"],
        "suppressed": row["suppressed"],
        "parts": row["parts"],
        "parts_delivered": row["parts_done"],
        "attempts": row["attempts"],
        "language": row["language"],
        "claimed_at": _iso(row["claimed_at"]),
        "submitted_at": _iso(row["submitted_at"]),
        "finished_at": _iso(row["finished_at"]),
        "not_before": _iso(row["not_before"]),
        "submit_status": row["last_status"],
        "error": row["error"],
        "receipt": _receipt(parts),
    }


def _receipt(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The message's receipt from its parts': a part that failed speaks for the message
    (as finish_messages decides), else the last part's; None before any final receipt."""
    final = [p for p in parts if p["receipt"] in _FINAL_RECEIPTS]
    if not final:
        return None
    failed = [p for p in final if p["receipt"] != "delivered"]
    chosen = failed[0] if failed else max(final, key=lambda p: p["receipt_at"])
    return {
        "state": chosen["receipt"],
        "at": _iso(chosen["receipt_at"]),
        "error_code": chosen["error_code"],
    }


def _campaign(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "partner": row["partner"],
        "kind": row["kind"],
        "scope": row["scope"],
        "state": row["state"],
        "start_at": _iso(row["start_at"]),
    }


def _iso(value: datetime | date | None) -> str | None:
    return None if value is None else value.isoformat()


Formatter = Callable[[datetime | str | None], str]


def _local_formatter(settings: Settings) -> Formatter:
    calendar = settings.calendar

    def when(value: datetime | str | None) -> str:
        if value is None:
            return "—"
        instant = datetime.fromisoformat(value) if isinstance(value, str) else value
        return f"{calendar.local(instant):%Y-%m-%d %H:%M}"

    return when
