"""The subscriber import: CSV ``msisdn,status,language`` from the operator's systems.

The file streams in and is parsed chunk by chunk (memory stays flat), COPYed into a
temporary table and applied by one upsert (``imports.sql``), all in one transaction: a file
refused as a whole (not UTF-8, too large, no data rows) leaves nothing behind. A header row
is optional (when the first cell of the first line is not a number, that line names the
columns, in any order); ``,`` ``;`` or tab delimit (sniffed from the first line).

- ``msisdn``: any common written form, normalised to E.164 digits;
- ``status``: ``active``, ``outgoing_blocked``, ``blocked`` or ``recycled`` (required: an
  empty status must not silently unblock a number);
- ``language``: ``kk``, ``ru``, ``en`` or empty (keeps what is known).

Bad rows are reported by line number and reason and skipped; for a number listed twice the
last row wins. A number that turns ``recycled`` goes through :meth:`Membership.set_status`
so the old owner's membership, consent, 1204 block and bonuses end (R12). Every status
change is recorded in ``subscriber_events`` with ``"source": "import"``.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from campaigns.models import Rejected
from dispatcher.msisdn import InvalidMsisdn, normalise
from dispatcher.program.membership import Membership
from dispatcher.sql import SqlFile
from dispatcher.states import Language, SubscriberStatus

COLUMNS = ("msisdn", "status", "language")
MAX_REJECTED_SHOWN = 1000
STATUSES = frozenset(s.value for s in SubscriberStatus)
LANGUAGES = frozenset(lang.value for lang in Language)
_SEPARATORS = str.maketrans("", "", " -().\t+")
Row = tuple[int, str, str, str | None]


class ImportSQL(SqlFile, domain="imports"):
    create_staging: str
    upsert: str


class ImportRefused(ValueError):
    """The file as a whole is refused; nothing of it was written."""

    def __init__(self, status: int, code: str, message: str, details: object = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


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
        self.region, self.max_bytes, self.max_shown = region, max_bytes, max_shown
        self.rejected: list[Rejected] = []
        self.rejected_total = 0
        self.rows = 0
        self.lines = 0
        self._bytes = 0
        self._tail = b""
        self._delimiter: str | None = None
        self._columns: tuple[int, ...] = (0, 1, 2)

    async def records(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[Row]:
        async for chunk in chunks:
            self._bytes += len(chunk)
            if self._bytes > self.max_bytes:
                raise ImportRefused(
                    413, "import_too_large", f"the file exceeds {self.max_bytes} bytes"
                )
            data = self._tail + chunk
            cut = data.rfind(b"\n") + 1
            self._tail = data[cut:]
            for row in self._parse(data[:cut]):
                yield row
        last, self._tail = self._tail, b""
        for row in self._parse(last + b"\n") if last.strip() else []:
            yield row
        if self.rows == 0:
            raise ImportRefused(400, "empty_import", "the file has no data rows")

    def _parse(self, data: bytes) -> list[Row]:
        if not data:
            return []
        text = self._decode(data)
        lines = text.split("\n")
        lines.pop()  # after the final newline
        rows: list[Row] = []
        for offset, line in enumerate(lines, self.lines + 1):
            if line.strip():
                self._line(offset, line.rstrip("\r"), rows)
        self.lines += len(lines)
        return rows

    def _decode(self, data: bytes) -> str:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = self.lines + data.count(b"\n", 0, exc.start) + 1
            raise ImportRefused(
                400, "invalid_encoding", f"line {line} is not valid UTF-8", {"line": line}
            ) from None
        return text[1:] if self.lines == 0 and text.startswith("\ufeff") else text

    def _line(self, line_no: int, line: str, rows: list[Row]) -> None:
        if self._delimiter is None:
            found = [d for d in ",;\t" if d in line]
            self._delimiter = max(found, key=line.count) if found else ","
            first = _cells(line, self._delimiter) or line.split(self._delimiter)
            if not first[0].translate(_SEPARATORS).isdigit():
                self._header(line_no, [c.strip().lower() for c in first])
                return
        cells = _cells(line, self._delimiter)
        self.rows += 1
        if cells is None:
            return self._reject(line_no, line.split(self._delimiter)[0], "malformed CSV line")
        values = [cells[i].strip() if i < len(cells) else "" for i in self._columns]
        raw, status, language = values
        try:
            msisdn = normalise(raw, self.region)
        except InvalidMsisdn as exc:
            return self._reject(line_no, raw, exc.reason)
        if status not in STATUSES:
            reason = "missing status" if not status else f"unknown status {status[:20]!r}"
            return self._reject(line_no, raw, reason)
        if language and language not in LANGUAGES:
            return self._reject(line_no, raw, f"unknown language {language[:20]!r}")
        rows.append((line_no, msisdn, status, language or None))
        return None

    def _header(self, line_no: int, header: list[str]) -> None:
        missing = [c for c in COLUMNS[:2] if c not in header]
        if missing:
            raise ImportRefused(
                400,
                "invalid_header",
                f"line {line_no}: the header lacks {', '.join(missing)} "
                "(expected msisdn,status,language)",
                {"line": line_no},
            )
        absent = len(header)  # a missing language column reads as empty
        self._columns = tuple(header.index(c) if c in header else absent for c in COLUMNS)

    def _reject(self, line: int, value: str, reason: str) -> None:
        self.rejected_total += 1
        if len(self.rejected) < self.max_shown:
            self.rejected.append(Rejected(line, value[:64], reason))


def _cells(line: str, delimiter: str) -> list[str] | None:
    """The cells of one line, or None when the csv module cannot read it (a bare CR in it
    was an unhandled csv.Error, an HTTP 500: tests/reliability/test_csv_fuzz.py)."""
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return None


async def import_subscribers(
    pool: asyncpg.Pool,
    membership: Membership,
    chunks: AsyncIterable[bytes],
    now: datetime,
    *,
    region: str,
    max_bytes: int,
) -> ImportResult:
    """Parse and apply an import (see the module docstring); raises :class:`ImportRefused`."""
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
