"""The subscriber import: CSV ``msisdn,status,language`` from the operator's systems.

The file streams in and is parsed chunk by chunk by :mod:`campaigns.csvstream` (memory
stays flat), COPYed into a temporary table and applied by one upsert (``imports.sql``), all
in one transaction: a file refused as a whole (not UTF-8, too large, a line too long, no
data rows: :class:`~campaigns.csvstream.InputRefused`) leaves nothing behind. A header row
is optional (when the first cell of the first row is not a number, that row names the
columns, in any order); ``,`` ``;`` or tab delimit (sniffed from the first line).

- ``msisdn``: any common written form, normalised to E.164 digits;
- ``status``: ``active``, ``outgoing_blocked``, ``blocked`` or ``recycled`` (required: an
  empty status must not silently unblock a number);
- ``language``: ``kk``, ``ru``, ``en`` or empty (keeps what is known).

Bad rows are reported by line number and reason and skipped; for a number listed twice the
last row wins. A number that turns ``recycled`` goes through :meth:`Membership.set_status`
so the old owner's membership, consent, 1204 block and bonuses end (R12); a member whose
number turns ``active`` or ``outgoing_blocked`` goes through :meth:`Membership.returned` (R3:
this month's grant if it has none). Every status
change is recorded in ``subscriber_events`` with ``"source": "import"``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from campaigns.csvstream import CsvReader, InputRefused, Row, Rows, is_header
from campaigns.models import Rejected
from dispatcher.kernel.msisdn import InvalidMsisdn, normalise
from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import Language, SubscriberStatus
from dispatcher.program.membership import Membership

COLUMNS = ("msisdn", "status", "language")
MAX_REJECTED_SHOWN = 1000
STATUSES = frozenset(s.value for s in SubscriberStatus)
LANGUAGES = frozenset(lang.value for lang in Language)
ImportRow = tuple[int, str, str, str | None]


class ImportSQL(SqlFile, domain="imports"):
    create_staging: str
    upsert: str


@dataclass
class ImportResult:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    recycled: int = 0
    duplicates: int = 0
    rejected_total: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    lines: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "recycled": self.recycled,
            "duplicates": self.duplicates,
            "rejected": [r.as_dict() for r in self.rejected],
            "rejected_total": self.rejected_total,
            "lines": self.lines,
        }


class ImportParser:
    """Byte chunks → ``(line, msisdn, status, language)`` rows; bad rows are collected."""

    def __init__(self, region: str, *, max_bytes: int, max_shown: int = MAX_REJECTED_SHOWN):
        self.region, self.max_shown = region, max_shown
        self.reader = CsvReader("import", max_bytes=max_bytes)
        self.rejected: list[Rejected] = []
        self.rejected_total = 0
        self.rows = 0
        self._columns: tuple[int, ...] | None = None

    @property
    def lines(self) -> int:
        """Physical lines read."""
        return self.reader.lines

    async def records(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[ImportRow]:
        async for rows in self.reader.rows(chunks):
            for row in self._rows(rows):
                yield row
        if self.rows == 0:
            raise InputRefused("the file has no data rows", code="empty_import")

    def _rows(self, rows: Rows) -> list[ImportRow]:
        good: list[ImportRow] = []
        if not rows:
            return good
        for line, cells in rows if self._columns is not None else self._start(iter(rows)):
            self.rows += 1
            self._row(line, cells, good)
        return good

    def _start(self, rows: Iterator[Row]) -> Iterator[Row]:
        """On the first row: read the header if there is one."""
        line, first = next(rows)
        if not is_header(first):
            self._columns = (0, 1, 2)
            return itertools.chain([(line, first)], rows)
        header = [c.strip().lower() for c in first]
        missing = [c for c in COLUMNS[:2] if c not in header]
        if missing:
            raise InputRefused(
                f"line {line}: the header lacks {', '.join(missing)} "
                "(expected msisdn,status,language)",
                {"line": line},
                code="invalid_header",
            )
        absent = len(header)  # a missing language column reads as empty
        self._columns = tuple(header.index(c) if c in header else absent for c in COLUMNS)
        return rows

    def _row(self, line: int, cells: list[str], good: list[ImportRow]) -> None:
        columns = self._columns or ()
        raw, status, language = (cells[i].strip() if i < len(cells) else "" for i in columns)
        try:
            msisdn = normalise(raw, self.region)
        except InvalidMsisdn as exc:
            return self._reject(line, raw, exc.reason)
        if status not in STATUSES:
            reason = "missing status" if not status else f"unknown status {status[:20]!r}"
            return self._reject(line, raw, reason)
        if language and language not in LANGUAGES:
            return self._reject(line, raw, f"unknown language {language[:20]!r}")
        good.append((line, msisdn, status, language or None))
        return None

    def _reject(self, line: int, value: str, reason: str) -> None:
        self.rejected_total += 1
        if len(self.rejected) < self.max_shown:
            self.rejected.append(Rejected(line, value[:64], reason))


async def import_subscribers(
    pool: asyncpg.Pool,
    membership: Membership,
    chunks: AsyncIterable[bytes],
    now: datetime,
    *,
    region: str,
    max_bytes: int,
) -> ImportResult:
    """Parse and apply an import (see the module docstring); raises
    :class:`~campaigns.csvstream.InputRefused`."""
    parser = ImportParser(region, max_bytes=max_bytes)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(ImportSQL.create_staging)
        await conn.copy_records_to_table(
            "subscriber_import", records=parser.records(chunks), columns=COLUMNS_WITH_LINE
        )
        row = await conn.fetchrow(ImportSQL.upsert, now)
        evidence = {"source": "subscriber_import"}
        for msisdn in row["recycling"]:
            await membership.set_status(conn, msisdn, SubscriberStatus.RECYCLED, evidence, now)
        for msisdn in row["returning_members"]:
            await membership.returned(conn, msisdn, now)
    recycled = len(row["recycling"])
    return ImportResult(
        inserted=row["inserted"],
        updated=row["updated"],
        unchanged=row["numbers"] - row["inserted"] - row["updated"] - recycled,
        recycled=recycled,
        duplicates=row["rows"] - row["numbers"],
        rejected_total=parser.rejected_total,
        rejected=parser.rejected,
        lines=parser.lines,
    )


COLUMNS_WITH_LINE = ("line", *COLUMNS)
