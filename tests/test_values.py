"""The one set of parsers for client ids, integers, instants and header tokens: they never
raise, and what they return is in range (pure, hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.kernel.values import (
    BIGINT_MAX,
    EARLIEST_YEAR,
    LATEST_YEAR,
    header_token,
    parse_id,
    parse_instant,
    parse_int,
)

DIGITS = st.text(alphabet="0123456789٣²+-", max_size=25)


@given(st.one_of(DIGITS, st.text(max_size=30)))
def test_ids_are_bigint_or_none(raw: str) -> None:
    """Any text: None, or an id 1..2**63-1 written in ASCII digits."""
    value = parse_id(raw)
    assert value is None or (1 <= value <= BIGINT_MAX and raw.lstrip("+").isascii())


def test_ids_at_the_edges() -> None:
    """2**63-1 is an id, 2**63 and 0 are not; nor are non-ASCII digits."""
    assert parse_id(str(BIGINT_MAX)) == BIGINT_MAX
    assert parse_id(str(BIGINT_MAX + 1)) is None
    assert parse_id("0") is None and parse_id("٣") is None and parse_id("²") is None
    assert parse_int("-5", -10, 10) == -5 and parse_int("11", -10, 10) is None


@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59),
)
def test_instants_never_overflow(naive: datetime, offset_minutes: int) -> None:
    """Any instant with any offset: None, or one in 1970-2999 that arithmetic can move."""
    zone = timezone(timedelta(minutes=offset_minutes))
    value = parse_instant(naive.replace(tzinfo=zone).isoformat())
    if value is not None:
        assert EARLIEST_YEAR <= value.astimezone(UTC).year <= LATEST_YEAR
        assert value - timedelta(days=400) < value + timedelta(days=400)


def test_instants_at_the_edges() -> None:
    """Year 1 and 9999, naive times and junk are refused; an ordinary instant is kept."""
    assert parse_instant("0001-01-01T00:00:00+05:00") is None
    assert parse_instant("9999-12-31T23:59:59-14:00") is None
    assert parse_instant("2026-11-23T12:00:00") is None
    assert parse_instant(12) is None and parse_instant("x" * 100) is None
    assert parse_instant("2026-11-23T12:00:00+05:00") is not None


@given(st.text(max_size=40))
def test_header_tokens_are_printable_ascii(raw: str) -> None:
    """A token is printable ASCII without spaces, or None: encoding it never raises."""
    token = header_token(raw)
    if token is not None:
        token.encode("ascii")
    assert header_token("abc\udcff") is None
