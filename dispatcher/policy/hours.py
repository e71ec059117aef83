"""The send calendar's hours (R8): which local hours are open on each day.

:class:`SendHours` is seven weekly entries (Monday first), each a
:class:`~dispatcher.policy.window.SendWindow` or ``None`` (closed), and dated exceptions
(public holidays: a date closed, or open with other hours) that win over the weekday.

It is written as entries, one per line of a calendar file or separated by ``;`` in
``SMARTD_SEND_HOURS``; a later entry wins over an earlier one for the same day::

    mon-fri 10:00-21:00
    sat     11:00-19:00
    sun     closed
    2027-03-21..2027-03-23 closed   # Nauryz
    2027-03-08 12:00-18:00          # short day

Days: ``mon``..``sun`` (or full names), a range ``mon-fri`` (``fri-mon`` wraps), a list
``mon,wed``, ``daily``; or a date ``YYYY-MM-DD``, or dates ``YYYY-MM-DD..YYYY-MM-DD``. Hours:
``HH:MM-HH:MM`` (``24:00`` ends at midnight) or ``closed``. ``#`` starts a note.

A window that crosses midnight belongs to the day it opens: ``fri 22:00-02:00`` is Friday
night into Saturday, and a closed Saturday does not cut it (close Friday to stop it). It must
not overlap the next day's window; one that ends exactly when the next opens is one open span.
Pure: text in, values out; reading a file is the caller's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from dispatcher.policy.window import SendWindow

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
#: At most this many days in a row without an opening: a calendar closed longer is refused
#: (a typo in a date range, a year closed by mistake), and the walk to the next opening is
#: bounded by it.
MAX_CLOSED_DAYS = 366
#: The widest dates range one entry may name.
MAX_RANGE_DAYS = 366
CLOSED = "closed"
#: Names the entry that set a day's hours (a date, or a weekday number 0-6).
Blame = Callable[[date | int], str]
_DATE_RANGE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:\.\.(\d{4}-\d{2}-\d{2}))?")


class CalendarError(ValueError):
    """A calendar that cannot be used; ``problems`` name their line or entry."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry: ``weekdays`` (0 is Monday) or the dates ``first..last``, their ``hours``
    (None: closed), ``where`` it was written (``"… line 3"``) and its ``note``."""

    weekdays: frozenset[int]
    dates: tuple[date, date] | None
    hours: SendWindow | None
    where: str
    text: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class DayException:
    """A dated exception: ``day`` closed (``hours`` None) or open ``hours``, and its note."""

    day: date
    hours: SendWindow | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class SendHours:
    """Weekly hours (``week[0]`` is Monday) and dated exceptions (sorted by date)."""

    week: tuple[SendWindow | None, ...]
    exceptions: tuple[DayException, ...] = ()
    _by_date: dict[date, DayException] = field(
        init=False, repr=False, compare=False, hash=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        if len(self.week) != 7:
            raise ValueError("weekly hours name seven days")
        object.__setattr__(self, "_by_date", {e.day: e for e in self.exceptions})

    @classmethod
    def every_day(cls, window: SendWindow) -> SendHours:
        """The same ``window`` every day, no exception (the default: 10:00-21:00)."""
        return cls((window,) * 7)

    def on(self, day: date) -> SendWindow | None:
        """The hours of the window that opens on local ``day`` (None: closed that day)."""
        found = self._by_date.get(day)
        return self.week[day.weekday()] if found is None else found.hours

    def exception(self, day: date) -> DayException | None:
        return self._by_date.get(day)

    def weekly_text(self) -> str:
        """The weekly hours in the entries' words: ``10:00-21:00`` when the same every day,
        else ``mon-fri 10:00-21:00; sat 11:00-19:00; sun closed``."""
        if len(set(self.week)) == 1 and self.week[0] is not None:
            return str(self.week[0])
        return "; ".join(f"{days} {_hours_text(hours)}" for days, hours in self.weekly_groups())

    def weekly_groups(self) -> list[tuple[str, SendWindow | None]]:
        """Runs of consecutive weekdays with the same hours: ``[("mon-fri", 10:00-21:00), …]``."""
        groups: list[tuple[str, SendWindow | None]] = []
        start = 0
        for day in range(1, 8):
            if day == 7 or self.week[day] != self.week[start]:
                last = day - 1
                name = (
                    DAY_NAMES[start] if start == last else f"{DAY_NAMES[start]}-{DAY_NAMES[last]}"
                )
                groups.append((name, self.week[start]))
                start = day
        return groups

    def __str__(self) -> str:
        text = self.weekly_text()
        if self.exceptions:
            text += f" (+{len(self.exceptions)} dated exception(s))"
        return text


def apply(base: SendHours, entries: Iterable[Entry]) -> SendHours:
    """``base`` with ``entries`` applied in order (a later entry wins), checked: refused with
    the entries to blame when never open, when a window overlaps the next day's, or when
    closed more than :data:`MAX_CLOSED_DAYS` days in a row."""
    week = list(base.week)
    by_day: dict[int, Entry] = {}
    dated = {e.day: e for e in base.exceptions}
    by_date: dict[date, Entry] = {}
    for entry in entries:
        for weekday in entry.weekdays:
            week[weekday] = entry.hours
            by_day[weekday] = entry
        for day in _dates(entry):
            dated[day] = DayException(day, entry.hours, entry.note)
            by_date[day] = entry
    hours = SendHours(tuple(week), tuple(sorted(dated.values(), key=lambda e: e.day)))

    def blame(day: date | int) -> str:
        """The entry that set ``day``'s hours (a weekday number: the weekly hours')."""
        weekday = day if isinstance(day, int) else day.weekday()
        entry = by_day.get(weekday) if isinstance(day, int) else by_date.get(day)
        entry = entry or by_day.get(weekday)
        return (
            f"{entry.where} ({entry.text})"
            if entry
            else f"the default hours of {DAY_NAMES[weekday]}"
        )

    problems = list(_problems(hours, blame))
    if problems:
        raise CalendarError(problems)
    return hours


def _problems(hours: SendHours, blame: Blame) -> Iterator[str]:
    if all(w is None for w in hours.week):
        yield "the calendar is never open: every weekday is closed"
        return
    for weekday in range(7):
        first, second = hours.week[weekday], hours.week[(weekday + 1) % 7]
        if first is not None and second is not None and _overlap(first, second):
            named = (blame(weekday), blame((weekday + 1) % 7), DAY_NAMES[weekday])
            yield _overlap_text(*named, first, second)
    pairs = sorted(
        {
            (e.day + timedelta(days=n - 1), e.day + timedelta(days=n))
            for e in hours.exceptions
            for n in (0, 1)
        }
    )
    for day, after in pairs:
        first, second = hours.on(day), hours.on(after)
        if first is not None and second is not None and _overlap(first, second):
            named = (blame(day), blame(after), f"{day}")
            yield _overlap_text(*named, first, second)
    yield from _long_closures(hours, blame)


def _overlap_text(
    earlier: str, later: str, named: str, first: SendWindow, second: SendWindow
) -> str:
    return (
        f"{earlier} overlaps {later}: the window opening {named} "
        f"at {first.start:%H:%M} runs to {first.end:%H:%M}, after the next day's opens at "
        f"{second.start:%H:%M}"
    )


def _overlap(first: SendWindow, second: SendWindow) -> bool:
    """Whether ``first``'s window runs into the next day's window ``second``."""
    return first.crosses_midnight and second.start < first.end


def _long_closures(hours: SendHours, blame: Blame) -> Iterator[str]:
    """Runs of more than MAX_CLOSED_DAYS days without an opening (only exceptions can make
    one: the weekly hours are open at least one day a week)."""
    if not hours.exceptions:
        return
    day = hours.exceptions[0].day - timedelta(days=7)
    last = hours.exceptions[-1].day + timedelta(days=7)
    run_start: date | None = None
    while day <= last:
        if hours.on(day) is None:
            run_start = run_start or day
        elif run_start is not None:
            if (day - run_start).days > MAX_CLOSED_DAYS:
                yield (
                    f"closed {(day - run_start).days} days in a row, {run_start} to "
                    f"{day - timedelta(days=1)} (at most {MAX_CLOSED_DAYS}): see {blame(run_start)}"
                )
            run_start = None
        day += timedelta(days=1)


def _dates(entry: Entry) -> Iterator[date]:
    if entry.dates is None:
        return
    first, last = entry.dates
    for n in range((last - first).days + 1):
        yield first + timedelta(days=n)


def _hours_text(hours: SendWindow | None) -> str:
    return CLOSED if hours is None else str(hours)


def parse_entries(text: str, source: str, *, separator: str = "\n") -> tuple[Entry, ...]:
    """The entries of ``text`` (a file: one a line; a setting: ``separator=";"``), each
    labelled ``"<source> line N"`` (or ``entry N``); every bad one is reported at once."""
    entries: list[Entry] = []
    problems: list[str] = []
    label = "line" if separator == "\n" else "entry"
    pieces = text.splitlines() if separator == "\n" else re.split(r"[;\n]", text)
    for number, raw in enumerate(pieces, 1):
        body, _, note = raw.partition("#")
        if not body.strip():
            continue
        where = f"{source} {label} {number}"
        try:
            entries.append(parse_entry(body.strip(), where, note.strip()))
        except ValueError as exc:
            problems.append(f"{where} ({body.strip()}): {exc}")
    if problems:
        raise CalendarError(problems)
    return tuple(entries)


def parse_entry(text: str, where: str, note: str = "") -> Entry:
    """One entry ``DAYS HOURS``; ``ValueError`` says what is wrong."""
    parts = text.split()
    if len(parts) != 2:
        raise ValueError("expected DAYS HOURS, e.g. mon-fri 10:00-21:00 or 2027-03-22 closed")
    days, hours_text = parts
    hours = None if hours_text.lower() == CLOSED else SendWindow.parse(hours_text)
    if _DATE_RANGE.fullmatch(days):
        return Entry(frozenset(), _date_span(days), hours, where, text, note)
    return Entry(_weekdays(days), None, hours, where, text, note)


def _date_span(text: str) -> tuple[date, date]:
    match = _DATE_RANGE.fullmatch(text)
    assert match is not None
    first = date.fromisoformat(match.group(1))
    last = date.fromisoformat(match.group(2)) if match.group(2) else first
    if last < first:
        raise ValueError(f"the range ends before it starts: {text}")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise ValueError(f"a range names at most {MAX_RANGE_DAYS} days: {text}")
    return first, last


def _weekdays(text: str) -> frozenset[int]:
    if text.lower() == "daily":
        return frozenset(range(7))
    found: set[int] = set()
    for item in text.lower().split(","):
        first, dash, last = item.partition("-")
        start = _weekday(first)
        end = _weekday(last) if dash else start
        found.update((start + n) % 7 for n in range((end - start) % 7 + 1))
    return frozenset(found)


def _weekday(name: str) -> int:
    name = name.strip()
    if name in DAY_NAMES:
        return DAY_NAMES.index(name)
    if name in _FULL_NAMES:
        return _FULL_NAMES.index(name)
    raise ValueError(
        f"unknown day {name!r}: expected mon..sun, a range mon-fri, daily, YYYY-MM-DD "
        "or YYYY-MM-DD..YYYY-MM-DD"
    )
