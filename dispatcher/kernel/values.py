"""Client-supplied ids, integers, instants and header text, parsed once, strictly.

Every door (HTTP API, console, gateway, campaign definitions) reads these values through the
functions here, so an out-of-range value is refused where it enters instead of failing deep
inside (asyncpg's int64 overflow, ``datetime`` arithmetic past year 1 or 9999, a header
with bytes that are not UTF-8). Each returns ``None`` for a value it refuses; the caller
answers with its own 400 or 404.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

#: PostgreSQL ``bigint``: ids are 1 .. 2**63 - 1.
BIGINT_MAX = (1 << 63) - 1
_ASCII_INT = re.compile(r"[+-]?[0-9]{1,19}")
#: Instants outside these years are refused: far enough for any real event or campaign, and
#: far from ``datetime``'s limits (years 1-9999), so arithmetic on them never overflows.
EARLIEST_YEAR, LATEST_YEAR = 1970, 2999
_PRINTABLE = re.compile(r"[\x21-\x7e]*")


def parse_int(raw: str | None, low: int, high: int) -> int | None:
    """``raw`` as an integer in ``low..high``: ASCII digits only (``٣`` and ``²`` are not
    digits here), an optional sign, at most 19 digits; else None."""
    if raw is None or not _ASCII_INT.fullmatch(raw):
        return None
    value = int(raw)
    return value if low <= value <= high else None


def parse_id(raw: str | None) -> int | None:
    """A database id (``bigint``, positive), or None."""
    return parse_int(raw, 1, BIGINT_MAX)


def instant_in_range(value: datetime) -> bool:
    """Whether an aware ``value`` lies in the years this service accepts (and can be moved
    to any time zone and by a year either way without overflowing)."""
    if value.tzinfo is None or value.utcoffset() is None:
        return False
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):  # year 1 moved west, year 9999 moved east
        return False
    return EARLIEST_YEAR <= utc.year <= LATEST_YEAR


def parse_instant(raw: object) -> datetime | None:
    """An ISO 8601 instant *with* a UTC offset, in years 1970-2999; else None."""
    if not isinstance(raw, str) or len(raw) > 64:
        return None
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    return value if instant_in_range(value) else None


def header_token(raw: str | None, max_length: int = 512) -> str | None:
    """A token-like header or cookie value (bearer token, session id, CSRF token): printable
    ASCII without spaces, else None. Bytes that were not UTF-8 reach aiohttp's handlers as
    surrogates, which would raise when encoded again; they are refused here."""
    if not raw or len(raw) > max_length or not _PRINTABLE.fullmatch(raw):
        return None
    return raw
