"""Audience CSV: parsed as it streams in, bulk-loaded with COPY, all in one transaction.

The file: first column the msisdn (any common written form, normalised to E.164 digits),
further columns the campaign's variables. A header row is optional: when the first cell of
the first row is not a number, that row names the columns (matched to the declared
variables ignoring case, spaces, ``_`` and ``-``; extra columns ignored); without one, the
columns after the msisdn are the declared variables in declared order. A
:class:`ColumnMapping` (the operator's choice) names the number's and each variable's
column instead, by header in any language or by position (:func:`resolve_columns`). Only
numbers that can receive SMS are accepted (:class:`~dispatcher.kernel.msisdn.MobileNumbers`:
a fixed-line, foreign or toll-free number is rejected with its kind). A blank cell takes its
variable's default (:func:`~campaigns.templates.fill_variables`). Every rejected row is
written to ``audience_rejections`` in the upload's transaction (:class:`RejectionLog`).
Bytes, lines and fields are read by :mod:`campaigns.csvstream` (UTF-8 with or without BOM,
LF, CRLF or CR, ``,`` ``;`` or tab, quoted fields; a row's line is where its record starts).

Bad rows (invalid or non-mobile number, a blank variable without a default, a NUL) are
reported with their line number and skipped; duplicates (within the file, or already in the
campaign) are counted and skipped; a file that is not UTF-8, too large, with a line too
long or too many rows is refused as a whole (:class:`~campaigns.csvstream.InputRefused`)
and nothing of it stays. Memory stays flat whatever the file's size: chunks are parsed as
they arrive, COPYed and queued a batch at a time (the database queues one batch while the
next is parsed), and duplicates are found by the database.

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
import tempfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO

from campaigns.csvsafe import csv_text
from campaigns.csvstream import CsvReader, InputRefused, PlainLines, Row, Rows, is_header
from campaigns.models import AudienceResult, Rejected
from campaigns.repository import CampaignRepository, CopyRows, copy_rows
from campaigns.templates import fill_variables
from dispatcher.kernel.audit import SYSTEM, Actor
from dispatcher.kernel.msisdn import (
    CanonicalForms,
    InvalidMsisdn,
    MobileNumbers,
    MobilePolicy,
    NotMobile,
    canonical_forms,
    number_in_any_country,
)

MAX_REJECTED_SHOWN = 1000


class _Canonical:
    """Whole blocks of plain lines at C speed, with no Python code per row (the regular
    expressions' replacements are constant strings): a block whose every line has its number
    in a canonical form (:class:`~dispatcher.kernel.msisdn.CanonicalForms`) and exactly the
    declared variables after it, none empty, none with white space at either end (as
    ``str.strip()`` sees it), a backslash, a quote or a tab, is rewritten into COPY text;
    any other block goes row by row. With no variables, columns after the number are
    ignored, as row by row."""

    def __init__(
        self, forms: CanonicalForms, variables: int, delimiter: str, refused: Sequence[str] = ()
    ) -> None:
        d = re.escape(delimiter)
        edge = rf'[^\s{d}\\"\x00]'
        inner = rf'[^{d}\\"\x00\t\n]'
        value = rf"{edge}(?:{inner}*{edge})?"
        # A number under a refused prefix (MobilePolicy.refused) is no canonical line: it
        # goes row by row, which rejects it. Prefixes under another calling code never match.
        national = [p[len(forms.code) :] for p in refused if p.startswith(forms.code)]
        refuse = f"(?!{'|'.join(map(re.escape, national))})" if national else ""
        number = f"{forms.prefix}{refuse}{forms.national}"
        if variables:
            line = number + "".join(d + value for _ in range(variables))
        else:
            line = rf"{number}(?:{d}[^\n]*)?"
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


def header_key(name: str) -> str:
    """A header cell as matched to a variable or a mapping: case, white space, ``_`` and
    ``-`` ignored (``" NAME "`` is ``name``, ``"First Name"`` is ``first_name``)."""
    return "".join(name.split()).replace("_", "").replace("-", "").casefold()


@dataclass(frozen=True)
class ColumnMapping:
    """Which file columns hold what, as the operator chose: ``number`` the number column
    and ``variables`` variable → column, each a header cell (matched by :func:`header_key`)
    or a 1-based column position (``"2"``). Empty: the default (the number first, headers
    named like the variables, or without a header the declared order)."""

    number: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.number is not None or bool(self.variables)

    def as_dict(self) -> dict[str, object]:
        return {"number_column": self.number, "columns": dict(self.variables)}


class UnmappedColumns(InputRefused):
    """The file's columns cannot be matched to the number and the variables: the header it
    has and what to map are in ``details`` (the console shows its mapping step for it)."""

    code = "unmapped_columns"

    def __init__(self, message: str, header: list[str], missing: list[str]) -> None:
        super().__init__(message, {"header": header, "missing": missing})
        self.header, self.missing = header, missing


def _how_to_map(missing: Sequence[str]) -> str:
    example = "&".join(f"column.{v}=<header>" for v in missing) or "number_column=<header>"
    flags = " ".join(f"--map {v}=<header>" for v in missing) or "--number-column <header>"
    return (
        f"map the columns: in the console choose them, in the API add ?{example}, "
        f"in the CLI {flags}"
    )


def resolve_columns(
    first: list[str],
    variables: Sequence[str],
    mapping: ColumnMapping,
    defaults: Mapping[str, str],
) -> tuple[bool, int, list[int | None]]:
    """(whether ``first`` is a header, the number's column, each variable's column or None
    when the file has none and the variable's default serves). Raises
    :class:`UnmappedColumns` naming the header found and how to map it."""
    header = is_header(first)
    shown = [cell.strip() for cell in first] if header else []
    keys = [header_key(cell) for cell in first] if header else []

    def find(wanted: str, what: str) -> int:
        text = wanted.strip()
        if text.isdecimal() and 1 <= int(text) <= max(len(first), 1):
            return int(text) - 1
        if header_key(text) in keys:
            return keys.index(header_key(text))
        found = ", ".join(shown) if header else "no header row"
        raise UnmappedColumns(
            f"no column '{text}' for {what} in the file (found: {found})", shown, [what]
        )

    number = find(mapping.number, "the number") if mapping.number is not None else 0
    columns: list[int | None] = []
    missing: list[str] = []
    for position, name in enumerate(variables, 1):
        if name in mapping.variables and mapping.variables[name].strip():
            columns.append(find(mapping.variables[name], name))
        elif not header and not mapping:
            columns.append(position)  # no header: the declared order after the number
        elif header and (found := _other_than(keys, header_key(name), number)) is not None:
            columns.append(found)
        elif name in defaults:
            columns.append(None)  # every row takes the default
        else:
            missing.append(name)
            columns.append(None)
    defaulted = [
        n for n, c in zip(variables, columns, strict=True) if c is None and n not in missing
    ]
    used = {number, *columns}
    unused = [cell for i, cell in enumerate(shown) if i not in used and cell]
    if header and not mapping and defaulted and unused and not missing:
        # A column the file has may be the one meant for a variable that would otherwise
        # take its default for every row: ask rather than guess.
        names, extra = ", ".join(defaulted), ", ".join(unused)
        raise UnmappedColumns(
            f"the file has no column named {names} (which would take its default) but has "
            f"column(s) {extra} (found: {', '.join(shown)}); {_how_to_map(defaulted)}, "
            "or map the number column alone to keep the defaults",
            shown,
            defaulted,
        )
    if missing:
        seen = ", ".join(shown) if header else "no header row"
        names = ", ".join(missing)
        raise UnmappedColumns(
            f"the file has no column for {names} (found: {seen}); {_how_to_map(missing)}",
            shown,
            missing,
        )
    return header, number, columns


def _other_than(keys: list[str], key: str, number: int) -> int | None:
    """The first column named ``key`` that is not the number's."""
    return next((i for i, k in enumerate(keys) if k == key and i != number), None)


class RejectionLog:
    """Every rejected row of an upload as COPY text for ``audience_rejections`` (campaign,
    upload, line, value, number, reason), kept in a temporary file (in memory up to 1 MiB):
    all of them, however many, without holding them as objects."""

    MAX_VALUE = 256  # characters of a rejected cell kept

    def __init__(self, campaign_id: int = 0, upload_no: int = 0, region: str = "KZ") -> None:
        self.prefix = f"{campaign_id}\t{upload_no}\t"
        self.region = region
        self.count = 0
        # Closed by close() (upload_audience's finally): it outlives any one block.
        self.file: IO[str] = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            1 << 20, mode="w+", encoding="utf-8"
        )

    def add(self, line: int, value: str, number: str | None, reason: str) -> None:
        cell = value.strip()[: self.MAX_VALUE].translate(_COPY_TEXT)
        written = r"\N" if number is None else number
        self.file.write(f"{self.prefix}{line}\t{cell}\t{written}\t{reason.translate(_COPY_TEXT)}\n")
        self.count += 1

    async def chunks(self) -> AsyncIterator[bytes]:
        self.file.seek(0)
        while text := self.file.read(1 << 16):
            yield text.encode()

    def close(self) -> None:
        self.file.close()


_COPY_TEXT = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": ""})


class AudienceParser:
    """Turns byte chunks into :class:`CopyRows` of the accepted rows.

    ``rejected`` keeps the first ``max_shown`` bad rows; ``rejected_total`` counts them all,
    and ``log`` (a :class:`RejectionLog`) receives every one. Numbers are read under
    ``policy`` (:class:`~dispatcher.kernel.msisdn.MobilePolicy`: mobile numbers of the
    region by default); ``mapping`` says which columns hold what (:class:`ColumnMapping`);
    a blank (or absent) cell takes its variable's ``defaults`` value ("" for an optional
    one), and rejects the row only when the variable has none.
    Raises :class:`~campaigns.csvstream.InputRefused` for what the reader refuses, columns
    that cannot be matched (:class:`UnmappedColumns`), more than ``max_rows`` data rows, or
    no data row at all.
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
        policy: MobilePolicy | None = None,
        mapping: ColumnMapping | None = None,
        defaults: Mapping[str, str] | None = None,
        log: RejectionLog | None = None,
    ) -> None:
        self.variables = list(variables)
        self.region = region
        self.policy = policy or MobilePolicy(region)
        self.mapping = mapping or ColumnMapping()
        self.defaults = dict(defaults or {})
        self.log = log
        self.max_rows, self.max_shown = max_rows, max_shown
        self.reader = CsvReader("audience", max_bytes=max_bytes)
        self.rejected: list[Rejected] = []
        self.rejected_total = 0
        self.rows = 0  # data rows seen (accepted or rejected)
        self.canonical_rows = 0  # of which accepted by the block fast path
        self.header: list[str] | None = None  # the header row, if the file has one
        self._number = 0  # the number's column
        self._columns: list[int | None] | None = None  # where each declared variable is
        self._numbers = MobileNumbers(self.policy)
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
        """The block fast path, when the region has canonical forms, the number is the first
        column and the variables the columns after it, in declared order."""
        if (
            self._forms is None
            or self._number != 0
            or self._columns != list(range(1, len(self.variables) + 1))
        ):
            return None
        if self._canonical is None:
            self._canonical = _Canonical(
                self._forms, len(self.variables), delimiter, self.policy.refused
            )
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
        header, self._number, self._columns = resolve_columns(
            first, self.variables, self.mapping, self.defaults
        )
        if not header:
            return part
        self.header = [cell.strip() for cell in first]
        return rest

    def _count(self, rows: int) -> None:
        self.rows += rows
        if self.rows > self.max_rows:
            raise InputRefused(f"the audience exceeds {self.max_rows} rows", code="too_many_rows")

    def _read(self, rows: Iterable[Row], records: list[tuple[str, list[str] | None]]) -> None:
        # Row by row: what the block fast path does not take.
        columns, at, read = self._columns or [], self._number, self._numbers
        defaults, names = self.defaults, self.variables
        append = records.append
        # PostgreSQL text cannot hold NUL: a value with one made COPY fail, a 500 for the
        # whole upload (tests/reliability/test_csv_fuzz.py). Rows are checked only then.
        nul = self.reader.holds_nul
        for line, row in rows:
            self._count(1)
            cell = row[at] if at < len(row) else ""
            if nul and any("\x00" in c for c in row):
                value = cell.replace("\x00", "")
                self._reject(line, value, "contains a NUL character", self._any(value))
                continue
            try:
                msisdn = read(cell)
            except NotMobile as exc:
                self._reject(line, cell, exc.reason, exc.msisdn)
                continue
            except InvalidMsisdn as exc:
                self._reject(line, cell, exc.reason, self._any(cell))
                continue
            if not columns:
                append((msisdn, None))
                continue
            values = [row[i].strip() if i is not None and i < len(row) else "" for i in columns]
            if all(values):
                append((msisdn, values))
                continue
            filled = fill_variables(dict(zip(names, values, strict=True)), defaults)
            if filled is None:
                self._reject(line, cell, self._why_bad(row, values), msisdn)
            else:
                append((msisdn, [filled[name] for name in names]))

    def _any(self, cell: str) -> str | None:
        return number_in_any_country(cell, self.region)

    def _why_bad(self, row: list[str], values: list[str]) -> str:
        """Why a row with a blank variable that has no default is rejected."""
        columns = self._columns or []
        for name, value, column in zip(self.variables, values, columns, strict=True):
            if value or name in self.defaults:
                continue
            if column is not None and column >= len(row):
                return f"missing column {name} (no default)"
            return f"empty value for {name} (no default)"
        return "empty value"  # pragma: no cover - fill_variables refused a blank

    def _reject(self, line: int, value: str, reason: str, number: str | None) -> None:
        self.rejected_total += 1
        if len(self.rejected) < self.max_shown:
            self.rejected.append(Rejected(line, value.strip()[:64], reason))
        if self.log is not None:
            self.log.add(line, value, number, reason)


async def read_header(chunks: AsyncIterable[bytes], max_bytes: int) -> list[str] | None:
    """The first row of a file when it is a header (its first cell is no number), else
    None (for the console's mapping step; the file's other rows are not read)."""
    reader = CsvReader("audience", max_bytes=max_bytes)
    batches = reader.rows(chunks)
    try:
        async for rows in batches:
            for _, fields in rows:
                return [cell.strip() for cell in fields] if is_header(fields) else None
    finally:
        close = getattr(batches, "aclose", None)  # an async generator: close it now
        if close is not None:
            await close()
    return None


async def upload_audience(
    repository: CampaignRepository,
    campaign_id: int,
    chunks: AsyncIterable[bytes],
    *,
    region: str,
    max_rows: int,
    max_bytes: int,
    now: datetime,
    uploaded_by: str | None = None,
    policy: MobilePolicy | None = None,
    mapping: ColumnMapping | None = None,
    actor: Actor | None = None,
    approval_required: bool = False,
) -> AudienceResult:
    """Parse ``chunks`` as the campaign's audience and queue its good rows, in one
    transaction (see the module docstring), recording the upload and every row it rejected
    (``audience_uploads``, ``audience_rejections``). For the HTTP API, the console and the
    CLI alike.

    The upload is recorded in the audit trail as ``actor``'s (by default ``uploaded_by``),
    counts only, in the same transaction; under maker-checker (``approval_required``) it
    clears the campaign's approval (:meth:`CampaignRepository.audience_load`).

    Raises CampaignNotFound, TransitionRefused (the campaign is running or finished) or
    :class:`~campaigns.csvstream.InputRefused`; in every case nothing was written.
    """
    started = time.perf_counter()
    actor = actor or (Actor(uploaded_by) if uploaded_by else SYSTEM)
    async with repository.audience_load(
        campaign_id, now, actor=actor, approval_required=approval_required
    ) as load:
        upload_no = await load.begin_upload(now, uploaded_by)
        log = RejectionLog(campaign_id, upload_no, region)
        try:
            parser = AudienceParser(
                load.campaign.variables,
                region,
                max_rows=max_rows,
                max_bytes=max_bytes,
                policy=policy or MobilePolicy(region),
                mapping=mapping,
                defaults=load.campaign.variable_defaults,
                log=log,
            )
            copied, queued = await load.load(parser.records(chunks))
            if log.count:
                await load.copy_rejections(log.chunks())
        finally:
            log.close()
        await load.finish_upload(upload_no, parser.lines, queued, copied - queued, log.count)
        await load.audited(
            now,
            {
                "upload_no": upload_no,
                "lines": parser.lines,
                "accepted": queued,
                "duplicates": copied - queued,
                "rejected": log.count,
            },
        )
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
        upload_no=upload_no,
        campaign_id=campaign_id,
    )


def mapping_from_fields(fields: Mapping[str, str]) -> ColumnMapping:
    """A :class:`ColumnMapping` from request fields (a query string or form fields):
    ``number_column=Телефон`` and ``column.<variable>=<header>``; blank fields are absent."""
    number = fields.get("number_column", "").strip() or None
    variables = {
        key.removeprefix("column."): value.strip()
        for key, value in fields.items()
        if key.startswith("column.") and value.strip()
    }
    return ColumnMapping(number, variables)


REJECTED_CSV_HEADER = ("upload", "line", "value", "reason")


async def rejected_csv(
    repository: CampaignRepository, campaign_id: int, upload_no: int | None
) -> AsyncIterator[str]:
    """Every rejected row of the campaign's uploads (or of upload ``upload_no``) as CSV text
    pieces: a header, then ``upload, line, value, reason`` per row, each cell safe for a
    spreadsheet (:mod:`campaigns.csvsafe`)."""
    yield csv_text([REJECTED_CSV_HEADER])
    async for rows in repository.rejected_rows(campaign_id, upload_no):
        yield csv_text((r["upload_no"], r["line"], r["value"], r["reason"]) for r in rows)
