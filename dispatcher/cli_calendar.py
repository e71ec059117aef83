"""``smartd calendar``: the send calendar (R8) as the service applies it — weekly hours, dated
exceptions, open now or not, and the next days' hours in local time (``--days N``); ``smartd
calendar check FILE`` validates a calendar file before it is deployed (every bad line named
with its number, exit 1), combined with this process's SMARTD_SEND_WINDOW and
SMARTD_SEND_HOURS as ``serve`` would combine it."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from dispatcher.cli_common import Command, Subparsers, cli_clock, fail, local_minute
from dispatcher.policy.calendar import CalendarDay, ProgramCalendar
from dispatcher.policy.hours import CalendarError
from dispatcher.settings import Settings, read_calendar_file, send_hours

DEFAULT_DAYS = 7
MAX_DAYS = 366


def add_parsers(sub: Subparsers) -> dict[str, Command]:
    calendar = sub.add_parser("calendar", help="the send calendar: weekly hours and holidays")
    calendar.add_argument(
        "--days", type=_days, default=DEFAULT_DAYS, metavar="N", help="days to list (1-366)"
    )
    actions = calendar.add_subparsers(dest="calendar_command", metavar="ACTION")
    check = actions.add_parser("check", help="validate a calendar file (errors name the line)")
    check.add_argument("file", type=Path)
    return {"calendar": cmd_calendar}


def _days(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be 1-{MAX_DAYS}")
    return value


async def cmd_calendar(settings: Settings, args: argparse.Namespace) -> int:
    if args.calendar_command == "check":
        return check_file(settings, args.file)
    calendar = settings.calendar
    for line in calendar_lines(calendar, cli_clock(settings).now(), args.days):
        print(line)
    return 0


def check_file(settings: Settings, path: Path) -> int:
    """Validate ``path`` as the calendar file: 0 and a summary, or 1 and each problem."""
    try:
        entries = read_calendar_file(path)
        hours = send_hours(settings, path)
    except CalendarError as exc:
        for problem in exc.problems:
            print(f"smartd: {problem}", file=sys.stderr)
        return fail(f"{path}: not a usable calendar file")
    print(f"{path}: valid, {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
    print(f"  weekly: {hours.weekly_text()}")
    if hours.exceptions:
        first, last = hours.exceptions[0].day, hours.exceptions[-1].day
        print(f"  dated exceptions: {len(hours.exceptions)} day(s), {first} to {last}")
    return 0


def calendar_lines(calendar: ProgramCalendar, now: datetime, days: int) -> list[str]:
    """The calendar in words: now, the week, the exceptions from today on, the next days."""
    zone = calendar.zone
    closes = calendar.closes_at(now)
    opens = calendar.next_open(closes or now)
    state = f"open now, closes {local_minute(closes, zone)}" if closes else "closed now"
    today = calendar.local(now).date()
    lines = [
        f"send calendar ({zone.key} local time)",
        f"  {state}; next opening {local_minute(opens, zone)}",
        f"  weekly: {calendar.hours.weekly_text()}",
    ]
    upcoming = [e for e in calendar.hours.exceptions if e.day >= today]
    lines.append("  dated exceptions from today:" if upcoming else "  no dated exceptions ahead")
    for exception in upcoming:
        hours = "closed" if exception.hours is None else str(exception.hours)
        lines.append(f"    {exception.day} {hours}{_note(exception.note)}")
    lines.append(f"next {days} day(s):")
    lines += [f"  {day_line(day)}" for day in calendar.days(now, days)]
    return lines


def day_line(day: CalendarDay) -> str:
    hours = "closed" if day.hours is None else str(day.hours)
    note = "" if day.exception is None else f" (exception{_note(day.exception.note, ': ')})"
    return f"{day.day:%a %Y-%m-%d}  {hours}{note}"


def _note(note: str, lead: str = "  ") -> str:
    return f"{lead}{note}" if note else ""
