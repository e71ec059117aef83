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


# ---------------------------------------------------------------- numbers that take SMS

#: phonenumbers' types that can receive SMS: mobile, and the plans (US, CA, …) where a
#: mobile number cannot be told from a fixed one.
_SMS_TYPES = frozenset(
    {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
)
#: phonenumbers' types in plain words, for the audience's rejections ("fixed-line number")
#: and the lookup's description of a number (dispatcher/kernel/numbering.py).
NUMBER_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE: "mobile",
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: "mobile",
    phonenumbers.PhoneNumberType.FIXED_LINE: "fixed-line",
    phonenumbers.PhoneNumberType.TOLL_FREE: "toll-free",
    phonenumbers.PhoneNumberType.PREMIUM_RATE: "premium-rate",
    phonenumbers.PhoneNumberType.SHARED_COST: "shared-cost",
    phonenumbers.PhoneNumberType.VOIP: "VoIP",
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER: "personal",
    phonenumbers.PhoneNumberType.PAGER: "pager",
    phonenumbers.PhoneNumberType.UAN: "UAN (company)",
    phonenumbers.PhoneNumberType.VOICEMAIL: "voicemail",
}


@dataclass(frozen=True)
class MobilePolicy:
    """Which numbers an audience accepts: mobile numbers of ``region`` (phonenumbers'
    number type), plus numbers under the operator's own ``mobile`` prefixes (E.164 digits,
    e.g. a new range phonenumbers does not know yet), minus any under ``refused`` prefixes
    (a refused prefix wins). Settings ``SMARTD_AUDIENCE_MOBILE_PREFIXES`` and
    ``SMARTD_AUDIENCE_REFUSED_PREFIXES``."""

    region: str = "KZ"
    mobile: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Judged:
    """A number's cached verdict, by its prefix (the last four digits dropped): the E.164
    digits of the prefix when phonenumbers could parse it at all, whether a number of that
    shape is possible (its length), and why it cannot take SMS (None: it can)."""

    prefix: str | None
    possible: bool
    reason: str | None


_judged: dict[MobilePolicy, dict[str, _Judged]] = {}


class NotMobile(InvalidMsisdn):
    """The text is a number, but one that cannot receive SMS (``reason`` says which kind);
    ``msisdn`` holds its E.164 digits."""

    def __init__(self, value: str, reason: str, msisdn: str | None) -> None:
        super().__init__(value, reason)
        self.msisdn = msisdn


class MobileNumbers:
    """Reads numbers that can receive SMS under ``policy`` (see :meth:`__call__`); one per
    upload, its verdicts shared by every reader of the same policy."""

    def __init__(self, policy: MobilePolicy) -> None:
        self.policy = policy
        self._cache = _judged.setdefault(policy, {})

    def __call__(self, raw: str) -> str:
        """E.164 digits of ``raw`` if it is a number that can receive SMS.

        Raises :class:`InvalidMsisdn` ("not a phone number", "invalid number") or
        :class:`NotMobile` with the kind ("fixed-line number", "foreign number (+49,
        Germany)", "toll-free number", "refused range +7700"). The verdict is cached by the
        number without its last four digits, as :func:`normalise`'s (numbering plans assign
        types by range); the operator's prefixes are checked on the whole number, one
        ``startswith`` each.
        """
        text = raw.strip().translate(_SEPARATORS)
        digits = text[1:] if text[:1] == "+" else text
        if not (6 <= len(digits) <= 16 and digits.isdecimal()):
            raise InvalidMsisdn(raw, "not a phone number")
        policy, cache = self.policy, self._cache
        judged = cache.get(text[:-4])
        if judged is None:
            judged = _judge(text, policy)
            if len(cache) >= _MAX_CACHED:
                cache.clear()
            cache[text[:-4]] = judged
        if judged.prefix is None:
            raise InvalidMsisdn(text, "invalid number")
        msisdn = judged.prefix + text[-4:]
        if policy.refused and msisdn.startswith(policy.refused):
            prefix = next(p for p in policy.refused if msisdn.startswith(p))
            raise NotMobile(text, f"refused range +{prefix}", msisdn)
        if judged.reason is None:
            return msisdn
        if policy.mobile and judged.possible and msisdn.startswith(policy.mobile):
            return msisdn
        if judged.reason == "invalid number":
            raise InvalidMsisdn(text, judged.reason)
        raise NotMobile(text, judged.reason, msisdn)


def mobile_number(raw: str, policy: MobilePolicy) -> str:
    """:class:`MobileNumbers` for one number."""
    return MobileNumbers(policy)(raw)


def _judge(text: str, policy: MobilePolicy) -> _Judged:
    try:
        number = phonenumbers.parse(text, policy.region)
    except phonenumbers.NumberParseException:
        return _Judged(None, False, "invalid number")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    if not 3 <= len(e164) <= 15 or len(e164) <= 4:
        return _Judged(None, False, "invalid number")
    prefix, possible = e164[:-4], phonenumbers.is_possible_number(number)
    if not phonenumbers.is_valid_number(number):
        return _Judged(prefix, possible, "invalid number")
    kind = phonenumbers.number_type(number)
    where = phonenumbers.region_code_for_number(number)
    home_code = phonenumbers.country_code_for_region(policy.region)
    country = f"+{number.country_code}, {country_name(number, 'unknown country')}"
    if kind not in _SMS_TYPES:
        name = f"{NUMBER_TYPES[kind]} number" if kind in NUMBER_TYPES else "number of unknown type"
        # Beside a foreign calling code the country says more; under the home calling code
        # (+7, shared by KZ and RU) a toll-free 8 800 is not "Russian" to the reader.
        foreign = number.country_code != home_code
        return _Judged(prefix, possible, f"{name} ({country})" if foreign else name)
    if where != policy.region:
        return _Judged(prefix, possible, f"foreign number ({country})")
    return _Judged(prefix, possible, None)


def country_name(number: phonenumbers.PhoneNumber, unknown: str) -> str:
    """The country of ``number`` in English, else its region code, else ``unknown``."""
    from phonenumbers import geocoder  # its data loads on first use (~10 ms)

    region = phonenumbers.region_code_for_number(number)
    return geocoder.country_name_for_number(number, "en") or region or unknown


def number_in_any_country(raw: str, region: str) -> str | None:
    """``raw`` read as a number of any country (E.164 digits, no '+'), valid or not, for
    finding a rejected row by its number; None when it is no number at all."""
    text = raw.strip().translate(_SEPARATORS)
    digits = text[1:] if text[:1] == "+" else text
    if not (3 <= len(digits) <= 16 and digits.isdecimal()):
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
    return e164 if 3 <= len(e164) <= 15 and e164.isdigit() else None
