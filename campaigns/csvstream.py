"""One streaming CSV reader for every upload: campaign audiences and subscriber imports.

Bytes arrive in chunks of any size, cut anywhere (an HTTP body, a multipart part, a local
file); :class:`CsvReader` turns them into ``(line, fields)`` rows exactly as the csv module
reads the whole text opened with ``newline=""``:

- UTF-8; a BOM at the start is skipped. A byte that is not UTF-8 refuses the input, naming
  its line (:class:`NotUtf8`).
- A line ends with LF, CRLF or a bare CR. A quoted field may hold line breaks: its record
  then spans lines, and the row's line is the one where the record starts.
- ``,`` ``;`` or tab delimit, sniffed from the first non-blank line (the one it holds most).
- A blank line is not a row.

Bounded whatever the sender does: at most ``max_bytes`` in all (:class:`TooLarge`), and at
most ``max_line`` characters in one record, that is a line, or the lines of a record whose
quoted field holds line breaks (:class:`LineTooLong`; a quote never closed ends there too).
The work is linear in the input: each character is decoded, split and parsed once; a line
arriving in many chunks waits as a list of pieces, joined once when it ends; a record left
open by a quote waits as its lines, and a new line is scanned alone to learn whether it
closes it. ``scanned`` counts the characters handled, so tests check this without a clock.

Whatever the chunking, the rows and the refusal (with its line) are the same, and a refusal
comes after every row before it: a caller's own checks on those rows (a header, a row
limit) see them first.

This module imports nothing of the service (``dispatcher/``): the campaign domain and the
program both use it, and neither depends on the other for it.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any

#: The most characters one record may hold (64 KiB): far above any audience or import row
#: (a number and a few variables), small enough that a line that never ends costs nothing.
MAX_LINE = 64 * 1024
DELIMITERS = ",;\t"

Row = tuple[int, list[str]]
"""A row: the line where its record starts, and its fields."""

_SEPARATORS = str.maketrans("", "", " -().\t+")
# Where a line ends: after LF, and after a CR not followed by LF (a CRLF ends after its LF).
_LINE_ENDS = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")


class InputRefused(ValueError):
    """Input refused as a whole; nothing of it is kept. ``code`` is stable for programs,
    ``message`` tells people what and where (a line), ``details`` holds it as data and
    ``hint`` (if any) what to do about it. The HTTP API and the CLI each map this family
    in one place."""

    code = "invalid_input"
    hint = ""

    def __init__(
        self, message: str, details: dict[str, Any] | None = None, *, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if code is not None:
            self.code = code

    @property
    def explained(self) -> str:
        """The message with its hint, for a response or a page."""
        return f"{self.message}; {self.hint}" if self.hint else self.message


class NotUtf8(InputRefused):
    """A byte that is not UTF-8, on ``line``."""

    code = "invalid_encoding"
    hint = "save the file as UTF-8 (CSV UTF-8)"

    def __init__(self, line: int) -> None:
        super().__init__(f"line {line} is not valid UTF-8", {"line": line})
        self.line = line


class TooLarge(InputRefused):
    """More than ``limit`` bytes (HTTP 413); ``subject`` names the upload in the code."""

    def __init__(self, subject: str, limit: int) -> None:
        super().__init__(
            f"the {subject} exceeds {limit} bytes", {"limit": limit}, code=f"{subject}_too_large"
        )
        self.limit = limit


class LineTooLong(InputRefused):
    """The record starting on ``line`` holds more than ``limit`` characters."""

    code = "line_too_long"
    hint = "no row needs that much: look for a quote that is never closed"

    def __init__(self, line: int, limit: int) -> None:
        super().__init__(
            f"line {line} is longer than {limit} characters", {"line": line, "limit": limit}
        )
        self.line = line


class Malformed(InputRefused):
    """A record the csv module cannot read, starting on ``line``."""

    code = "malformed_csv"

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line} is not CSV: {reason}", {"line": line})
        self.line = line


def is_header(fields: list[str]) -> bool:
    """Whether a first row names the columns: its first cell is not a number (in any
    common written form)."""
    return not fields[0].translate(_SEPARATORS).isdigit()


class Rows:
    """The rows one call completed, in order: iterating gives :data:`Row` tuples. Lines that
    are one record each (no quote, none blank) are parsed as they are iterated, so a batch
    holds its lines rather than a list per row (fewer objects for the garbage collector)."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[Iterable[Row]] = []

    def __iter__(self) -> Iterator[Row]:
        return itertools.chain.from_iterable(self._parts)

    def __bool__(self) -> bool:
        return bool(self._parts)

    @property
    def parts(self) -> list[Iterable[Row]]:
        """The rows in pieces, in order: :class:`PlainLines` (lines that are one record each,
        for a caller that reads such lines in bulk) or lists of rows."""
        return self._parts

    def _add_lines(self, first: int, lines: list[str], delimiter: str) -> None:
        self._parts.append(PlainLines(first, lines, delimiter))

    def _add(self, rows: list[Row]) -> None:
        if rows:
            self._parts.append(rows)


