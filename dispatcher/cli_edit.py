"""``smartd campaign edit|duplicate``: change a draft, or copy any campaign into a new draft,
through the campaign domain's :mod:`campaigns.editing` (the same validation as create, as the
API's PATCH and the console's edit form)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from campaigns.editing import duplicate, edit_draft, stored_payload
from campaigns.models import Campaign, CampaignNotFound, EditRefused
from campaigns.reports import campaign_view
from campaigns.repository import CampaignRepository
from campaigns.spec import SpecError, flatten_errors
from dispatcher import cli_variants
from dispatcher.cli_common import cli_clock, fail, readable_file
from dispatcher.kernel.audit import cli_actor
from dispatcher.policy.schedule import schedule_warnings
from dispatcher.settings import Settings


def add_parsers(actions: Any) -> None:
    """``edit`` and ``duplicate`` under ``smartd campaign``."""
    edit = actions.add_parser("edit", help="change a draft campaign (only a draft)")
    edit.add_argument("id", type=int)
    edit.add_argument("--file", type=readable_file, help="JSON of the fields to change")
    edit.add_argument("--name")
    edit.add_argument("--partner")
    edit.add_argument("--kind", choices=["info", "survey"])
    edit.add_argument("--scope", choices=["smart", "operator"])
    edit.add_argument(
        "--text",
        action="append",
        default=[],
        metavar="LANG=TEXT",
        help="replace one language's text (LANG= removes it); repeat per language",
    )
    edit.add_argument(
        "--variable", action="append", metavar="NAME", help="the audience columns (all of them)"
    )
    edit.add_argument("--priority", type=int)
    edit.add_argument("--start-at", metavar="ISO8601")
    edit.add_argument("--end-at", metavar="ISO8601")
    edit.add_argument("--no-start", action="store_true", help="start when started")
    edit.add_argument("--no-end", action="store_true", help="no end")
    cli_variants.add_options(edit)
    copy = actions.add_parser("duplicate", help="copy any campaign into a new draft")
    copy.add_argument("id", type=int)


async def edit(settings: Settings, repository: CampaignRepository, args: argparse.Namespace) -> int:
    try:
        changes = await _changes(repository, args)
    except (ValueError, OSError) as exc:
        return fail(f"campaign fields: {exc}")
    now = cli_clock(settings).now()
    try:
        campaign = await edit_draft(
            repository,
            args.id,
            changes,
            now,
            settings.campaign_max_segments,
            settings.required_languages,
            actor=cli_actor(),
        )
    except EditRefused as exc:
        if exc.code == "not_a_draft":
            return fail(
                f"cannot edit campaign {args.id}: it is {exc.state}; only a draft can be edited "
                f"(copy it with: smartd campaign duplicate {args.id})"
            )
        return fail(f"cannot edit campaign {args.id}: {exc.reason}")
    except SpecError as exc:
        return _invalid(exc, "nothing was changed")
    print(f"saved campaign {campaign.id} ({campaign.name}), state {campaign.state.value}")
    print_summary(settings, campaign, now)
    return 0


async def copy(settings: Settings, repository: CampaignRepository, args: argparse.Namespace) -> int:
    now = cli_clock(settings).now()
    try:
        campaign = await duplicate(
            repository,
            args.id,
            cli_actor().name,
            now,
            settings.campaign_max_segments,
            settings.required_languages,
            actor=cli_actor(),
        )
    except SpecError as exc:
        return _invalid(exc, "today's rules refuse a copy; nothing was created")
    print(
        f"created campaign {campaign.id} ({campaign.name}), state {campaign.state.value}, "
        f"a copy of campaign {args.id}"
    )
    print_summary(settings, campaign, now)
    return 0


def _file_fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: Any = json.loads(Path(args.file).read_text("utf-8")) if args.file else {}
    if not isinstance(fields, dict):
        raise ValueError("the file must hold a JSON object")
    return fields


async def _changes(repository: CampaignRepository, args: argparse.Namespace) -> dict[str, Any]:
    """The fields to change: the JSON file's, then the flags given over them."""
    changes = _file_fields(args)
    flags = {
        "name": args.name,
        "partner": args.partner,
        "kind": args.kind,
        "scope": args.scope,
        "variables": args.variable,
        "priority": args.priority,
        "start_at": args.start_at,
        "end_at": args.end_at,
    }
    changes.update({k: v for k, v in flags.items() if v is not None})
    cleared = {"start_at": args.no_start, "end_at": args.no_end}
    changes.update({key: None for key, clear in cleared.items() if clear})
    changes.update(cli_variants.variant_fields(args))
    if args.text:
        changes["texts"] = await _texts(repository, args, changes.get("texts"))
    return changes


async def _texts(
    repository: CampaignRepository, args: argparse.Namespace, given: Any
) -> dict[str, str]:
    """The draft's texts (a survey's: its intro) with each ``--text LANG=TEXT`` laid over."""
    texts = dict(given) if isinstance(given, dict) else {}
    if not texts:
        campaign = await repository.get(args.id)
        if campaign is None:
            raise CampaignNotFound(args.id)
        current = stored_payload(campaign, await repository.get_survey(args.id))
        texts = dict(current.get("texts") or {})
    for item in args.text:
        language, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--text {item!r}: expected LANG=TEXT")
        if text:
            texts[language.strip()] = text
        else:
            texts.pop(language.strip(), None)
    return texts


def _invalid(exc: SpecError, outcome: str) -> int:
    for field, problem in flatten_errors(exc.details).items():
        print(f"smartd: {field}: {problem}", file=sys.stderr)
    return fail(f"the campaign is invalid; {outcome}")


def print_costs(campaign: Campaign) -> None:
    """Each text's cost: encoding, SMS parts and characters, or why it cannot be sent."""
    for language, cost in campaign_view(campaign)["preview"].items():
        if "error" in cost:
            print(f"  {language}: {cost['error']}")
        else:
            parts = "part" if cost["segments"] == 1 else "parts"
            print(
                f"  {language}: {cost['encoding'].upper()}, {cost['segments']} SMS {parts}, "
                f"{cost['characters']} characters"
            )


def print_summary(settings: Settings, campaign: Campaign, now: datetime) -> None:
    """Each text's cost, the schedule in local time (no microseconds), and its warnings."""
    print_costs(campaign)
    calendar = settings.calendar
    zone = calendar.zone.key
    if campaign.start_at is None:
        print("  starts when started")
    else:
        print(f"  starts {calendar.local(campaign.start_at):%Y-%m-%d %H:%M:%S} ({zone})")
    if campaign.end_at is not None:
        print(f"  ends {calendar.local(campaign.end_at):%Y-%m-%d %H:%M:%S} ({zone})")
    for warning in schedule_warnings(calendar, campaign.start_at, campaign.end_at, now):
        print(f"warning: {warning.message}")
