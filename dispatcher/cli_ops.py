"""``smartd import-subscribers``, ``smartd bonus grant-month``, ``smartd token list`` output
and ``smartd smsc-sim``."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Sequence
from datetime import datetime, tzinfo
from pathlib import Path

from campaigns.csvstream import InputRefused
from dispatcher.cli_common import (
    EXIT_REJECTED_ROWS,
    Command,
    Subparsers,
    byte_progress,
    cli_clock,
    err,
    file_with_progress,
    local_minute,
    print_rejected,
    readable_file,
    refused,
)
from dispatcher.db import open_database
from dispatcher.program.bonus import BonusLedger
from dispatcher.program.charging import charging_from_settings
from dispatcher.program.imports import import_subscribers
from dispatcher.program.membership import Membership
from dispatcher.settings import Settings
from dispatcher.tokens import TokenInfo


def add_parsers(sub: Subparsers) -> dict[str, Command]:
    imports = sub.add_parser(
        "import-subscribers", help="bulk upsert subscribers from CSV msisdn,status,language"
    )
    imports.add_argument("file", type=readable_file)
    bonus = sub.add_parser("bonus", help="bonus jobs").add_subparsers(
        dest="bonus_command", required=True, metavar="ACTION"
    )
    grant = bonus.add_parser("grant-month", help="grant this month's units to every member now")
    grant.add_argument(
        "--force", action="store_true", help="run even if this month's grant is recorded as done"
    )
    # Only for `smartd --help`; main() hands smsc-sim's arguments to the simulator as they are.
    sub.add_parser("smsc-sim", help="run the SMPP SMSC simulator (--help for its options)")
    return {"import-subscribers": cmd_import, "bonus": cmd_bonus}


async def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    path: Path = args.file
    clock = cli_clock(settings)
    async with open_database(settings) as db:
        bonus = BonusLedger(db.pool, settings, clock, charging_from_settings(settings))
        try:
            with byte_progress() as progress:
                result = await import_subscribers(
                    db.pool,
                    Membership(settings, bonus),
                    file_with_progress(path, progress, f"subscribers ← {path.name}"),
                    clock.now(),
                    region=settings.default_region,
                    max_bytes=settings.audience_max_bytes,
                )
        except InputRefused as exc:
            return refused(path, exc, "nothing was imported")
        finally:
            await bonus.close()
    print(
        f"inserted {result.inserted}, updated {result.updated}, unchanged {result.unchanged}, "
        f"recycled {result.recycled}, duplicates {result.duplicates}, "
        f"rejected {result.rejected_total} ({result.lines} lines)"
    )
    print_rejected(result.rejected, result.rejected_total)
    return EXIT_REJECTED_ROWS if result.rejected_total else 0


async def cmd_bonus(settings: Settings, args: argparse.Namespace) -> int:
    clock = cli_clock(settings)
    async with open_database(settings) as db:
        bonus = BonusLedger(db.pool, settings, clock, charging_from_settings(settings))
        try:
            now = clock.now()
            period = settings.calendar.month_of(now).strftime("%Y-%m")
            with err.status(f"granting {period} …"):
                granted = await bonus.grant_month(now, force=args.force)
        finally:
            await bonus.close()
    if granted == 0 and not args.force:
        print(f"{period}: nothing granted (already done this month, or no member is owed)")
    else:
        print(f"{period}: granted {granted} members {settings.bonus_units} units each")
    return 0


def token_lines(tokens: Sequence[TokenInfo], now: datetime, zone: tzinfo) -> list[str]:
    """``smartd token list``: tab-separated, a header first, never a secret; times in the
    program's zone, to the minute."""
    lines = ["id\tname\trole\tstate\tcreated\texpires\tlast used"]
    for t in tokens:
        if t.revoked_at is not None:
            state = "revoked"
        elif t.expires_at is not None and t.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        lines.append(
            f"{t.id}\t{t.name}\t{t.role}\t{state}\t{local_minute(t.created_at, zone)}\t"
            f"{local_minute(t.expires_at, zone, 'never')}\t"
            f"{local_minute(t.last_used_at, zone, 'never')}"
        )
    return lines


def run_simulator(argv: Sequence[str]) -> int:
    """``smartd smsc-sim ARGS``: the simulator's own command line; SIGTERM stops it cleanly."""
    from smpp import simulator

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    return simulator.main(list(argv))
