"""Delivery receipts: the text form, the TLV form, and message-id matching.

An SMSC reports a message's fate in a deliver_sm whose ``receipted_message_id`` and
``message_state`` TLVs, or whose text ("id:… sub:… dlvrd:… submit date:… done date:…
stat:DELIVRD err:… text:…", appendix B of the spec, which vendors treat loosely), carry
the id from the submit_sm_resp and the final state. These functions are pure.
"""

from __future__ import annotations

import contextlib
import enum
import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from smpp.constants import MessageState, Tag
from smpp.pdu import ShortMessage, tlv_int, tlv_str


class IdFormat(enum.Enum):
    """How one SMSC writes the same message id in submit_sm_resp and in its receipts."""

    AS_IS = "as-is"
    HEX_RESPONSE_DECIMAL_RECEIPT = "hex-response-decimal-receipt"
    DECIMAL_RESPONSE_HEX_RECEIPT = "decimal-response-hex-receipt"


class IdSide(enum.Enum):
    """Where a message id was read."""

    RESPONSE = "response"
    RECEIPT = "receipt"


def _plain(raw: str) -> str:
    text = raw.strip().lower()
    return text.lstrip("0") or ("0" if text else "")


def normalise_message_id(raw: str, fmt: IdFormat, side: IdSide) -> str:
    """Canonical form of a message id, equal for the response and the receipt of one
    message.

    With a conversion configured, the canonical form is the decimal number (no leading
    zeros); otherwise it is the id lower-cased without leading zeros. An id that does not
    parse in the configured base (a vendor that changed its mind) falls back to the
    plain form rather than raising.
    """
    text = raw.strip()
    hex_side = (fmt is IdFormat.HEX_RESPONSE_DECIMAL_RECEIPT and side is IdSide.RESPONSE) or (
        fmt is IdFormat.DECIMAL_RESPONSE_HEX_RECEIPT and side is IdSide.RECEIPT
    )
    if fmt is IdFormat.AS_IS or not text:
        return _plain(text)
    try:
        return str(int(text, 16 if hex_side else 10))
    except ValueError:
        return _plain(text)


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


def parse_receipt_text(text: str) -> dict[str, str]:
    """Key/value pairs of a receipt's text form; keys lower-cased with ``_`` for spaces.

    Tolerates any order, any case, missing and extra fields.
    """
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


def receipt_fields(text: str, tlvs: dict[int, bytes]) -> ReceiptFields:
    """Combine the TLV form and the text form of one receipt (TLVs win on conflict)."""
    parsed = parse_receipt_text(text)
    raw_id = parsed.get("id", "")
    if Tag.RECEIPTED_MESSAGE_ID in tlvs:
        raw_id = tlv_str(tlvs[Tag.RECEIPTED_MESSAGE_ID]) or raw_id
    state = _state_from_word(parsed.get("stat", ""))
    if Tag.MESSAGE_STATE in tlvs:
        # a vendor value outside the spec keeps what the text said
        with contextlib.suppress(ValueError):
            state = MessageState(tlv_int(tlvs[Tag.MESSAGE_STATE]))
    return ReceiptFields(
        raw_message_id=raw_id,
        state=state,
        stat=parsed.get("stat", ""),
        error=parsed.get("err", ""),
        submit_date=parsed.get("submit_date", ""),
        done_date=parsed.get("done_date", ""),
        delivered=parsed.get("dlvrd", ""),
        text=parsed.get("text", ""),
        network_error_code=tlvs.get(Tag.NETWORK_ERROR_CODE),
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
