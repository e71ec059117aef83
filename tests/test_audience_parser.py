"""The audience CSV parser alone (no database): chunking, line numbers, limits."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.audience import AudienceParser
from campaigns.csvstream import InputRefused
from campaigns.repository import CopyRows

Parsed = tuple[str, list[str] | None]


def decode(copied: CopyRows) -> list[Parsed]:
    """The ``(msisdn, values or None)`` records of COPY text as PostgreSQL reads it (the
    text format's escapes, then the array literal's quoted elements)."""
    unescape = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
    records: list[Parsed] = []
    for line in copied.text.split("\n")[:-1]:
        msisdn, _, array = line.partition("\t")
        if not _:
            records.append((msisdn, None))
            continue
        text = re.sub(r"\\(.)", lambda m: unescape[m.group(1)], array)
        assert text[0] == "{" and text[-1] == "}", text
        values = re.findall(r'"((?:[^"\\]|\\.)*)"(?:,|$)', text[1:-1])
        records.append((msisdn, [re.sub(r"\\(.)", r"\1", v) for v in values]))
    assert len(records) == copied.rows
    return records


def _parse(
    data: bytes, variables=(), chunk: int = 7, region: str = "KZ", **limits
) -> tuple[list[Parsed], AudienceParser]:
    parser = AudienceParser(
        list(variables),
        region,
        max_rows=limits.get("max_rows", 1000),
        max_bytes=10**6,
        max_shown=limits.get("max_shown", 1000),
    )
    records = []
    for start in range(0, len(data), chunk):
        records += decode(parser.feed(data[start : start + chunk]))
    return records + decode(parser.finish()), parser


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 10_000])
def test_any_chunking_gives_the_same_records(chunk: int) -> None:
    """Records and line numbers do not depend on where chunks are cut (also mid-character)."""
    data = "\ufeffmsisdn;имя\r\n77011234567;Әлия\r\nbad;x\r\n77021234567;Иван\r\n".encode()
    records, parser = _parse(data, (), chunk)
    assert records == [("77011234567", None), ("77021234567", None)]
    assert [(r.line, r.reason) for r in parser.rejected] == [(3, "not a phone number")]


def test_rejected_list_is_capped_with_a_total() -> None:
    """Only the first rejected rows are kept, but all are counted."""
    data = b"77011234567\n" + b"".join(b"x%d\n" % i for i in range(50))
    records, parser = _parse(data, max_shown=10)
    assert len(records) == 1 and parser.rejected_total == 50 and len(parser.rejected) == 10


def test_row_limit() -> None:
    """More data rows than allowed raises too_many_rows."""
    with pytest.raises(InputRefused) as caught:
        _parse(b"77011234567\n77021234567\n", max_rows=1)
    assert caught.value.code == "too_many_rows"


def test_empty_file() -> None:
    """A file with no data rows (only a header) is refused."""
    with pytest.raises(InputRefused) as caught:
        _parse(b"msisdn\n\n")
    assert caught.value.code == "empty_audience"


def test_invalid_utf8_line_number_across_chunks() -> None:
    """The line of the first invalid byte is reported even when chunks split lines."""
    data = b"77011234567\n77021234567\n7705\xff1234567\n"
    with pytest.raises(InputRefused) as caught:
        _parse(data, chunk=5)
    assert caught.value.details == {"line": 3}


def test_nul_byte_rejects_one_line_and_continues() -> None:
    """A line the csv module cannot read is rejected; the following lines still count."""
    records, parser = _parse(b'77011234567\n"7702\x00"x,\n77051234567\n', chunk=1000)
    assert [r[0] for r in records] == ["77011234567", "77051234567"]
    assert parser.rejected_total == 1 and parser.rejected[0].line == 2


@given(st.text(alphabet="0123456789+٣²a -", max_size=20))
def test_the_number_shape_check_is_the_regex_it_replaced(text: str) -> None:
    """normalise's shape check (no regex since issue 16) refuses exactly what
    r"\\+?\\d{6,16}" did ("not a phone number"); what passes goes on to the number plan."""
    import re

    from dispatcher.kernel.msisdn import InvalidMsisdn, normalise

    shaped = re.fullmatch(r"\+?\d{6,16}", text.strip().replace(" ", "").replace("-", ""))
    try:
        normalise(text)
    except InvalidMsisdn as exc:
        assert (exc.reason == "not a phone number") == (shaped is None)
    else:
        assert shaped is not None


# ---------------------------------------------------------------- the block fast path

_DIGITS = st.text(alphabet="0123456789", min_size=0, max_size=12)
_NUMBERS = st.one_of(
    st.builds(
        str.__add__,
        st.sampled_from(["", "+", "+7", "7", "8", "+8", "77", "87", "+77", "07"]),
        st.builds(str.__add__, st.sampled_from(["7", "70", "77", "74", "76", "78", ""]), _DIGITS),
    ),
    st.text(alphabet="0123456789+٣٧ -()", max_size=16),
)


@given(_NUMBERS)
def test_canonical_forms_agree_with_normalise(text: str) -> None:
    """Whatever the fast path's pattern accepts, normalise() accepts too, with the same
    digits: the calling code and the pattern's group (it never asks phonenumbers)."""
    from dispatcher.kernel.msisdn import canonical_forms, normalise

    forms = canonical_forms("KZ")
    assert forms is not None
    found = re.fullmatch(f"{forms.prefix}({forms.national})", text)
    if found is not None:
        assert normalise(text, "KZ") == forms.code + found.group(1)
        assert len(normalise(text, "KZ")) == forms.length


