"""``smartd subscriber messages|why``: a number's message history, and why it did (not) get a
campaign (issue 14) — the answers of ``GET /api/v1/subscribers/{msisdn}/messages`` and
``…/campaigns/{id}``, as plain lines in Astana time."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from dispatcher.cli_common import Command, Subparsers, cli_clock, fail, page_size
from dispatcher.db import open_database
from dispatcher.kernel.msisdn import InvalidMsisdn
from dispatcher.kernel.numbering import lookup_number
from dispatcher.program.why import MAX_PAGE, message_history, number_info, why_not
from dispatcher.settings import Settings


def add_parsers(sub: Subparsers) -> dict[str, Command]:
    subscriber = sub.add_parser("subscriber", help="a number's messages; why it got a campaign")
    actions = subscriber.add_subparsers(dest="subscriber_command", required=True, metavar="ACTION")
    messages = actions.add_parser("messages", help="the number's messages, newest first")
    messages.add_argument("msisdn", help="the number in any written form (+7 701…, 8 701…)")
    messages.add_argument("--limit", type=page_size(MAX_PAGE), default=50, metavar="N")
    messages.add_argument("--offset", type=_offset, default=0, metavar="N")
    why = actions.add_parser("why", help="why the number did (not) get a campaign")
    why.add_argument("msisdn", help="the number in any written form (+7 701…, 8 701…)")
    why.add_argument("campaign", type=int, help="the campaign's id")
    return {"subscriber": cmd_subscriber}


def _offset(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


async def cmd_subscriber(settings: Settings, args: argparse.Namespace) -> int:
    try:
        msisdn = lookup_number(args.msisdn, settings.default_region)
    except InvalidMsisdn as exc:
        return fail(f"{args.msisdn!r}: {exc.reason}")
    when = _local(settings)
    async with open_database(settings) as db:
        if args.subscriber_command == "messages":
            rows = await message_history(db.pool, msisdn, args.limit + 1, args.offset)
            info = number_info(settings, msisdn)
            print(f"+{msisdn}: {info.description}")
            if not rows:
                print("no messages" if args.offset == 0 else "no more messages")
            for row in rows[: args.limit]:
                print(message_line(row, when))
            if len(rows) > args.limit:
                print(f"… more: --offset {args.offset + args.limit}")
            return 0
        answer = await why_not(db.pool, settings, msisdn, args.campaign, cli_clock(settings).now())
    if answer is None:
        return fail(f"no campaign {args.campaign}")
    for line in why_lines(answer, when):
        print(line)
    return 0


def message_line(message: dict[str, Any], when: Any) -> str:
    """One message on one line: when, what, state, parts, submit, receipt."""
    campaign = message["campaign"]
    if message["source"] == "service":
        what = f"program {message['kind'].replace('_', ' ')}"
        if campaign is not None:
            what += f" (for campaign {campaign['id']} {campaign['name']})"
    else:
        what = f"campaign {campaign['id']} {campaign['name']}"
        what += f" ({campaign['partner']})" if campaign["partner"] else ""
        what += f" {message['kind']}"
    state = message["state"]
    if message["suppressed"]:
        state += f" ({message['suppressed'].replace('_', ' ')})"
    fields = [what, state]
    if message["parts"]:
        fields.append(f"parts {message['parts_delivered']}/{message['parts']}")
    if message["submitted_at"]:
        fields.append(f"submitted {when(message['submitted_at'])}")
    receipt = message["receipt"]
    if receipt:
        text = f"receipt {receipt['state']} {when(receipt['at'])}"
        if receipt["error_code"]:
            text += f" error {receipt['error_code']}"
        fields.append(text)
    elif message["error"]:
        fields.append(f"error: {message['error']}")
    at = message["finished_at"] or message["submitted_at"] or message["claimed_at"]
    return f"{when(at) if at else '(queued)':<16}  " + " · ".join(fields)


def why_lines(answer: dict[str, Any], when: Any) -> list[str]:
    campaign = answer["campaign"]
    partner = f" ({campaign['partner']})" if campaign["partner"] else ""
    lines = [
        f"+{answer['msisdn']} · campaign {campaign['id']} {campaign['name']}{partner}, "
        f"{campaign['state']}",
        f"answer: {answer['answer']}",
        answer["summary"],
    ]
    details = answer["details"]
    for rejection in details.get("rejections", []):
        lines.append(
            f"  upload {rejection['upload_no']} line {rejection['line']}: "
            f"{rejection['value']!r}: {rejection['reason']}"
        )
    for user in details.get("used_by", []):
        lines.append(
            f"  slot used by campaign {user['id']} {user['name']}"
            + (f" ({user['partner']})" if user["partner"] else "")
            + f", {user['state']}, claimed {when(user['claimed_at'])}"
        )
    for reservation in details.get("reservations", []):
        lines.append(f"  slot used by {reservation['channel']}, {when(reservation['reserved_at'])}")
    return lines


def _local(settings: Settings) -> Any:
    calendar = settings.calendar

    def when(value: str | None) -> str:
        if not value:
            return "-"
        return f"{calendar.local(datetime.fromisoformat(value)):%Y-%m-%d %H:%M}"

    return when
