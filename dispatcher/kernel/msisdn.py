"""MSISDN normalisation: any common written form → E.164 digits without '+'.

``phonenumbers`` decides validity (country plans change; we don't hand-write them). It costs
~20 µs a number, too slow for million-row uploads, so validity is cached by the number with
its last four digits dropped: numbering plans assign ranges by prefix, and the last four
digits of a subscriber number never change whether a number of that length is valid.

:func:`canonical_forms` serves bulk parsers (audience uploads) that match whole blocks of
lines with one regular expression: the written forms of a region's mobile numbers whose
normal form is known without asking ``phonenumbers`` (built from its own metadata; a
property test holds it to :func:`normalise` on every input it accepts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

_SEPARATORS = str.maketrans("", "", " -().\t")


class InvalidMsisdn(ValueError):
    """The text is not a valid mobile number; ``reason`` says why in a few words."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"{reason}: {value!r}")
        self.value = value
        self.reason = reason


def normalise(raw: str, region: str = "KZ") -> str:
    """E.164 digits of ``raw`` (``+7 701 123-45-67``, ``87011234567``, ``77011234567``).

    ``region`` interprets national forms (a leading trunk ``8`` in KZ/RU). Raises
    :class:`InvalidMsisdn` for anything that is not a valid number.
    """
    text = raw.strip().translate(_SEPARATORS)
    # r"\+?\d{6,16}" without the regex engine (half the time; an audience upload calls this
    # once per row): isdecimal() is exactly \d (Unicode Nd), as a str pattern's \d is.
    digits = text[1:] if text[:1] == "+" else text
    if not (6 <= len(digits) <= 16 and digits.isdecimal()):
        raise InvalidMsisdn(raw, "not a phone number")
    return _normalise_cached(text, region)


_MAX_CACHED = 1 << 17
_verdicts: dict[tuple[str, str], str | None] = {}


def _verdict(text: str, region: str) -> str | None:
    """E.164 country+prefix form (no '+', last four digits dropped) or None if invalid."""
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164[1:-4]


def _normalise_cached(text: str, region: str) -> str:
    key = (text[:-4], region)  # the prefix carries the length: text[-4:] is always 4 digits
    try:
        verdict = _verdicts[key]
    except KeyError:
        verdict = _verdict(text, region)
        if len(_verdicts) >= _MAX_CACHED:
            _verdicts.clear()
        _verdicts[key] = verdict
    if verdict is None:
        raise InvalidMsisdn(text, "invalid number")
    return verdict + text[-4:]


#: Regions with a canonical fast path: (country calling code, trunk prefix). Only regions
#: that are alone with their national mobile ranges under their calling code are listed:
#: KZ shares +7 with RU, whose ranges (leading digits 3, 4, 8, 9) never start with 7.
_CANONICAL = {"KZ": ("7", "8")}


@dataclass(frozen=True)
class CanonicalForms:
    """The common written forms of a region's mobile numbers, as regular-expression sources
    without capturing groups (ASCII digits only: :func:`normalise` turns other scripts'
    digits into ASCII ones). A text that fully matches ``prefix + national`` is a valid
    number whose normal form is ``code`` followed by the part ``national`` matched:
    ``+7 NNN…``, ``7NNN…``, ``8NNN…`` (the trunk prefix) or the bare national number,
    digits only (no space, dash or bracket). Anything else may still be valid: it goes to
    :func:`normalise`."""

    code: str
    prefix: str
    national: str
    length: int  # of the normal form

    @property
    def number(self) -> str:
        return f"{self.prefix}{self.national}"


def canonical_forms(region: str) -> CanonicalForms | None:
    """The region's :class:`CanonicalForms` (built from ``phonenumbers``' own metadata), or
    None when it has none: callers then call :func:`normalise` for every number."""
    if region not in _CANONICAL:
        return None
    code, trunk = _CANONICAL[region]
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    mobile = metadata.mobile if metadata is not None else None
    national = mobile.national_number_pattern if mobile is not None else None
    lengths = mobile.possible_length if mobile is not None else ()
    if national is None or re.compile(national).groups or len(lengths) != 1:
        raise ValueError(
            f"no simple mobile pattern for {region} in phonenumbers"
        )  # pragma: no cover
    return CanonicalForms(
        code=code,
        prefix=rf"(?a:(?:\+?{code}|{trunk})?)",
        national=f"(?a:{national})",
        length=len(code) + lengths[0],
    )
