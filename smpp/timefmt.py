"""SMPP 3.4 time formats for schedule_delivery_time and validity_period (spec 7.1.1).

Absolute: ``YYMMDDhhmmsstnnp`` -- local time to the tenth of a second, then ``nn`` the
offset of that local time from UTC in quarter hours and ``p`` '+' (ahead of UTC) or '-'.
UTC+5 is 20 quarter hours ahead, so 14:30 on 5 March 2024 in Almaty is ``240305143000020+``.

Relative: ``YYMMDDhhmmss000R``, a period from the SMSC's current time. Years and months
have no exact length, so this module uses only days (up to 99), hours, minutes and seconds,
with YY = MM = 00; it neither writes nor accepts other years or months.

The strings here are the field values without the C-Octet String's terminating NUL.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

_QUARTER_HOUR = timedelta(minutes=15)
_MAX_RELATIVE_DAYS = 99
_DIGITS = frozenset("0123456789")


def format_absolute(dt: datetime) -> str:
    """Absolute SMPP time of an aware datetime, in its own UTC offset.

    Tenths of a second are truncated. Raises ValueError when ``dt`` is naive, its offset is
    not a whole number of quarter hours, or its year is outside 2000..2099 (YY has two
    digits).
    """
    offset = dt.utcoffset()
    if offset is None:
        raise ValueError("an absolute SMPP time needs an aware datetime, got a naive one")
    if offset % _QUARTER_HOUR:
        raise ValueError(f"UTC offset {offset} is not a whole number of quarter hours")
    if not 2000 <= dt.year <= 2099:
        raise ValueError(f"year {dt.year} is outside 2000..2099, which YY can express")
    quarters = abs(offset) // _QUARTER_HOUR
    sign = "-" if offset < timedelta(0) else "+"
    return (
        f"{dt.year % 100:02d}{dt.month:02d}{dt.day:02d}"
        f"{dt.hour:02d}{dt.minute:02d}{dt.second:02d}"
        f"{dt.microsecond // 100_000}{quarters:02d}{sign}"
    )


def format_relative(delta: timedelta) -> str:
    """Relative SMPP time ``0000DDhhmmss000R`` of a period of 0 to 99 days 23:59:59.

    Fractions of a second are truncated. Raises ValueError for a negative period or one of
    100 days or more.
    """
    if delta < timedelta(0):
        raise ValueError(f"a relative SMPP time cannot be negative: {delta}")
    if delta.days > _MAX_RELATIVE_DAYS:
        raise ValueError(f"a relative SMPP time holds at most 99 days, not {delta}")
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"0000{delta.days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"


def parse_smpp_time(value: str) -> datetime | timedelta | None:
    """Parse an SMPP time field: None when empty, an aware datetime, or a timedelta.

    Trailing spaces and NULs are ignored; anything else that is not exactly 15 ASCII digits
    and '+', '-' or 'R' with valid field values raises ValueError. A relative time with
    non-zero years or months raises ValueError too (see the module docstring).
    """
    text = value.rstrip(" \x00")
    if not text:
        return None
    if len(text) != 16 or not _DIGITS.issuperset(text[:15]):
        raise ValueError(f"SMPP time {value!r} is not 15 digits and a sign")
    fields = [int(text[i : i + 2]) for i in range(0, 12, 2)]
    tenths, quarters, kind = int(text[12]), int(text[13:15]), text[15]
    if kind == "R":
        return _relative(value, fields, text[12:15])
    if kind not in "+-":
        raise ValueError(f"SMPP time {value!r} ends in {kind!r}, not '+', '-' or 'R'")
    offset = quarters * _QUARTER_HOUR * (-1 if kind == "-" else 1)
    year, month, day, hour, minute, second = fields
    try:
        return datetime(
            2000 + year, month, day, hour, minute, second, tenths * 100_000, timezone(offset)
        )
    except ValueError as exc:
        raise ValueError(f"SMPP time {value!r}: {exc}") from None


def _relative(value: str, fields: list[int], tail: str) -> timedelta:
    """The timedelta of relative fields [YY, MM, DD, hh, mm, ss]; ValueError if out of range."""
    years, months, days, hours, minutes, seconds = fields
    if years or months:
        raise ValueError(f"relative SMPP time {value!r} has years or months, which are inexact")
    if tail != "000":
        raise ValueError(f"relative SMPP time {value!r} must have 000 before 'R'")
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"relative SMPP time {value!r} has hours, minutes or seconds out of range")
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
