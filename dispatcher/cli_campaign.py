"""``smartd campaign create|upload|start|pause|resume|cancel|status|show``: straight to the
database, through the same campaign domain code as the HTTP API (``edit`` and ``duplicate``:
cli_edit)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

from campaigns.audience import ColumnMapping, rejected_csv, upload_audience
from campaigns.csvstream import InputRefused
from campaigns.models import CampaignNotFound, TransitionRefused
from campaigns.reports import (
    SENT,
    CampaignReport,
    campaign_report,
    percent_of,
    shown_counts,
    triggered_json,
)
from campaigns.repository import CampaignRepository
from campaigns.spec import SpecError, parse_campaign
from campaigns.triggers import describe_fields, trigger_from_words
from dispatcher import cli_audit, cli_edit, cli_variants
from dispatcher.cli_common import (
    EXIT_REJECTED_ROWS,
    Command,
    Subparsers,
    byte_progress,
    cli_clock,
    fail,
    file_with_progress,
    local_minute,
    out,
    print_rejected,
    readable_file,
    refused,
)
from dispatcher.cli_partners import opt_outs_line
from dispatcher.db import open_database
from dispatcher.engine.forecast import campaign_forecast, forecast_lines
from dispatcher.engine.status import status_of
from dispatcher.kernel.audit import cli_actor
from dispatcher.kernel.states import CampaignState
from dispatcher.policy.status import CampaignStatus
from dispatcher.settings import Settings

ACTIONS = ("start", "pause", "resume", "cancel")
FINISHED = frozenset({CampaignState.COMPLETED, CampaignState.CANCELLED, CampaignState.EXPIRED})


def add_parsers(sub: Subparsers) -> dict[str, Command]:
    campaign = sub.add_parser("campaign", help="create, fill, start and watch campaigns")
    actions = campaign.add_subparsers(dest="campaign_command", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a draft campaign (prints its id)")
    create.add_argument("--file", type=readable_file, help="the JSON of POST /api/v1/campaigns")
    create.add_argument("--name")
    create.add_argument("--partner", default="")
    create.add_argument("--kind", choices=["info", "survey"], help="default info")
    create.add_argument("--scope", choices=["smart", "operator"], help="default smart")
    create.add_argument(
        "--text", action="append", default=[], metavar="LANG=TEXT", help="repeat per language"
    )
    create.add_argument("--variable", action="append", default=[], metavar="NAME")
    create.add_argument(
        "--default",
        action="append",
        default=[],
        metavar="NAME=TEXT",
        help="what a blank cell of variable NAME takes (NAME= : optional, renders empty)",
    )
    create.add_argument("--start-at", metavar="ISO8601")
    create.add_argument("--end-at", metavar="ISO8601")
    cli_variants.add_options(create)
    create.add_argument(
        "--trigger",
        metavar="'EVENT [FIELD OP VALUE]'",
        help="triggered by operator events instead of an audience, e.g. 'top_up amount>=1000', "
        "'status status=active', 'tariff_change tariff in A, B' ("
        + "; ".join(describe_fields())
        + ")",
    )
    create.add_argument(
        "--max-delay",
        metavar="DURATION",
        help="with --trigger: drop a message still waiting this long after its event "
        "(12h, 90m, 1d or PT12H; default 1d)",
    )
    upload = actions.add_parser("upload", help="add an audience CSV (msisdn first)")
    upload.add_argument("id", type=int)
    upload.add_argument("file", type=readable_file)
    upload.add_argument(
        "--number-column", metavar="HEADER", help="the column holding the number (name or 1-based)"
    )
    upload.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="VARIABLE=HEADER",
        help="the column holding a variable, e.g. --map name=Имя (repeat per variable)",
    )
    rejected = actions.add_parser(
        "rejected", help="every rejected row of the audience uploads, as CSV"
    )
    rejected.add_argument("id", type=int)
    rejected.add_argument("--upload", type=int, metavar="N", help="only upload N")
    rejected.add_argument("--output", metavar="FILE", help="write to FILE (default: stdout)")
    for action in ACTIONS:
        actions.add_parser(action, help=f"{action} a campaign").add_argument("id", type=int)
    forecast = actions.add_parser(
        "forecast", help="what a start now would do: eligible, suppressed, SMS parts, finish"
    )
    forecast.add_argument("id", type=int)
    cli_edit.add_parsers(actions)
    cli_audit.add_campaign_parsers(actions)
    for name in ("status", "show", "report"):
        status = actions.add_parser(
            name, help="what it is doing in plain words, counts by state and suppression reason"
        )
        status.add_argument("id", type=int)
        status.add_argument(
            "--variants", action="store_true", help="counts per text variant and the holdout"
        )
        status.add_argument("--watch", action="store_true", help="refresh until it finishes")
        status.add_argument("--interval", type=float, default=2.0, metavar="SECONDS")
    return {"campaign": cmd_campaign}


async def cmd_campaign(settings: Settings, args: argparse.Namespace) -> int:
    async with open_database(settings) as db:
        shown = functools.partial(_status, pool=db.pool)
        handlers: dict[str, Callable[..., Awaitable[int]]] = {
            "create": _create,
            "upload": _upload,
            "status": shown,
            "show": shown,
            "report": shown,
            "edit": cli_edit.edit,
            "duplicate": cli_edit.copy,
            "approve": cli_audit.approve,
            "rejected": _rejected,
            "forecast": functools.partial(_forecast, pool=db.pool),
        }
        handler = handlers.get(args.campaign_command, _transition)
        repository = CampaignRepository(db.pool)
        try:
            return await handler(settings, repository, args)
        except CampaignNotFound:
            return fail(f"no campaign {args.id}")
        except TransitionRefused as exc:
            return fail(str(exc))


def spec_payload(args: argparse.Namespace) -> dict[str, Any]:
    """The create payload: the JSON file, with any flags given laid over it."""
    payload: dict[str, Any] = json.loads(Path(args.file).read_text("utf-8")) if args.file else {}
    if not isinstance(payload, dict):
        raise ValueError("the file must hold a JSON object")
    texts = dict(payload.get("texts") or {})
    for item in args.text:
        language, sep, text = item.partition("=")
        if not sep:
            raise ValueError(f"--text {item!r}: expected LANG=TEXT")
        texts[language.strip()] = text
    flags = {
        "name": args.name,
        "partner": args.partner or None,
        "start_at": args.start_at,
        "end_at": args.end_at,
        "variables": args.variable or None,
        "variable_defaults": _defaults(args.default) or None,
        "texts": texts or None,
        "kind": args.kind,
        "scope": args.scope,
    }
    payload.update({k: v for k, v in flags.items() if v is not None})
    payload.update(cli_variants.variant_fields(args))
    if "variants" in payload and not args.text:
        payload.pop("texts", None)  # with variants, the texts are variant A's
    payload.setdefault("kind", "info")
    trigger, max_delay = getattr(args, "trigger", None), getattr(args, "max_delay", None)
    if trigger is not None:
        payload["trigger"] = trigger_from_words(trigger, max_delay)
    elif max_delay is not None:
        raise ValueError("--max-delay goes with --trigger")
    return payload


def _defaults(items: list[str]) -> dict[str, str]:
    defaults = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--default {item!r}: expected NAME=TEXT")
        defaults[name.strip()] = text
    return defaults


async def _create(
    settings: Settings, repository: CampaignRepository, args: argparse.Namespace
) -> int:
    try:
        payload = spec_payload(args)
    except (ValueError, OSError) as exc:
        return fail(f"campaign spec: {exc}")
    now = cli_clock(settings).now()
    try:
        spec = parse_campaign(
            payload, now, settings.campaign_max_segments, settings.required_languages
        )
    except SpecError as exc:
        for field, problem in _flatten(exc.details):
            print(f"smartd: {field}: {problem}", file=sys.stderr)
        return fail("the campaign is invalid; nothing was created")
    actor = cli_actor()
    campaign = await repository.create(spec, actor.name, now, actor=actor)
    print(f"created campaign {campaign.id} ({campaign.name}), state {campaign.state.value}")
    if campaign.trigger is not None:
        print(f"  triggered {campaign.trigger}; no audience: start it to take events")
    cli_edit.print_costs(campaign)
    return 0


def _flatten(details: Any, prefix: str = "") -> list[tuple[str, str]]:
    if not isinstance(details, dict):
        return [(prefix or "campaign", str(details))]
    rows: list[tuple[str, str]] = []
    for key, value in details.items():
        rows.extend(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return rows


async def _upload(
    settings: Settings, repository: CampaignRepository, args: argparse.Namespace
) -> int:
    path: Path = args.file
    variables: dict[str, str] = {}
    for item in args.map:
        name, sep, header = item.partition("=")
        if not sep or not name.strip() or not header.strip():
            return fail(f"--map {item!r}: expected VARIABLE=HEADER")
        variables[name.strip()] = header.strip()
    mapping = ColumnMapping(args.number_column, variables)
    try:
        with byte_progress() as progress:
            result = await upload_audience(
                repository,
                args.id,
                file_with_progress(path, progress, f"campaign {args.id} ← {path.name}"),
                region=settings.default_region,
                max_rows=settings.audience_max_rows,
                max_bytes=settings.audience_max_bytes,
                now=cli_clock(settings).now(),
                uploaded_by=cli_actor().name,
                policy=settings.mobile_policy,
                mapping=mapping,
                actor=cli_actor(),
                approval_required=settings.approval_required,
            )
    except InputRefused as exc:
        return refused(path, exc, "nothing was added")
    print(
        f"upload {result.upload_no}: accepted {result.accepted}, "
        f"duplicates {result.duplicates}, rejected {result.rejected_total} ({result.lines} lines)"
    )
    print_rejected(result.rejected, result.rejected_total)
    if result.rejected_total:
        print(f"all rejected rows: smartd campaign rejected {args.id} --upload {result.upload_no}")
    return EXIT_REJECTED_ROWS if result.rejected_total else 0


async def _rejected(
    settings: Settings, repository: CampaignRepository, args: argparse.Namespace
) -> int:
    """Every rejected row (or upload N's) as CSV, to ``--output`` or standard output."""
    if await repository.get(args.id) is None:
        raise CampaignNotFound(args.id)
    uploads = {u.upload_no: u.rejected for u in await repository.uploads(args.id)}
    if args.upload is not None and args.upload not in uploads:
        return fail(f"campaign {args.id} has no upload {args.upload}")
    rows = uploads[args.upload] if args.upload is not None else sum(uploads.values())
    if not args.output:
        async for text in rejected_csv(repository, args.id, args.upload):
            sys.stdout.write(text)
        return 0
    with open(args.output, "w", encoding="utf-8", newline="") as target:  # noqa: ASYNC230
        async for text in rejected_csv(repository, args.id, args.upload):
            target.write(text)
    print(f"{rows} rejected rows written to {args.output}")
    return 0


async def _forecast(
    settings: Settings,
    repository: CampaignRepository,
    args: argparse.Namespace,
    *,
    pool: asyncpg.Pool,
) -> int:
    """The operator's forecast (exact counts: the CLI reads the database as the operator)."""
    campaign = await repository.get(args.id)
    if campaign is None:
        raise CampaignNotFound(args.id)
    now = cli_clock(settings).now()
    forecast = await campaign_forecast(pool, campaign, settings, now)
    print(f"campaign {campaign.id} ({campaign.name}), {campaign.state.value}")
    for line in forecast_lines(forecast, settings.calendar.zone):
        print(line)
    return 0


async def _transition(
    settings: Settings, repository: CampaignRepository, args: argparse.Namespace
) -> int:
    now = cli_clock(settings).now()
    campaign = await repository.transition(
        args.id,
        args.campaign_command,
        now,
        actor=cli_actor(),
        approval_required=settings.approval_required,
    )
    print(f"campaign {campaign.id} is {campaign.state.value}")
    return 0


async def _status(
    settings: Settings,
    repository: CampaignRepository,
    args: argparse.Namespace,
    *,
    pool: asyncpg.Pool,
) -> int:
    if args.variants:
        return await cli_variants.print_variants(settings, repository, args.id)
    clock = cli_clock(settings)
    report, status = await _report(settings, pool, repository, args.id, clock.now())
    if not args.watch or report.campaign.state in FINISHED:
        out.print(_render(report, status, settings.timezone))
        out.print(escape(await opt_outs_line(pool, report, settings)))
        return 0
    with Live(
        _render(report, status, settings.timezone), console=out, refresh_per_second=4
    ) as live:
        while report.campaign.state not in FINISHED:
            await asyncio.sleep(args.interval)  # an operator watching: poll, not a test
            report, status = await _report(settings, pool, repository, args.id, clock.now())
            live.update(_render(report, status, settings.timezone))
    return 0


async def _report(
    settings: Settings,
    pool: asyncpg.Pool,
    repository: CampaignRepository,
    campaign_id: int,
    now: datetime,
) -> tuple[CampaignReport, CampaignStatus]:
    campaign = await repository.get(campaign_id)
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    report = await campaign_report(repository, campaign, now, settings.calendar.finish_at)
    status = await status_of(pool, settings.calendar, campaign, report.counts.states, now)
    return report, status


def _render(report: CampaignReport, status: CampaignStatus, zone: tzinfo) -> Group:
    """Title, what it is doing in plain words (status.message: local times), a progress
    bar, counts by state and by suppression reason, rate and ETA (in the program's zone)."""
    campaign, counts, progress = report.campaign, report.counts, report.progress
    bar = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    bar.add_task(
        f"{counts.done}/{counts.total} done", total=max(counts.total, 1), completed=counts.done
    )
    parts: list[Any] = [
        f"campaign {campaign.id} [bold]{escape(campaign.name)}[/] — {campaign.state}",
        escape(status.message),
        bar.get_renderable(),
        _counts_table("state", counts.states.items()),
    ]
    if campaign.trigger is not None:
        parts.insert(1, escape(f"triggered {campaign.trigger}"))
        parts.append(escape(triggered_line(report)))
    if any(counts.suppressed.values()):
        parts.append(_counts_table("suppressed because", counts.suppressed.items()))
    if progress.throughput_per_s:
        eta = progress.estimated_completion
        parts.append(
            f"{progress.throughput_per_s}/s over the last 5 min, done by {local_minute(eta, zone)}"
        )
    if report.survey:
        survey = report.survey
        rate = percent_of(survey.respondents, survey.sent)
        parts.append(
            f"answered: {survey.respondents} of {survey.sent} surveys sent"
            + ("" if rate is None else f" ({rate}%)")
        )
        if report.answered_without_receipt:
            parts.append(
                f"at least {report.answered_without_receipt} answered without a delivered "
                "receipt (the SMSC did not report them: lost receipts, e.g. an SMSC restart)"
            )
        parts.append(f"survey results: GET /api/v1/campaigns/{campaign.id}/results.csv")
    return Group(*parts)


def triggered_line(report: CampaignReport) -> str:
    """A triggered campaign's counts in one line (the CLI reads them as the operator)."""
    shown = triggered_json(shown_counts(report.counts, 1, {"sent": SENT}))
    return (
        f"events matched: {shown['matched']} numbers; waiting {shown['waiting']}, "
        f"sent {shown['sent']}, stale {shown['stale']}"
    )


def _counts_table(title: str, counts: Iterable[tuple[str, int]]) -> Table:
    table = Table(title_justify="left")
    table.add_column(title)
    table.add_column("count", justify="right")
    for name, n in counts:
        if n:
            table.add_row(str(name), str(n))
    return table