_CELLS = st.one_of(
    st.sampled_from(["Aigerim", "Dana"]),
    st.sampled_from(["Aigerim", "Dana K", "Әлия", " x", "x ", "", "a\\b", "\xa0y", "{z}", "N"]),
    st.text(alphabet="ab \\{}\xa0\x0bд,;\t", max_size=4),
)
_LINES = st.lists(
    st.tuples(
        st.one_of(_NUMBERS, st.sampled_from(["77011234567", "+77021234567"])),
        st.lists(_CELLS, max_size=3),
    ),
    min_size=1,
    max_size=30,
)


@given(
    _LINES,
    st.sampled_from([",", ";", "\t"]),
    st.sampled_from([(), ("name",), ("name", "city")]),
    st.booleans(),
    st.sampled_from([5, 64, 4096]),
    st.booleans(),
)
def test_the_fast_path_reads_what_row_by_row_reads(
    lines, delimiter: str, variables: tuple[str, ...], header: bool, chunk: int, canonical: bool
) -> None:
    """Blocks of plain lines turned into COPY text by one regular expression give the same
    rows, rejections (with their lines) and counts as reading every row with normalise().
    ``canonical``: every number in a canonical form (whole blocks take the fast path)."""
    if canonical:
        forms = ["+7701%07d", "8702%07d", "7705%07d", "747%07d"]
        k = len(variables)  # and as many cells as variables: whole blocks are canonical
        lines = [
            (forms[i % 4] % (i * 7919), [*cells, *["A"] * k][:k] if k else cells)
            for i, (_, cells) in enumerate(lines)
        ]
    text = "".join(delimiter.join([n, *cells]) + "\n" for n, cells in lines)
    if header:
        text = delimiter.join(["msisdn", *variables]) + "\n" + text
    data = text.encode()
    results = []
    for fast in (True, False):
        parser = AudienceParser(list(variables), "KZ", max_rows=1000, max_bytes=10**6, fast=fast)
        try:
            records = []
            for start in range(0, len(data), chunk):
                records += decode(parser.feed(data[start : start + chunk]))
            records += decode(parser.finish())
        except InputRefused as exc:
            results.append(("refused", exc.code, parser.rejected, parser.rows))
            continue
        results.append((records, parser.rejected, parser.rejected_total, parser.rows))
    assert results[0] == results[1]


def test_canonical_rows_do_not_call_normalise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows whose number is written canonically (+7…, 8…, 7…) and whose variables need no
    closer look are taken a block at a time, without normalise() per row (it was ~half of
    the parser's time in issue 16's profile); the others still go through it."""
    from dispatcher.kernel.msisdn import MobileNumbers

    calls: list[str] = []
    real = MobileNumbers.__call__

    def counted(self: MobileNumbers, raw: str) -> str:
        calls.append(raw)
        return real(self, raw)

    monkeypatch.setattr(MobileNumbers, "__call__", counted)
    good = b"".join(b"+7701%07d,Name%d\n" % (n, n) for n in range(500))
    records, parser = _parse(b"msisdn,name\n" + good, ("name",), chunk=1 << 16)
    assert len(records) == 500 and records[0] == ("77010000000", ["Name0"])
    assert calls == [] and parser.canonical_rows == 500
    records, _ = _parse(good + b"+7 701 000-00-01,Again\n", ("name",), chunk=1 << 16)
    assert len(records) == 501 and records[-1] == ("77010000001", ["Again"])
    assert len(calls) == 501  # the block held a row the fast path does not take
