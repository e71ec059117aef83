"""What a valid number is: its country and type (mobile, fixed line, toll-free…), in words.

:func:`dispatcher.kernel.msisdn.normalise` accepts every valid number of every country (it
answers "is this a number", not "can it receive our SMS"), so the subscriber lookup and the
"why" answer describe a number that is not one of the home region's mobile numbers instead
of answering "No subscriber" for it. ``phonenumbers`` decides, from its own metadata.
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers

from dispatcher.kernel.msisdn import NUMBER_TYPES, InvalidMsisdn, country_name, normalise


@dataclass(frozen=True, slots=True)
class NumberInfo:
    """A normalised number (E.164 digits without '+') and what it is."""

    msisdn: str
    country: str | None  # ISO 3166 region code, None when no region owns the number
    country_name: str
    type: str  # "mobile", "fixed-line", "toll-free", … or "unknown"
    home_mobile: bool  # a mobile number of the home region: one the program can text

    @property
    def description(self) -> str:
        """``a mobile number of Russia``, ``a fixed-line number of Kazakhstan``."""
        article = "an" if self.type[:1].lower() in "aeiou" else "a"
        kind = "number of unknown type" if self.type == "unknown" else f"{self.type} number"
        if self.type == "unknown":
            article = "a"
        return f"{article} {kind} of {self.country_name}"

    def as_dict(self) -> dict[str, object]:
        return {
            "msisdn": self.msisdn,
            "country": self.country,
            "country_name": self.country_name,
            "type": self.type,
            "home_mobile": self.home_mobile,
            "description": self.description,
        }


def describe_number(msisdn: str, home_region: str) -> NumberInfo:
    """What ``msisdn`` (normalised: E.164 digits) is, seen from ``home_region``."""
    try:
        number = phonenumbers.parse("+" + msisdn, None)
    except phonenumbers.NumberParseException:
        return NumberInfo(msisdn, None, "no known country", "unknown", False)
    region = phonenumbers.region_code_for_number(number)
    kind = NUMBER_TYPES.get(phonenumbers.number_type(number), "unknown")
    name = country_name(number, "no known country")
    return NumberInfo(
        msisdn=msisdn,
        country=region,
        country_name=name,
        type=kind,
        home_mobile=region == home_region and kind == "mobile",
    )


def home_country_name(home_region: str) -> str:
    """The home region's name in English (``Kazakhstan`` for KZ)."""
    code = phonenumbers.country_code_for_region(home_region)
    example = phonenumbers.example_number(home_region)
    if not code or example is None:
        return home_region
    return country_name(example, home_region)


def lookup_number(raw: str, region: str) -> str:
    """The normal form of a number typed into a lookup: as :func:`normalise` reads it in
    ``region`` (``+7 701…``, ``8 701…``, spaces), or else as the normal form itself (E.164
    digits without '+', as stored and shown: ``79161234567`` is Russia's +7 916…, which
    KZ's national reading refuses). Raises :class:`InvalidMsisdn` as :func:`normalise`."""
    try:
        return normalise(raw, region)
    except InvalidMsisdn:
        digits = raw.strip()
        if not digits.isdigit():
            raise
        try:
            return normalise("+" + digits, region)
        except InvalidMsisdn:
            pass
        raise
