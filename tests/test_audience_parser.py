"""The audience CSV parser alone (no database): chunking, line numbers, limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.audience import AudienceParser
from campaigns.csvstream import InputRefused


def _parse(data: bytes, variables=(), chunk: int = 7, **limits) -> tuple[list, AudienceParser]:
    parser = AudienceParser(
        list(variables),
        "KZ",
        max_rows=limits.get("max_rows", 1000),
        max_bytes=10**6,
        max_shown=limits.get("max_shown", 1000),
    )
    records = []
    for start in range(0, len(data), chunk):
        records += parser.feed(data[start : start + chunk])
    return records + parser.finish(), parser


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 10_000])
def test_any_chunking_gives_the_same_records(chunk: int) -> None:
    """Records and line numbers do not depend on where chunks are cut (also mid-character)."""
    data = "\ufeffmsisdn;имя\r\n77011234567;Әлия\r\nbad;x\r\n77021234567;Иван\r\n".encode()
    records, parser = _parse(data, (), chunk)
    assert records == [(2, "77011234567", None), (4, "77021234567", None)]
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
    assert [r[1] for r in records] == ["77011234567", "77051234567"]
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
