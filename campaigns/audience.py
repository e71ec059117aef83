"""Audience CSV: parsed as it streams in, bulk-loaded with COPY, all in one transaction.

The file: first column the msisdn (any common written form, normalised to E.164 digits),
further columns the campaign's variables. A header row is optional: when the first cell of
the first line is not a number, that line names the columns (matched to the declared
variables case-insensitively, extra columns ignored); without one, the columns after the
msisdn are the declared variables in declared order. UTF-8 (a BOM is skipped), LF or CRLF,
``,`` ``;`` or tab as delimiter (sniffed from the first line), fields may be quoted. A record
is one line.

Bad rows (invalid number, missing or empty variable) are reported with their line number
and skipped; duplicates (within the file, or already in the campaign) are counted and
skipped; a file that is not UTF-8, too large or has too many rows is refused as a whole
(:class:`AudienceError`) and nothing of it stays. Memory stays flat whatever the file's
size: chunks are parsed as they arrive, and duplicates are found by the database.
"""

from __future__ import annotations

import _csv
import csv
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence

from campaigns.models import AudienceError, AudienceResult, Rejected
from campaigns.repository import CampaignRepository
from dispatcher.msisdn import InvalidMsisdn, normalise

MAX_REJECTED_SHOWN = 1000
_SEPARATORS = str.maketrans("", "", " -().\t+")
Record = tuple[int, str, list[str] | None]


