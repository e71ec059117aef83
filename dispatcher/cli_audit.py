"""``smartd campaign approve ID`` and ``smartd audit``: maker-checker and the audit trail at
the command line (issue 15).

The CLI runs on the host with the database's own credentials, so it acts as the operator:
``cli:<os user>`` with the admin's role (:func:`dispatcher.kernel.audit.cli_actor`), recorded
so in the trail; it cannot approve a campaign that ``cli:<the same user>`` created. ``smartd
audit`` reads the trail as ``GET /api/v1/audit`` shows it to an admin, times in the program's
zone to the second.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from campaigns.models import ApprovalRefused
from campaigns.repository import CampaignRepository
from dispatcher.cli_common import Command, Subparsers, cli_clock, fail, page_size, positive
from dispatcher.db import open_database
from dispatcher.kernel.audit import (
    MAX_PAGE,
    PAGE_SIZE,
    AuditAction,
    AuditEvent,
    AuditFilter,
    AuditLog,
    cli_actor,
)
from dispatcher.kernel.values import parse_instant
from dispatcher.settings import Settings


def add_campaign_parsers(actions: Any) -> None:
    """``approve`` under ``smartd campaign``."""
    approve = actions.add_parser(
        "approve", help="approve a draft's texts and audience (maker-checker; not its creator)"
    )
    approve.add_argument("id", type=int)
    approve.add_argument(
        "--version",
        type=int,
        metavar="N",
        help="the content version you reviewed (refused if changed)",
    )


async def approve(
    settings: Settings, repository: CampaignRepository, args: argparse.Namespace
) -> int:
    actor = cli_actor()
    try:
        campaign = await repository.approve(
            args.id,
            actor,
            cli_clock(settings).now(),
            approver_roles=settings.approver_roles,
            version=args.version,
        )
    except ApprovalRefused as exc:
        return fail(f"cannot approve campaign {args.id}: {exc.reason} ({exc.code})")
    print(
        f"campaign {campaign.id} ({campaign.name}) approved by {actor.name}, "
        f"content version {campaign.content_version}"
    )
    return 0


def add_parsers(sub: Subparsers) -> dict[str, Command]:
    audit = sub.add_parser("audit", help="the audit trail of operator actions, newest first")
    audit.add_argument("--campaign", type=positive, metavar="ID", help="only this campaign's")
    audit.add_argument("--actor", metavar="NAME", help="only this person's (exactly)")
    audit.add_argument("--action", choices=[a.value for a in AuditAction], help="only this action")
    audit.add_argument("--since", type=_instant, metavar="ISO8601", help="at or after")
    audit.add_argument("--until", type=_instant, metavar="ISO8601", help="before")
    audit.add_argument("--limit", type=page_size(MAX_PAGE), default=PAGE_SIZE, metavar="N")
    audit.add_argument("--before", type=positive, metavar="ID", help="older than event ID")
    return {"audit": cmd_audit}


def _instant(raw: str) -> datetime:
    value = parse_instant(raw)
    if value is None:
        raise argparse.ArgumentTypeError("expected an ISO 8601 instant with an offset")
    return value


async def cmd_audit(settings: Settings, args: argparse.Namespace) -> int:
    found = AuditFilter(
        campaign_id=args.campaign,
        actor=args.actor,
        action=None if args.action is None else AuditAction(args.action),
        since=args.since,
        until=args.until,
    )
    async with open_database(settings) as db:
        events = await AuditLog(db.pool).page(found, before=args.before, limit=args.limit)
    if not events:
        print("no events")
        return 0
    for event in events:
        print(event_line(event, settings))
    if len(events) == args.limit:
        print(f"older: smartd audit --before {events[-1].id}")
    return 0


def event_line(event: AuditEvent, settings: Settings) -> str:
    """``#id  2026-11-23 17:00:00  who (role)  action  campaign 5  {details}``."""
    when = settings.calendar.local(event.at).strftime("%Y-%m-%d %H:%M:%S")
    who = event.actor + (f" ({event.actor_role})" if event.actor_role else "")
    subject = f"campaign {event.campaign_id}" if event.campaign_id else (event.target or "-")
    details = json.dumps(event.details, ensure_ascii=False, sort_keys=True)
    return f"#{event.id}  {when}  {who}  {event.action}  {subject}  {details}"
