"""Helpers shared by the ``smartd`` commands: the clock, rich output, file progress.

Results go to stdout (plain lines a script can read); progress bars and errors go to stderr,
and rich draws bars only on a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from campaigns.csvstream import InputRefused, file_chunks
from campaigns.models import Rejected
from dispatcher.kernel.clock import Clock, OffsetClock, SystemClock
from dispatcher.settings import Settings

T = TypeVar("T")

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
Subparsers = Any  # argparse's private _SubParsersAction

#: Exit statuses: 1 refused (nothing written), 3 done but some rows were rejected.
EXIT_REFUSED = 1
EXIT_REJECTED_ROWS = 3
REJECTED_SHOWN = 50

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def cli_clock(settings: Settings) -> Clock:
    """The service's clock (``SMARTD_CLOCK_START`` shifts it, as for ``smartd serve``)."""
    return OffsetClock(settings.clock_start) if settings.clock_start else SystemClock()


def local_minute(instant: datetime | None, zone: tzinfo, none: str = "-") -> str:
    """An instant as ``YYYY-MM-DD HH:MM`` in the program's zone (Astana), as the console
    shows it: no seconds, microseconds or offset."""
    return none if instant is None else instant.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def fail(message: str, status: int = EXIT_REFUSED) -> int:
    print(f"smartd: {message}", file=sys.stderr)
    return status


def refused(path: Path, exc: InputRefused, outcome: str) -> int:
    """A refused input file: what is wrong and where (its line), then ``outcome`` (what was
    not done), and the hint on a line of its own; exit 1."""
    fail(f"{path}: {exc.message}; {outcome}")
    if exc.hint:
        print(f"smartd: hint: {exc.hint}", file=sys.stderr)
    return EXIT_REFUSED


def byte_progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,  # a script's stderr gets the result lines only
    )


def file_with_progress(path: Path, progress: Progress, label: str) -> AsyncIterator[bytes]:
    """The file's chunks, advancing a bar by bytes as the database takes them."""
    task = progress.add_task(label, total=path.stat().st_size)
    return _advancing(file_chunks(str(path)), progress, task)


async def _advancing(
    chunks: AsyncIterator[bytes], progress: Progress, task: TaskID
) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        yield chunk
        progress.advance(task, len(chunk))


def positive(raw: str) -> int:
    """An argparse type: an id or count of 1 or more."""
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def page_size(maximum: int) -> Callable[[str], int]:
    """An argparse type: a page size of 1 to ``maximum``."""

    def parse(raw: str) -> int:
        value = int(raw)
        if not 1 <= value <= maximum:
            raise argparse.ArgumentTypeError(f"must be 1-{maximum}")
        return value

    parse.__name__ = "page size"
    return parse


def readable_file(raw: str) -> Path:
    """argparse type: an existing regular file."""
    path = Path(raw)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {raw}")
    return path


def print_rejected(rejected: list[Rejected], total: int) -> None:
    """One line per rejected row: ``line N: value: reason`` (the first few)."""
    for row in rejected[:REJECTED_SHOWN]:
        print(f"  line {row.line}: {row.value!r}: {row.reason}")
    if total > min(len(rejected), REJECTED_SHOWN):
        print(f"  … and {total - min(len(rejected), REJECTED_SHOWN)} more")


def run_loop(main: Coroutine[Any, Any, T], event_loop: str) -> T:
    """Run ``main`` to completion on the configured event loop (``SMARTD_EVENT_LOOP``):
    uvloop where it is installed (measured in the README: less CPU per USSD request and per
    message), else Python's own."""
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:  # not built for this platform: the standard loop does the same work
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)