class AudienceParser:
    """Turns byte chunks into ``(line, msisdn, [variable values] | None)`` records.

    ``rejected`` keeps the first ``max_shown`` bad rows; ``rejected_total`` counts them all.
    Raises :class:`AudienceError` for invalid UTF-8, a missing variable column, more than
    ``max_rows`` data rows or ``max_bytes`` bytes.
    """

    def __init__(
        self,
        variables: Sequence[str],
        region: str,
        *,
        max_rows: int,
        max_bytes: int,
        max_shown: int = MAX_REJECTED_SHOWN,
    ) -> None:
        self.variables = list(variables)
        self.region = region
        self.max_rows, self.max_bytes, self.max_shown = max_rows, max_bytes, max_shown
        self.rejected: list[Rejected] = []
        self.rejected_total = 0
        self.rows = 0  # data rows seen (accepted or rejected)
        self.lines = 0  # physical lines consumed
        self._bytes = 0
        self._tail = b""
        self._delimiter: str | None = None
        self._columns: list[int] | None = None  # where each declared variable is

    async def records(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[Record]:
        """The records of the whole stream, parsed chunk by chunk."""
        async for chunk in chunks:
            self._bytes += len(chunk)
            if self._bytes > self.max_bytes:
                raise AudienceError(
                    413, "audience_too_large", f"the audience exceeds {self.max_bytes} bytes"
                )
            for record in self.feed(chunk):
                yield record
        for record in self.finish():
            yield record

    def feed(self, chunk: bytes) -> list[Record]:
        """Records of the complete lines now available; a partial last line waits."""
        data = self._tail + chunk
        cut = data.rfind(b"\n") + 1
        self._tail = data[cut:]
        return self._parse(data[:cut]) if cut else []

    def finish(self) -> list[Record]:
        """Records of the last line (a file need not end with a newline)."""
        data, self._tail = self._tail, b""
        records = self._parse(data + b"\n") if data.strip() else []
        if self.rows == 0:
            raise AudienceError(400, "empty_audience", "the file has no data rows")
        return records

    def _parse(self, data: bytes) -> list[Record]:
        text = self._decode(data)
        lines = text.split("\n")
        lines.pop()  # the empty string after the final newline
        base = self.lines
        self.lines += len(lines)
        if self._delimiter is None:
            lines, base = self._start(lines, base)
        return self._rows(lines, base)

    def _decode(self, data: bytes) -> str:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = self.lines + data.count(b"\n", 0, exc.start) + 1
            raise AudienceError(
                400,
                "invalid_encoding",
                f"line {line} is not valid UTF-8; save the file as UTF-8 (CSV UTF-8)",
                {"line": line},
            ) from None
        return text[1:] if self.lines == 0 and text.startswith("\ufeff") else text

    def _start(self, lines: list[str], base: int) -> tuple[list[str], int]:
        """On the first non-blank line: sniff the delimiter, read a header if there is one."""
        skipped = 0
        while skipped < len(lines) and not lines[skipped].strip():
            skipped += 1
        if skipped == len(lines):
            return [], base + skipped
        first = lines[skipped]
        self._delimiter = max(",;\t", key=first.count) if any(d in first for d in ",;\t") else ","
        try:
            cells = next(csv.reader([first], delimiter=self._delimiter), [""])
        except csv.Error:
            # A first line the csv module cannot read (a bare CR in it): split it plainly to
            # tell a header from a number; as a data line, _rows rejects it with a reason.
            # (Found by tests/reliability/test_csv_fuzz.py: it was an unhandled 500.)
            cells = first.split(self._delimiter)
        if cells and cells[0].translate(_SEPARATORS).isdigit():
            self._columns = self._positional()
            return lines[skipped:], base + skipped
        self._columns = self._from_header([c.strip().lower() for c in cells])
        return lines[skipped + 1 :], base + skipped + 1

    def _positional(self) -> list[int]:
        return list(range(1, len(self.variables) + 1))

    def _from_header(self, header: list[str]) -> list[int]:
        missing = [v for v in self.variables if v not in header[1:]]
        if missing:
            raise AudienceError(
                400,
                "missing_columns",
                f"the header lacks the column(s) {', '.join(missing)} the texts use",
                {"missing": missing, "header": header},
            )
        return [header.index(v, 1) for v in self.variables]

    def _rows(self, lines: list[str], base: int) -> list[Record]:
        """Parse ``lines`` (the first is line ``base + 1``); a csv.Error rejects one line
        and parsing resumes after it."""
        records: list[Record] = []
        if any("\x00" in line for line in lines):
            # PostgreSQL text cannot hold NUL: a value with one made COPY fail, a 500 for the
            # whole upload (tests/reliability/test_csv_fuzz.py). Reject just that line; it is
            # blanked, not removed, so the line numbers of the others stay right.
            lines = list(lines)
            for i, line in enumerate(lines):
                if "\x00" in line:
                    self._reject(base + i + 1, line.replace("\x00", ""), "contains a NUL character")
                    lines[i] = ""
        while lines:
            reader = csv.reader(lines, delimiter=self._delimiter or ",")
            try:
                self._read(reader, base, records)
                break
            except csv.Error as exc:
                consumed = reader.line_num
                self._reject(base + consumed, lines[consumed - 1], f"malformed CSV: {exc}")
                lines, base = lines[consumed:], base + consumed
        return records

    def _read(self, reader: _csv.Reader, base: int, records: list[Record]) -> None:
        # The hot loop: one pass, no per-row function calls beyond normalise().
        columns, region, append = self._columns or [], self.region, records.append
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # a blank line is not a row
            self.rows += 1
            if self.rows > self.max_rows:
                raise AudienceError(
                    400, "too_many_rows", f"the audience exceeds {self.max_rows} rows"
                )
            try:
                msisdn = normalise(row[0], region)
            except InvalidMsisdn as exc:
                self._reject(base + reader.line_num, row[0], exc.reason)
                continue
            if not columns:
                append((base + reader.line_num, msisdn, None))
                continue
            values = [row[i].strip() for i in columns if i < len(row)]
            if len(values) == len(columns) and all(values):
                append((base + reader.line_num, msisdn, values))
            else:
                self._reject(base + reader.line_num, row[0], self._why_bad(values))

    def _why_bad(self, values: list[str]) -> str:
        if len(values) < len(self.variables):
            return f"missing column {self.variables[len(values)]}"
        return f"empty value for {self.variables[values.index('')]}"

    def _reject(self, line: int, value: str, reason: str) -> None:
        self.rejected_total += 1
        if len(self.rejected) < self.max_shown:
            self.rejected.append(Rejected(line, value.strip()[:64], reason))


async def upload_audience(
    repository: CampaignRepository,
    campaign_id: int,
    chunks: AsyncIterable[bytes],
    *,
    region: str,
    max_rows: int,
    max_bytes: int,
) -> AudienceResult:
    """Parse ``chunks`` as the campaign's audience and queue its good rows, in one
    transaction (see the module docstring). For the HTTP API and the CLI alike.

    Raises CampaignNotFound, TransitionRefused (the campaign is running or finished) or
    :class:`AudienceError`; in every case nothing was written.
    """
    started = time.perf_counter()
    async with repository.audience_load(campaign_id) as load:
        parser = AudienceParser(
            load.campaign.variables, region, max_rows=max_rows, max_bytes=max_bytes
        )
        copied = await load.copy(parser.records(chunks))
        copied_at = time.perf_counter()
        queued = await load.queue()
    finished = time.perf_counter()
    return AudienceResult(
        accepted=queued,
        duplicates=copied - queued,
        rejected_total=parser.rejected_total,
        rejected=parser.rejected,
        lines=parser.lines,
        copy_seconds=copied_at - started,
        queue_seconds=finished - copied_at,
    )


async def file_chunks(path: str, size: int = 1 << 16) -> AsyncIterator[bytes]:
    """Chunks of a local file, for the CLI (blocking reads of 64 KiB are short)."""
    with open(path, "rb") as fh:  # noqa: ASYNC230 - small sequential reads
        while chunk := fh.read(size):
            yield chunk
