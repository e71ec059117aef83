"""The one streaming CSV reader (campaigns/csvstream.py) alone: rows as the csv module reads
them, the same rows and refusal however the bytes are split, and work linear in the input."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.csvstream import (
    MAX_LINE,
    CsvReader,
    InputRefused,
    LineTooLong,
    Malformed,
    NotUtf8,
    Row,
    TooLarge,
)
from tests.reliability.test_csv_fuzz import csv_bodies, import_bodies

Outcome = tuple[list[Row], tuple[str, object] | None]


def read(data: bytes, cuts: Sequence[int] = (), **limits: int) -> tuple[Outcome, CsvReader]:
    """Feed ``data`` cut at ``cuts``: the rows up to a refusal, and the refusal."""
    reader = CsvReader("test", max_bytes=limits.get("max_bytes", 10**9), **_line(limits))
    rows: list[Row] = []
    start = 0
    for end in [*sorted(cuts), len(data)]:
        rows += reader.feed(data[start:end])
        start = end
        if reader.refused is not None:
            break
    else:
        rows += reader.close()
    refused = reader.refused
    return (rows, (type(refused).__name__, refused.details) if refused else None), reader


def _line(limits: dict[str, int]) -> dict[str, int]:
    return {"max_line": limits["max_line"]} if "max_line" in limits else {}


def as_the_csv_module_reads(text: str) -> list[Row]:
    """The oracle: csv.reader over the whole text opened with newline="", the delimiter the
    first non-blank line holds most, rows from that line on, blank lines left out."""
    text = text.removeprefix("\ufeff")
    physical = list(io.StringIO(text, newline=""))
    start = next((n for n, line in enumerate(physical, 1) if line.strip()), None)
    if start is None:
        return []
    first = physical[start - 1]
    delimiter = max((d for d in ",;\t" if d in first), key=first.count, default=",")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, before = [], 0
    for fields in reader:
        if before + 1 >= start and fields and (len(fields) > 1 or fields[0].strip()):
            rows.append((before + 1, fields))
        before = reader.line_num
    return rows


csv_text = st.text(alphabet='"a,;\t\r\n é', max_size=60)
damage = st.sampled_from([b"", b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xef\xbb\xbf"])


@st.composite
def split_bytes(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    """Bytes a client might send (the fuzz bodies of both endpoints, or CSV-ish text with
    a damaged byte somewhere), and where the chunks are cut."""
    data = draw(
        st.one_of(
            csv_bodies(),
            import_bodies(),
            st.tuples(csv_text, damage, st.integers(0, 200)).map(
                lambda t: t[0].encode()[: t[2]] + t[1] + t[0].encode()[t[2] :]
            ),
        )
    )
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=12))
    return data, cuts


@given(text=csv_text, data=st.data())
def test_rows_are_the_csv_modules(text: str, data: st.DataObject) -> None:
    """Rows and their lines are those of the csv module over the whole text (newline=""):
    LF, CRLF and bare CR end lines, quoted fields keep theirs, whatever the chunking."""
    sent = text.encode()
    cuts = data.draw(st.lists(st.integers(0, len(sent)), max_size=12))
    (rows, refused), _ = read(sent, cuts)
    assert refused is None
    assert rows == as_the_csv_module_reads(text)


@given(
    sent=split_bytes(),
    max_line=st.sampled_from([4, 16, MAX_LINE]),
    max_bytes=st.sampled_from([20, 300, 10**9]),
)
def test_any_split_gives_the_same_rows_and_refusal(
    sent: tuple[bytes, list[int]], max_line: int, max_bytes: int
) -> None:
    """Any split of the same bytes into chunks gives the same rows, and the same refusal
    with the same line (after the same rows); the work stays linear in the bytes."""
    data, cuts = sent
    whole, _ = read(data, max_line=max_line, max_bytes=max_bytes)
    split, reader = read(data, cuts, max_line=max_line, max_bytes=max_bytes)
    assert split == whole
    assert reader.scanned <= 3 * len(data) + 2


def test_a_long_line_in_small_chunks_is_read_once() -> None:
    """A 60,000-character line sent byte by byte is scanned a small constant times its
    length (the old reader re-joined and re-searched its whole tail per chunk: n²/2)."""
    data = b"77011234567," + b"A" * 60_000 + b"\n77021234567,B\n"
    (rows, refused), reader = read(data, list(range(1, len(data))))
    assert refused is None
    assert [line for line, _ in rows] == [1, 2] and len(rows[0][1][1]) == 60_000
    assert reader.scanned <= 2 * len(data)


async def test_a_line_without_end_is_refused_after_max_line() -> None:
    """64 MB without a line break: refused with the line once MAX_LINE characters are in,
    reading only the chunks up to there."""
    pulled = 0

    async def chunks():
        nonlocal pulled
        yield b"msisdn,name\n77011234567,Ann\n"
        for _ in range(1024):  # 64 MiB in all
            pulled += 1
            yield b"7" * 65536

    reader = CsvReader("audience", max_bytes=1 << 30)
    rows: list[Row] = []
    with pytest.raises(LineTooLong) as caught:
        async for batch in reader.rows(chunks()):
            rows += batch
    assert [line for line, _ in rows] == [1, 2]  # the rows before it came first
    assert caught.value.line == 3 and caught.value.code == "line_too_long"
    assert caught.value.details == {"line": 3, "limit": MAX_LINE}
    assert pulled == 2 and reader.scanned <= 3 * 65536


def test_a_quoted_record_counts_all_its_lines() -> None:
    """A quoted field with line breaks is one record, bounded as a whole; its line is the
    one where it starts (also for a quote never closed)."""
    (rows, refused), _ = read(b'a,"x\ny"\r\nb,c\n', max_line=8)
    assert rows == [(1, ["a", "x\ny"]), (3, ["b", "c"])] and refused is None
    (rows, refused), _ = read(b'a,b\nc,"never closed\n' + b"d,e\n" * 10, [5, 13], max_line=30)
    assert rows == [(1, ["a", "b"])]
    assert refused == ("LineTooLong", {"line": 2, "limit": 30})


@pytest.mark.parametrize("cut", range(1, 9))
def test_bom_and_cr_split_anywhere(cut: int) -> None:
    """A BOM cut by a chunk is still skipped; a CRLF cut between CR and LF is one line end;
    a bare CR ends a line."""
    (rows, refused), reader = read(b"\xef\xbb\xbfa,b\r\nc,d\re,f", [cut])
    assert rows == [(1, ["a", "b"]), (2, ["c", "d"]), (3, ["e", "f"])] and refused is None
    assert reader.lines == 3 and reader.delimiter == ","


def test_not_utf8_names_the_line_even_at_the_end() -> None:
    """A bad byte, or a character cut by the end of the file, names its line; the rows
    before it come first."""
    assert read(b"a,b\nc,\xff\n")[0] == ([(1, ["a", "b"])], ("NotUtf8", {"line": 2}))
    assert read(b"a,b\r\xe2\x82", [5])[0] == ([(1, ["a", "b"])], ("NotUtf8", {"line": 2}))


def test_too_large_comes_after_the_rows_that_fit() -> None:
    """Past max_bytes the input is refused (413 by its type), after the rows within it."""
    (rows, refused), _ = read(b"a,b\nc,d\ne,f\n", max_bytes=9)
    assert rows == [(1, ["a", "b"]), (2, ["c", "d"])]
    assert refused == ("TooLarge", {"limit": 9})


def test_refusals_are_one_family_with_stable_codes() -> None:
    """Every refusal is an InputRefused with a code, a message naming the line, and a hint
    where one helps; a later call raises the same refusal."""
    reader = CsvReader("import", max_bytes=3)
    reader.feed(b"abcd")
    assert isinstance(reader.refused, TooLarge) and reader.refused.code == "import_too_large"
    with pytest.raises(TooLarge):
        reader.close()
    bad = NotUtf8(7)
    assert isinstance(bad, InputRefused) and bad.code == "invalid_encoding"
    assert bad.explained == "line 7 is not valid UTF-8; save the file as UTF-8 (CSV UTF-8)"
    assert LineTooLong(2, 10).message == "line 2 is longer than 10 characters"


def test_a_csv_error_is_a_refusal_not_a_crash() -> None:
    """Should the csv module refuse a record (here: a field over a lowered field_size_limit),
    it is a Malformed refusal naming the record's line."""
    limit = csv.field_size_limit(5)
    try:
        (rows, refused), _ = read(b'a,b\n"long\nfield",c\n')
    finally:
        csv.field_size_limit(limit)
    assert rows == [(1, ["a", "b"])] and refused is not None
    assert refused[0] == Malformed.__name__ and refused[1] == {"line": 2}


@given(
    st.text(alphabet='ab ,;\t\xa0\x0b\\д"', max_size=12).filter(lambda s: '"' not in s),
    st.sampled_from([",", ";", "\t"]),
)
def test_a_plain_line_splits_at_every_delimiter(line: str, delimiter: str) -> None:
    """What PlainLines promises its readers (the audience parser's block fast path splits
    such lines itself): without a quote or a line end, the csv module's fields are the line
    split at every delimiter."""
    assert next(csv.reader([line], delimiter=delimiter), []) == (
        line.split(delimiter) if line else []
    )
