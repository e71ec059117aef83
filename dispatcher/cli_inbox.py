"""``smartd inbox``: subscribers' SMS — replies, STOP, 1204 — newest first, each with the
campaign that last reached the number (issue 14; :mod:`dispatcher.program.inbox`), or with
``--counts`` the counts per campaign and kind. The CLI reads the database as the operator
does, so it shows what ``GET /api/v1/inbox`` shows an admin: numbers, texts, exact counts."""

from __future__ import annotations

import argparse

from dispatcher.cli_common import Command, Subparsers, local_minute, page_size, positive
from dispatcher.db import open_database
from dispatcher.program.inbox import MAX_PAGE, PAGE_SIZE, InboxMessage, InboxRepository, MoKind
from dispatcher.settings import Settings


def add_parsers(sub: Subparsers) -> dict[str, Command]:
    inbox = sub.add_parser("inbox", help="subscribers' replies, STOP and 1204, newest first")
    inbox.add_argument("--campaign", type=positive, metavar="ID", help="only this campaign's")
    inbox.add_argument("--kind", choices=[kind.value for kind in MoKind], help="only this kind")
    inbox.add_argument("--limit", type=page_size(MAX_PAGE), default=PAGE_SIZE, metavar="N")
    inbox.add_argument("--before", type=positive, metavar="ID", help="older than message ID")
    inbox.add_argument("--counts", action="store_true", help="counts per campaign and kind")
    return {"inbox": cmd_inbox}


async def cmd_inbox(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as db:
        repository = InboxRepository(db.pool)
        if args.counts:
            rows = await repository.per_campaign(1, args.campaign)
            if not rows:
                print("no messages attributed to a campaign")
            for row in rows:
                counts = ", ".join(f"{kind} {n}" for kind, n in row.counts.items())
                partner = f" ({row.campaign.partner})" if row.campaign.partner else ""
                print(f"campaign {row.campaign.id} {row.campaign.name}{partner}: {counts}")
            return 0
        kind = MoKind(args.kind) if args.kind else None
        messages = await repository.page(
            before=args.before, campaign_id=args.campaign, kind=kind, limit=args.limit
        )
    if not messages:
        print("no messages" if args.before is None else "no older messages")
    for message in messages:
        print(message_line(message, settings))
    if len(messages) == args.limit:
        print(f"… older: --before {messages[-1].id}")
    return 0


def message_line(message: InboxMessage, settings: Settings) -> str:
    """One message: id, local time, kind, number, campaign, text."""
    when = local_minute(message.received_at, settings.calendar.zone)
    campaign = message.campaign
    source = "no campaign" if campaign is None else f"campaign {campaign.id} {campaign.name}"
    text = f" {message.text!r}" if message.text else ""
    return f"#{message.id} {when} {message.kind.value:<5} +{message.msisdn} ← {source}{text}"