class PlainLines:
    """Lines ``first``, ``first + 1``, … each one record: no quote, no line end, none blank
    or only white space. Its fields are exactly ``line.split(delimiter)`` (without a quote
    the csv module splits at every delimiter); iterating parses them as :data:`Row` tuples.
    """

    __slots__ = ("delimiter", "first", "lines")

    def __init__(self, first: int, lines: list[str], delimiter: str) -> None:
        self.first, self.lines, self.delimiter = first, lines, delimiter

    def __iter__(self) -> Iterator[Row]:
        # One row per line: no line break is left in them, and no field can pass the csv
        # module's field_size_limit (128 Ki), as a line holds at most max_line characters.
        return zip(itertools.count(self.first), csv.reader(self.lines, delimiter=self.delimiter))


class CsvReader:
    """Byte chunks → :data:`Row` batches; see the module docstring.

    :meth:`feed` and :meth:`close` return the rows they complete. When the input is refused,
    the rows before the refusal are returned, the refusal is kept in ``refused`` and any
    later call raises it; :meth:`rows` does all this for an async stream of chunks.
    """

    def __init__(self, subject: str, *, max_bytes: int, max_line: int = MAX_LINE) -> None:
        self.subject, self.max_bytes, self.max_line = subject, max_bytes, max_line
        self.lines = 0  # physical lines read (ended, and a last one without an end)
        self.bytes = 0
        self.scanned = 0  # characters decoded, split, joined or scanned for quotes
        self.delimiter: str | None = None
        self.holds_nul = False  # a NUL was read (PostgreSQL text cannot store one)
        self.refused: InputRefused | None = None
        self._undecoded = b""  # the start of a character cut by the chunk's end
        self._started = False
        self._cr = False  # the text so far ends with a CR: a line end, once not CRLF
        self._partial: list[str] = []  # the line being read, in pieces
        self._partial_len = 0
        self._partial_quoted = False  # a piece came with quotes: not a plain line
        self._record: list[str] = []  # ended lines of a record a quoted field keeps open
        self._record_len = 0
        self._record_line = 0
        self._quotes = _QuoteScan(",")

    async def rows(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[Rows]:
        """Batches of rows as ``chunks`` arrive; a refusal is raised after its rows."""
        async for chunk in chunks:
            batch = self.feed(chunk)
            if batch:
                yield batch
            if self.refused is not None:
                raise self.refused
        batch = self.close()
        if batch:
            yield batch
        if self.refused is not None:
            raise self.refused

    def feed(self, chunk: bytes) -> Rows:
        """The rows ``chunk`` completes (see the class docstring for a refusal)."""
        if self.refused is not None:
            raise self.refused
        rows = Rows()
        room = self.max_bytes - self.bytes
        self.bytes += len(chunk)
        try:
            self._decode(chunk if len(chunk) <= room else chunk[:room], rows, final=False)
            if len(chunk) > room:
                raise TooLarge(self.subject, self.max_bytes)
        except InputRefused as exc:
            self.refused = exc
        return rows

    def close(self) -> Rows:
        """The rows of the end: the last line need not end with a line break, and a record
        a quote leaves open ends here, as the csv module reads it."""
        if self.refused is not None:
            raise self.refused
        rows = Rows()
        try:
            self._decode(b"", rows, final=True)
            last = "".join(self._partial)
            self._partial, self._partial_len, self._partial_quoted = [], 0, False
            if last:
                self.lines += 1
                if not self._record:
                    self._record_line = self.lines
                self._record.append(last)
                if self.delimiter is None:
                    self._sniff([last])  # blank or not, it is the only line left
            self._parse(self._record, self._record_line, rows)
            self._record = []
        except InputRefused as exc:
            self.refused = exc
        return rows

    # ------------------------------------------------------------------ bytes → text

    def _decode(self, data: bytes, rows: Rows, *, final: bool) -> None:
        if self._undecoded:
            data = self._undecoded + data  # at most 3 bytes more than the chunk
        try:
            text, used = codecs.utf_8_decode(data, "strict", final)
        except UnicodeDecodeError as exc:
            # The text before the bad byte counts (rows, lines), then the byte's line.
            self._text(codecs.utf_8_decode(data[: exc.start], "strict", True)[0], rows, more=False)
            raise NotUtf8(self.lines + 1) from None
        self._undecoded = data[used:]
        self._text(text, rows, more=not final)

    def _text(self, text: str, rows: Rows, *, more: bool) -> None:
        """Split ``text`` into lines; the ended ones are parsed, the last one waits."""
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        self.scanned += len(text)
        self.holds_nul = self.holds_nul or "\x00" in text
        if self._cr:
            text, self._cr = "\r" + text, False
        if more and text.endswith("\r"):  # CR or CRLF: the next chunk tells
            text, self._cr = text[:-1], True
        if not text:
            return
        # Without a quote (nor one open) every line is a record: split plainly, ends dropped.
        plain = not (self._record or self._partial_quoted or '"' in text)
        if not plain:
            lines = _LINE_ENDS.split(text)  # each line keeps its end (quoted fields hold them)
        elif "\r" in text:
            lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        else:
            lines = text.split("\n")
        tail = lines.pop()
        if lines:
            if self._partial:
                lines[0] = "".join([*self._partial, lines[0]])
                self.scanned += len(lines[0])
                self._partial, self._partial_len, self._partial_quoted = [], 0, False
            if self.delimiter is None:
                lines = self._skip_blank(lines)
            if lines and plain:
                self._plain(lines, rows)
            elif lines:
                self._quoted(lines, rows)
        if tail:
            self._partial.append(tail)
            self._partial_len += len(tail)
            self._partial_quoted = self._partial_quoted or not plain
            if self._record_len + self._partial_len > self.max_line:
                raise LineTooLong(
                    self._record_line if self._record else self.lines + 1, self.max_line
                )

    def _skip_blank(self, lines: list[str]) -> list[str]:
        """Blank lines before the first row are no rows (they still count and are bounded);
        the first non-blank line sets the delimiter."""
        blank = self._sniff(lines)
        for at, line in enumerate(lines[:blank]):
            if len(line.rstrip("\r\n")) > self.max_line:
                raise LineTooLong(self.lines + at + 1, self.max_line)
        self.lines += blank
        return lines[blank:]

    def _sniff(self, lines: list[str]) -> int:
        """Set the delimiter: the one the first non-blank line holds most (``,`` if none).
        Returns how many blank lines precede that line."""
        for at, line in enumerate(lines):
            if line.strip():
                found = [d for d in DELIMITERS if d in line]
                self.delimiter = max(found, key=line.count) if found else ","
                self._quotes = _QuoteScan(self.delimiter)
                return at
        return len(lines)

    # ------------------------------------------------------------------ lines → rows

    def _plain(self, lines: list[str], rows: Rows) -> None:
        """Lines without ends and without quotes: each one is a record."""
        first = self.lines + 1
        self.lines += len(lines)
        if max(map(len, lines)) > self.max_line:
            at = next(i for i, line in enumerate(lines) if len(line) > self.max_line)
            self._parse(lines[:at], first, rows, plain=True)
            raise LineTooLong(first + at, self.max_line)
        self._parse(lines, first, rows, plain=True)

    def _quoted(self, lines: list[str], rows: Rows) -> None:
        """Lines with their ends, some with quotes: records end where no quote is open."""
        batch: list[str] = []
        first = self._record_line if self._record else self.lines + 1
        for line in lines:
            self.lines += 1
            if not self._record:
                self._record_line = self.lines
            ended = self._quotes.ends_record(line, open_before=bool(self._record))
            self._record.append(line)
            self._record_len += len(line)
            size = self._record_len - (len(line) - len(line.rstrip("\r\n")) if ended else 0)
            if size > self.max_line:
                self._parse(batch, first, rows)
                raise LineTooLong(self._record_line, self.max_line)
            if ended:
                batch += self._record
                self._record, self._record_len = [], 0
        self._parse(batch, first, rows)

    def _parse(self, lines: list[str], first: int, rows: Rows, *, plain: bool = False) -> None:
        """Rows of whole records ``lines``, the first of which is line ``first``; ``plain``
        lines are one record each."""
        if not lines or self.delimiter is None:  # no delimiter yet: every line is blank
            return
        if plain and "" not in lines and not any(map(str.isspace, lines)):
            rows._add_lines(first, lines, self.delimiter)  # the hot path: parsed when read
            return
        reader = csv.reader(lines, delimiter=self.delimiter)
        parsed: list[Row] = []
        line, append = first, parsed.append
        try:
            for fields in reader:
                if fields and (len(fields) > 1 or fields[0].strip()):  # a blank line: no row
                    append((line, fields))
                line = first + reader.line_num
        except csv.Error as exc:  # not expected: line ends are split off, records bounded
            rows._add(parsed)
            raise Malformed(line, str(exc)) from None
        rows._add(parsed)


class _QuoteScan:
    """Whether a line ends its record or leaves a quoted field open, decided exactly as the
    csv module does (``doublequote``, not ``strict``): a quote opens a quoted field only at
    a field's start; inside one, ``""`` is a quote and ``"`` closes it, after which the field
    runs on to the next delimiter with any quotes in it taken literally. Possessive matching:
    one pass over the line, no backtracking."""

    def __init__(self, delimiter: str) -> None:
        d = re.escape(delimiter)
        inside = r'(?:[^"]|"")*+'
        field = rf'(?:"{inside}"[^{d}]*+|[^"{d}][^{d}]*+|)'
        opens = rf'(?:{field}{d})*+"{inside}\Z'
        self._opens = re.compile(opens)  # from a record's start
        self._stays_open = re.compile(rf'{inside}(?:\Z|"[^{d}]*+{d}{opens})')  # from inside

    def ends_record(self, line: str, *, open_before: bool) -> bool:
        if '"' not in line:
            return not open_before
        pattern = self._stays_open if open_before else self._opens
        return pattern.match(line) is None


async def file_chunks(path: str, size: int = 1 << 16) -> AsyncIterator[bytes]:
    """Chunks of a local file, for the CLI (blocking reads of 64 KiB are short)."""
    with open(path, "rb") as fh:  # noqa: ASYNC230 - small sequential reads
        while chunk := fh.read(size):
            yield chunk
