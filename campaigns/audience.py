"""Audience CSV: parsed as it streams in, bulk-loaded with COPY, all in one transaction.

The file: first column the msisdn (any common written form, normalised to E.164 digits),
further columns the campaign's variables. A header row is optional: when the first cell of
the first row is not a number, that row names the columns (matched to the declared
variables case-insensitively, extra columns ignored); without one, the columns after the
msisdn are the declared variables in declared order. Bytes, lines and fields are read by
:mod:`campaigns.csvstream` (UTF-8 with or without BOM, LF, CRLF or CR, ``,`` ``;`` or tab,
quoted fields; a row's line is where its record starts).

Bad rows (invalid number, missing or empty variable, a NUL) are reported with their line
number and skipped; duplicates (within the file, or already in the campaign) are counted
and skipped; a file that is not UTF-8, too large, with a line too long or too many rows is
refused as a whole (:class:`~campaigns.csvstream.InputRefused`) and nothing of it stays.
Memory stays flat whatever the file's size: chunks are parsed as they arrive, COPYed and
queued a batch at a time (the database queues one batch while the next is parsed), and
duplicates are found by the database.

The parser writes COPY text (:class:`~campaigns.repository.CopyRows`), not Python rows.
Blocks of plain lines whose numbers are all written canonically (``+7…``, ``8…``, ``7…``
digits of a mobile range, :func:`~dispatcher.kernel.msisdn.canonical_forms`) and whose
variables need no trimming or escaping are rewritten a block at a time by regular
expressions with constant replacements — no Python code per row; any other block is read
row by row with :func:`~dispatcher.kernel.msisdn.normalise`. The two agree (a property test
compares them on generated files).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence

from campaigns.csvstream import CsvReader, InputRefused, PlainLines, Row, Rows, is_header
from campaigns.models import AudienceResult, Rejected
from campaigns.repository import CampaignRepository, CopyRows, copy_rows
from dispatcher.kernel.msisdn import CanonicalForms, InvalidMsisdn, canonical_forms, normalise

MAX_REJECTED_SHOWN = 1000


class _Canonical:
    """Whole blocks of plain lines at C speed, with no Python code per row (the regular
    expressions' replacements are constant strings): a block whose every line has its number
    in a canonical form (:class:`~dispatcher.kernel.msisdn.CanonicalForms`) and exactly the
    declared variables after it, none empty, none with white space at either end (as
    ``str.strip()`` sees it), a backslash, a quote or a tab, is rewritten into COPY text;
    any other block goes row by row. With no variables, columns after the number are
    ignored, as row by row."""

    def __init__(self, forms: CanonicalForms, variables: int, delimiter: str) -> None:
        d = re.escape(delimiter)
        edge = rf'[^\s{d}\\"\x00]'
        inner = rf'[^{d}\\"\x00\t\n]'
        value = rf"{edge}(?:{inner}*{edge})?"
        if variables:
            line = forms.number + "".join(d + value for _ in range(variables))
        else:
            line = rf"{forms.number}(?:{d}[^\n]*)?"
        self.variables, self.delimiter = variables, delimiter
        # Each pattern starts with a literal, which the regex engine searches for (a pattern
        # starting with a lookbehind or ^ is tried at every character: ~30% slower).
        self.line = re.compile(rf"\n{line}(?=\n)")
        # The written prefix (after a line break) becomes the calling code: "\n" + normal form.
        self.prefix = re.compile(rf"\n{forms.prefix}(?={forms.national}(?:{d}|\n))")
        self.code = "\n" + forms.code
        # After each number: the first delimiter, once all are '","' (the array's commas).
        self.first = re.compile(rf'","(?<=\n\d{{{forms.length}}}",")')
        self.rest = re.compile(rf"{d}[^\n]*")  # columns after the number (no variables)

    def block(self, lines: list[str]) -> str | None:
        """The block's COPY text, or None when a line is not canonical."""
        text = "\n" + "\n".join(lines) + "\n"
        if self.line.subn("", text)[1] != len(lines):
            return None
        text = self.prefix.sub(self.code, text)
        if not self.variables:
            return self.rest.sub("", text)[1:]
        text = self.first.sub('\t{"', text.replace(self.delimiter, '","'))
        return text.replace("\n", '"}\n')[3:]


class AudienceParser:
    """Turns byte chunks into :class:`CopyRows` of the accepted rows.

    ``rejected`` keeps the first ``max_shown`` bad rows; ``rejected_total`` counts them all.
    Raises :class:`~campaigns.csvstream.InputRefused` for what the reader refuses, a missing
    variable column, more than ``max_rows`` data rows, or no data row at all.
    """

    def __init__(
        self,
        variables: Sequence[str],
        region: str,
        *,
        max_rows: int,
        max_bytes: int,
        max_shown: int = MAX_REJECTED_SHOWN,
        fast: bool = True,
    ) -> None:
        self.variables = list(variables)
        self.region = region
        self.max_rows, self.max_shown = max_rows, max_shown
        self.reader = CsvReader("audience", max_bytes=max_bytes)
        self.rejected: list[Rejected] = []
        self.rejected_total = 0
        self.rows = 0  # data rows seen (accepted or rejected)
        self.canonical_rows = 0  # of which accepted by the block fast path
        self._columns: list[int] | None = None  # where each declared variable is
        self._forms = canonical_forms(region) if fast else None  # False: row by row
        self._canonical: _Canonical | None = None

    @property
    def lines(self) -> int:
        """Physical lines read."""
        return self.reader.lines

    async def records(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[CopyRows]:
        """The accepted rows of the whole stream, parsed chunk by chunk."""
        async for rows in self.reader.rows(chunks):
            copied = self._records(rows)
            if copied.rows:
                yield copied
        self._check_not_empty()

    def feed(self, chunk: bytes) -> CopyRows:
        """Accepted rows of the rows ``chunk`` completes (for callers without a stream)."""
        copied = self._records(self.reader.feed(chunk))
        if self.reader.refused is not None:
            raise self.reader.refused
        return copied

    def finish(self) -> CopyRows:
        """Accepted rows of the end of the file (it need not end with a line break)."""
        copied = self._records(self.reader.close())
        if self.reader.refused is not None:
            raise self.reader.refused
        self._check_not_empty()
        return copied

    def _check_not_empty(self) -> None:
        if self.rows == 0:
            raise InputRefused("the file has no data rows", code="empty_audience")

    def _records(self, rows: Rows) -> CopyRows:
        texts: list[str] = []
        accepted = 0
        for part in rows.parts:
            if self._columns is None:
                part = self._start(part)
            if isinstance(part, PlainLines) and part.lines:
                fast = self._fast(part.delimiter)
                text = fast.block(part.lines) if fast is not None else None
                if text is not None:
                    self._count(len(part.lines))
                    self.canonical_rows += len(part.lines)
                    texts.append(text)
                    accepted += len(part.lines)
                    continue
            records: list[tuple[str, list[str] | None]] = []
            self._read(part, records)
            if records:
                copied = copy_rows(records)
                texts.append(copied.text)
                accepted += copied.rows
        return CopyRows("".join(texts), accepted)

    def _fast(self, delimiter: str) -> _Canonical | None:
        """The block fast path, when the region has canonical forms and the variables are
        the columns after the number, in declared order."""
        if self._forms is None or self._columns != list(range(1, len(self.variables) + 1)):
            return None
        if self._canonical is None:
            self._canonical = _Canonical(self._forms, len(self.variables), delimiter)
        return self._canonical

    def _start(self, part: Iterable[Row]) -> Iterable[Row]:
        """On the first row: read the header if there is one; returns the rest of ``part``."""
        if isinstance(part, PlainLines):
            first = part.lines[0].split(part.delimiter)
            rest: Iterable[Row] = PlainLines(part.first + 1, part.lines[1:], part.delimiter)
        else:
            rows = iter(part)
            first = next(rows)[1]
            rest = list(rows)
        if not is_header(first):
            self._columns = list(range(1, len(self.variables) + 1))
            return part
        self._columns = self._from_header([c.strip().lower() for c in first])
        return rest

    def _from_header(self, header: list[str]) -> list[int]:
        missing = [v for v in self.variables if v not in header[1:]]
        if missing:
            raise InputRefused(
                f"the header lacks the column(s) {', '.join(missing)} the texts use",
                {"missing": missing, "header": header},
                code="missing_columns",
            )
        return [header.index(v, 1) for v in self.variables]

    def _count(self, rows: int) -> None:
        self.rows += rows
        if self.rows > self.max_rows:
            raise InputRefused(f"the audience exceeds {self.max_rows} rows", code="too_many_rows")

    def _read(self, rows: Iterable[Row], records: list[tuple[str, list[str] | None]]) -> None:
        # Row by row: what the block fast path does not take. No per-row function calls
        # beyond normalise().
        columns, region, append = self._columns or [], self.region, records.append
        # PostgreSQL text cannot hold NUL: a value with one made COPY fail, a 500 for the
        # whole upload (tests/reliability/test_csv_fuzz.py). Rows are checked only then.
        nul = self.reader.holds_nul
        for line, row in rows:
            self._count(1)
            if nul and any("\x00" in cell for cell in row):
                self._reject(line, row[0].replace("\x00", ""), "contains a NUL character")
                continue
            try:
                msisdn = normalise(row[0], region)
            except InvalidMsisdn as exc:
                self._reject(line, row[0], exc.reason)
                continue
            if not columns:
                append((msisdn, None))
                continue
            values = [row[i].strip() for i in columns if i < len(row)]
            if len(values) == len(columns) and all(values):
                append((msisdn, values))
            else:
                self._reject(line, row[0], self._why_bad(values))

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
    :class:`~campaigns.csvstream.InputRefused`; in every case nothing was written.
    """
    started = time.perf_counter()
    async with repository.audience_load(campaign_id) as load:
        parser = AudienceParser(
            load.campaign.variables, region, max_rows=max_rows, max_bytes=max_bytes
        )
        copied, queued = await load.load(parser.records(chunks))
    finished = time.perf_counter()
    copied_at = load.parsed_at or finished
    return AudienceResult(
        accepted=queued,
        duplicates=copied - queued,
        rejected_total=parser.rejected_total,
        rejected=parser.rejected,
        lines=parser.lines,
        copy_seconds=copied_at - started,  # queueing all but the last batch overlaps it
        queue_seconds=finished - copied_at,
    )
