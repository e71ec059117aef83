"""Delivery receipts: the text form, the TLV form, and message-id matching.

An SMSC reports a message's fate in a deliver_sm whose ``receipted_message_id`` and
``message_state`` TLVs, or whose text ("id:… sub:… dlvrd:… submit date:… done date:…
stat:DELIVRD err:… text:…", appendix B of the spec, which vendors treat loosely), carry
the id from the submit_sm_resp and the final state. These functions are pure.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from smpp.constants import MessageState, Tag
from smpp.pdu import ShortMessage, tlv_int, tlv_str


class IdFormat(enum.StrEnum):
    """How one SMSC writes the same message id in submit_sm_resp and in its receipts.

    ``AUTO`` is not a form of its own: the receipt applier detects which of the others the
    SMSC uses from which reading of its receipt ids names a known submit (see
    :func:`detect_id_format`); until it has, a receipt is read as-is. Mirrored by the
    schema's ``message_id_format`` type.
    """

    AUTO = "auto"
    AS_IS = "as-is"
    HEX_RESPONSE_DECIMAL_RECEIPT = "hex-response-decimal-receipt"
    DECIMAL_RESPONSE_HEX_RECEIPT = "decimal-response-hex-receipt"


class IdSide(enum.Enum):
    """Where a message id was read."""

    RESPONSE = "response"
    RECEIPT = "receipt"


#: The longest message id kept (submit_sm_resp's message_id is a C-string of 65 octets);
#: a longer one is not converted between bases.
MAX_ID_LENGTH = 64
_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"[0-9a-f]+")


def _plain(raw: str) -> str:
    text = raw.strip().lower()
    return text.lstrip("0") or ("0" if text else "")


@dataclass(frozen=True, slots=True)
class IdReadings:
    """A receipt's id read under each id format, each written as the response would write
    it (lower case, no leading zeros), so it compares equal to the response's plain form.

    ``hex_response`` is None when the id is not decimal, ``decimal_response`` when it is
    not hexadecimal (an alphanumeric id has the as-is reading alone).
    """

    as_is: str
    hex_response: str | None
    decimal_response: str | None

    def under(self, fmt: IdFormat) -> str:
        """The reading ``fmt`` says; as-is for AUTO and for an id the base does not fit."""
        if fmt is IdFormat.HEX_RESPONSE_DECIMAL_RECEIPT and self.hex_response is not None:
            return self.hex_response
        if fmt is IdFormat.DECIMAL_RESPONSE_HEX_RECEIPT and self.decimal_response is not None:
            return self.decimal_response
        return self.as_is


@functools.lru_cache(maxsize=256)  # a receipt's id is read twice: its event, then its row
def receipt_id_readings(raw: str) -> IdReadings:
    """Every reading of a receipt's id (see :class:`IdReadings`). Only plain ASCII digits
    count (``int`` alone would also take ``0x``, ``_`` and other scripts' digits)."""
    plain = _plain(raw)
    as_hex = as_decimal = None
    if plain and len(plain) <= MAX_ID_LENGTH:
        if _DECIMAL.fullmatch(plain):
            as_hex = f"{int(plain, 10):x}"
        if _HEX.fullmatch(plain):
            as_decimal = str(int(plain, 16))
    return IdReadings(plain, as_hex, as_decimal)


def normalise_message_id(raw: str, fmt: IdFormat, side: IdSide) -> str:
    """Canonical form of a message id, equal for the response and the receipt of one
    message.

    The response's id is kept in its own form (lower-cased, without leading zeros); a
    receipt's id is converted to that form when ``fmt`` says the SMSC writes it in the
    other base. An id that does not parse in the configured base (a vendor that changed
    its mind) falls back to the plain form rather than raising. With ``AUTO`` both sides
    are plain: detection needs the store of submits (the dispatcher's receipt applier).
    """
    if side is IdSide.RESPONSE:
        return _plain(raw)
    return receipt_id_readings(raw).under(fmt)


@dataclass(frozen=True, slots=True)
class IdEvidence:
    """What recent receipts of one SMSC say about its id format: of ``receipts`` whose
    readings differ, how many name a known submit under each reading."""

    receipts: int
    as_is: int
    hex_response: int
    decimal_response: int

    def hits(self) -> dict[IdFormat, int]:
        return {
            IdFormat.AS_IS: self.as_is,
            IdFormat.HEX_RESPONSE_DECIMAL_RECEIPT: self.hex_response,
            IdFormat.DECIMAL_RESPONSE_HEX_RECEIPT: self.decimal_response,
        }


#: Receipts (with readings that differ) needed before a format is decided.
MIN_EVIDENCE = 10
#: The SMSC's true reading names a known submit for (nearly) every receipt: only a receipt
#: that beat its submit_sm_resp, or whose submit was lost in a crash, misses.
WINNER_SHARE = 0.9
#: A wrong reading names a submit only by coincidence: often with small sequential ids
#: (a decimal id is also valid hex), so the margin is wide, never one receipt's worth.
LOSER_SHARE = 0.75


def detect_id_format(evidence: IdEvidence) -> IdFormat | None:
    """The id format the evidence shows, or None while it does not show one clearly:
    one reading names a submit for at least 90 % of the receipts and every other for
    less than 75 %, over at least :data:`MIN_EVIDENCE` receipts."""
    total = evidence.receipts
    if total < MIN_EVIDENCE:
        return None
    hits = evidence.hits()
    winners = [f for f, n in hits.items() if n >= WINNER_SHARE * total]
    if len(winners) != 1:
        return None
    if any(n >= LOSER_SHARE * total for f, n in hits.items() if f is not winners[0]):
        return None
    return winners[0]


_STAT_WORDS: dict[str, MessageState] = {
    "DELIVRD": MessageState.DELIVERED,
    "DELIVERED": MessageState.DELIVERED,
    "EXPIRED": MessageState.EXPIRED,
    "DELETED": MessageState.DELETED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "UNDELIVERABLE": MessageState.UNDELIVERABLE,
    "UNDELIVERED": MessageState.UNDELIVERABLE,
    "FAILED": MessageState.UNDELIVERABLE,
    "ACCEPTD": MessageState.ACCEPTED,
    "ACCEPTED": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN,
    "REJECTD": MessageState.REJECTED,
    "REJECTED": MessageState.REJECTED,
    "ENROUTE": MessageState.ENROUTE,
}

FINAL_STATES = frozenset(
    {
        MessageState.DELIVERED,
        MessageState.EXPIRED,
        MessageState.DELETED,
        MessageState.UNDELIVERABLE,
        MessageState.REJECTED,
    }
)

# A key is a word (or "submit date"/"done date") followed by a colon, at the start or
# after whitespace; everything up to the next key is its value, except that "text:"
# takes the rest of the message since the original text may contain colons.
_KEY = re.compile(r"(?:(?<=\s)|^)(submit[ _]date|done[ _]date|[A-Za-z_]+)\s*:", re.IGNORECASE)


# Appendix B's own layout, as most SMSCs (and the simulator) write it: one match, no scan
# for keys. Values hold no whitespace, so none of them can hide a key; anything else goes
# through the general parse below, which gives the same fields for this layout.
_APPENDIX_B = re.compile(
    r"id:(\S*) sub:(\S*) dlvrd:(\S*) submit date:(\S*) done date:(\S*) stat:(\S*) err:(\S*)"
    r" text:(.*)",
    re.DOTALL,
)
_APPENDIX_B_KEYS = ("id", "sub", "dlvrd", "submit_date", "done_date", "stat", "err", "text")


def parse_receipt_text(text: str) -> dict[str, str]:
    """Key/value pairs of a receipt's text form; keys lower-cased with ``_`` for spaces.

    Tolerates any order, any case, missing and extra fields.
    """
    if (canonical := _APPENDIX_B.fullmatch(text)) is not None:
        values = canonical.groups()
        return dict(zip(_APPENDIX_B_KEYS, (*values[:7], values[7].strip()), strict=True))
    return parse_receipt_fields(text)


def parse_receipt_fields(text: str) -> dict[str, str]:
    """:func:`parse_receipt_text` without its shortcut for appendix B's layout: every key
    found where it stands."""
    fields: dict[str, str] = {}
    matches = list(_KEY.finditer(text))
    for index, match in enumerate(matches):
        key = match.group(1).lower().replace(" ", "_")
        if key in fields:
            continue
        if key == "text":
            fields[key] = text[match.end() :].strip()
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        fields[key] = text[match.end() : end].strip()
    return fields


@dataclass(frozen=True, slots=True)
class ReceiptFields:
    """What a receipt says, from its TLVs where present, else from its text."""

    raw_message_id: str
    state: MessageState | None
    stat: str = ""
    error: str = ""
    submit_date: str = ""
    done_date: str = ""
    delivered: str = ""
    text: str = ""
    network_error_code: bytes | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def final(self) -> bool:
        """True when the state will not change any more."""
        return self.state in FINAL_STATES


_KNOWN = frozenset({"id", "sub", "dlvrd", "submit_date", "done_date", "stat", "err", "text"})


def _state_from_word(word: str) -> MessageState | None:
    return _STAT_WORDS.get(word.strip().upper())


# Plain ints and a lookup table: an enum member's hash and an enum call are Python calls,
# and these run once per receipt.
_RECEIPTED_MESSAGE_ID = int(Tag.RECEIPTED_MESSAGE_ID)
_MESSAGE_STATE = int(Tag.MESSAGE_STATE)
_NETWORK_ERROR_CODE = int(Tag.NETWORK_ERROR_CODE)
_MESSAGE_STATES = {int(state): state for state in MessageState}


def receipt_fields(text: str, tlvs: dict[int, bytes]) -> ReceiptFields:
    """Combine the TLV form and the text form of one receipt (TLVs win on conflict)."""
    parsed = parse_receipt_text(text)
    raw_id = parsed.get("id", "")
    if (receipted := tlvs.get(_RECEIPTED_MESSAGE_ID)) is not None:
        raw_id = tlv_str(receipted) or raw_id
    state = _state_from_word(parsed.get("stat", ""))
    if (message_state := tlvs.get(_MESSAGE_STATE)) is not None:
        # a vendor value outside the spec keeps what the text said
        state = _MESSAGE_STATES.get(tlv_int(message_state), state)
    return ReceiptFields(
        raw_message_id=raw_id,
        state=state,
        stat=parsed.get("stat", ""),
        error=parsed.get("err", ""),
        submit_date=parsed.get("submit_date", ""),
        done_date=parsed.get("done_date", ""),
        delivered=parsed.get("dlvrd", ""),
        text=parsed.get("text", ""),
        network_error_code=tlvs.get(_NETWORK_ERROR_CODE),
        extra={k: v for k, v in parsed.items() if k not in _KNOWN},
    )


_RECEIPT_DATE = re.compile(r"\d{10}(?:\d{2})?")


def parse_receipt_date(value: str, zone: tzinfo) -> datetime | None:
    """An appendix-B receipt date (``submit date``, ``done date``): ``YYMMDDhhmm``, or
    ``YYMMDDhhmmss`` as many SMSCs write it, in the SMSC's local time ``zone`` (the form
    carries no offset). None when empty or not a valid date: a receipt is applied anyway.
    """
    text = value.strip()
    if not _RECEIPT_DATE.fullmatch(text):
        return None
    year, month, day, hour, minute = (int(text[i : i + 2]) for i in range(0, 10, 2))
    second = int(text[10:12]) if len(text) == 12 else 0
    try:
        return datetime(2000 + year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:
        return None


def format_receipt_date(moment: datetime, zone: tzinfo) -> str:
    """``moment`` as an appendix-B receipt date, ``YYMMDDhhmm`` in the SMSC's local
    ``zone`` (what :func:`parse_receipt_date` reads back, to the minute)."""
    return moment.astimezone(zone).strftime("%y%m%d%H%M")


def format_receipt_text(
    message_id: str,
    stat: str,
    *,
    err: str = "000",
    submit_date: str = "",
    done_date: str = "",
    text: str = "",
) -> str:
    """The appendix-B text form, as an SMSC (the simulator) writes it."""
    delivered = "001" if stat == "DELIVRD" else "000"
    return (
        f"id:{message_id} sub:001 dlvrd:{delivered} submit date:{submit_date} "
        f"done date:{done_date} stat:{stat} err:{err} text:{text[:20]}"
    )


_STAT_STATES = {
    "DELIVRD": MessageState.DELIVERED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "EXPIRED": MessageState.EXPIRED,
    "REJECTD": MessageState.REJECTED,
}


def receipt_for(
    sm: ShortMessage, receipt_id: str, stat: str, *, submit_date: str = "", done_date: str = ""
) -> ShortMessage:
    """The deliver_sm an SMSC (the simulator) sends for submitted ``sm``: esm_class
    0x04, the text form (with the dates given, see :func:`format_receipt_date`), and the
    receipted_message_id and message_state TLVs."""
    err = "000" if stat == "DELIVRD" else "001"
    original = sm.short_message[:20].decode("latin-1")
    text = format_receipt_text(
        receipt_id, stat, err=err, submit_date=submit_date, done_date=done_date, text=original
    )
    state = _STAT_STATES.get(stat, MessageState.UNKNOWN)
    return ShortMessage(
        source_addr=sm.destination_addr,
        source_addr_ton=sm.dest_addr_ton,
        source_addr_npi=sm.dest_addr_npi,
        destination_addr=sm.source_addr,
        dest_addr_ton=sm.source_addr_ton,
        dest_addr_npi=sm.source_addr_npi,
        esm_class=0x04,
        short_message=text.encode("latin-1"),
        tlvs={
            Tag.RECEIPTED_MESSAGE_ID: receipt_id.encode("latin-1") + b"\x00",
            Tag.MESSAGE_STATE: bytes((state,)),
        },
    )
