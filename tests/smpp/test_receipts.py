"""Receipt parsing (text and TLV forms, vendor variations) and message-id matching."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smpp.constants import MessageState, Tag
from smpp.receipts import (
    MIN_EVIDENCE,
    IdEvidence,
    IdFormat,
    IdSide,
    detect_id_format,
    format_receipt_text,
    normalise_message_id,
    parse_receipt_date,
    parse_receipt_fields,
    parse_receipt_text,
    receipt_fields,
    receipt_id_readings,
)
from smpp.simulator import ID_FORMAT_STYLES, format_id

STANDARD = (
    "id:1234567890 sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 "
    "stat:DELIVRD err:000 text:Hello: world"
)


def test_standard_text_form() -> None:
    """The appendix-B form parses into every field; text keeps its colons."""
    fields = parse_receipt_text(STANDARD)
    assert fields["id"] == "1234567890"
    assert fields["submit_date"] == "2601011200" and fields["done_date"] == "2601011201"
    assert fields["stat"] == "DELIVRD" and fields["err"] == "000"
    assert fields["text"] == "Hello: world"


_VALUE = st.text(st.sampled_from("0aZ:_ \t\n\u00a0xid"), max_size=8)


@given(st.lists(_VALUE, min_size=8, max_size=8), st.booleans())
def test_appendix_b_shortcut_reads_what_the_general_parse_reads(
    values: list[str], canonical: bool
) -> None:
    """The one-match reading of appendix B's layout (issue 16: the receipt's text parse was
    the engine's costliest step a message) gives the fields the key-by-key parse gives, for
    any values, whitespace and colons in them included, and any text at all."""
    text = (
        "id:{} sub:{} dlvrd:{} submit date:{} done date:{} stat:{} err:{} text:{}".format(*values)
        if canonical
        else "".join(values)
    )
    assert parse_receipt_text(text) == parse_receipt_fields(text)


@pytest.mark.parametrize(
    ("text", "raw_id", "state"),
    [
        ("ID:AbC12 STAT:undeliv ERR:001", "AbC12", MessageState.UNDELIVERABLE),
        ("id:77 stat:EXPIRED", "77", MessageState.EXPIRED),
        ("stat:REJECTD id:5 foo:bar", "5", MessageState.REJECTED),
        ("id:0x1F submit_date:2601011200 stat:DELIVERED", "0x1F", MessageState.DELIVERED),
        ("id: 42  sub:1 dlvrd:1 stat: ACCEPTD", "42", MessageState.ACCEPTED),
        ("id:9 stat:WHATEVER", "9", None),
        ("garbage without fields", "", None),
    ],
)
def test_vendor_variations(text: str, raw_id: str, state: MessageState | None) -> None:
    """Case, order, missing and extra fields and unknown states are all tolerated."""
    fields = receipt_fields(text, {})
    assert fields.raw_message_id == raw_id and fields.state == state


def test_extra_fields_are_kept() -> None:
    """Fields the spec does not name end up in ``extra``."""
    assert receipt_fields("id:1 stat:DELIVRD foo:bar", {}).extra == {"foo": "bar"}


def test_tlvs_win_over_text() -> None:
    """receipted_message_id and message_state TLVs take precedence over the text."""
    tlvs = {Tag.RECEIPTED_MESSAGE_ID: b"ff\x00", Tag.MESSAGE_STATE: b"\x05"}
    fields = receipt_fields("id:255 stat:DELIVRD", tlvs)
    assert fields.raw_message_id == "ff" and fields.state is MessageState.UNDELIVERABLE
    assert fields.final


def test_out_of_spec_message_state_keeps_text_state() -> None:
    """A vendor message_state value outside 1..8 falls back to the text's stat."""
    fields = receipt_fields("id:1 stat:EXPIRED", {Tag.MESSAGE_STATE: b"\x63"})
    assert fields.state is MessageState.EXPIRED


@pytest.mark.parametrize(
    ("response", "receipt", "fmt"),
    [
        ("00AbC", "abc", IdFormat.AS_IS),
        ("1F", "31", IdFormat.HEX_RESPONSE_DECIMAL_RECEIPT),
        ("00001f", "0031", IdFormat.HEX_RESPONSE_DECIMAL_RECEIPT),
        ("31", "1F", IdFormat.DECIMAL_RESPONSE_HEX_RECEIPT),
        ("0031", "001f", IdFormat.DECIMAL_RESPONSE_HEX_RECEIPT),
    ],
)
def test_response_and_receipt_ids_match(response: str, receipt: str, fmt: IdFormat) -> None:
    """Both sides of one message normalise to the same id."""
    assert normalise_message_id(response, fmt, IdSide.RESPONSE) == normalise_message_id(
        receipt, fmt, IdSide.RECEIPT
    )


def test_unparseable_id_falls_back_to_plain_form() -> None:
    """A non-hex id on the hex side is normalised, not rejected."""
    assert (
        normalise_message_id(" XYZ-1 ", IdFormat.HEX_RESPONSE_DECIMAL_RECEIPT, IdSide.RESPONSE)
        == "xyz-1"
    )
    assert normalise_message_id("000", IdFormat.AS_IS, IdSide.RECEIPT) == "0"
    assert normalise_message_id("", IdFormat.AS_IS, IdSide.RECEIPT) == ""


@given(st.integers(0, 2**64))
def test_hex_decimal_property(number: int) -> None:
    """For any id, hex in the response and decimal in the receipt match."""
    fmt = IdFormat.HEX_RESPONSE_DECIMAL_RECEIPT
    assert normalise_message_id(f"{number:X}", fmt, IdSide.RESPONSE) == normalise_message_id(
        f"{number:012d}", fmt, IdSide.RECEIPT
    )


@given(
    st.text(alphabet="abcdef0123456789", min_size=1, max_size=20),
    st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED"]),
)
def test_formatted_receipt_parses_back(message_id: str, stat: str) -> None:
    """What the simulator writes, the parser reads back."""
    fields = receipt_fields(format_receipt_text(message_id, stat, text="a:b c"), {})
    assert fields.raw_message_id == message_id and fields.stat == stat


UTC5 = timezone(timedelta(hours=5))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2611231201", datetime(2026, 11, 23, 12, 1, tzinfo=UTC5)),
        ("261123120130", datetime(2026, 11, 23, 12, 1, 30, tzinfo=UTC5)),
        (" 2611231201 ", datetime(2026, 11, 23, 12, 1, tzinfo=UTC5)),
        ("", None),
        ("26112312", None),
        ("26112312011", None),
        ("2613231201", None),
        ("2611231260", None),
        ("26-11-23 12", None),
    ],
)
def test_receipt_date(value: str, expected: datetime | None) -> None:
    """A receipt date is YYMMDDhhmm or YYMMDDhhmmss in the SMSC's zone; anything else is
    None, never an error."""
    assert parse_receipt_date(value, UTC5) == expected


@given(st.datetimes(datetime(2000, 1, 1), datetime(2099, 12, 31, 23, 59, 59)))
def test_receipt_date_round_trip(moment: datetime) -> None:
    """Any second of 2000-2099 written as YYMMDDhhmmss reads back as that instant."""
    exact = moment.replace(microsecond=0, tzinfo=UTC)
    assert parse_receipt_date(exact.strftime("%y%m%d%H%M%S"), UTC) == exact


MISMATCHES = [f for f in IdFormat if f is not IdFormat.AUTO]


def _written(number: int, base: int, zeros: int, upper: bool) -> str:
    text = f"{number:x}" if base == 16 else str(number)
    return "0" * zeros + (text.upper() if upper else text)


@given(
    st.integers(0, 2**128),
    st.sampled_from(MISMATCHES),
    st.integers(0, 6),
    st.integers(0, 6),
    st.booleans(),
)
def test_both_sides_of_one_id_match_under_its_format(
    number: int, fmt: IdFormat, zeros_response: int, zeros_receipt: int, upper: bool
) -> None:
    """Any id, written by an SMSC of any format with any leading zeros and hex case, reads
    the same in the response and in the receipt; the receipt's readings name it too."""
    response_base = 16 if fmt is IdFormat.HEX_RESPONSE_DECIMAL_RECEIPT else 10
    receipt_base = 16 if fmt is IdFormat.DECIMAL_RESPONSE_HEX_RECEIPT else 10
    response = _written(number, response_base, zeros_response, upper)
    receipt = _written(number, receipt_base, zeros_receipt, upper)
    canonical = normalise_message_id(response, fmt, IdSide.RESPONSE)
    assert normalise_message_id(receipt, fmt, IdSide.RECEIPT) == canonical
    assert receipt_id_readings(receipt).under(fmt) == canonical
    auto = normalise_message_id(response, IdFormat.AUTO, IdSide.RESPONSE)
    assert auto == normalise_message_id(response, IdFormat.AS_IS, IdSide.RESPONSE) == canonical


@pytest.mark.parametrize(
    ("raw", "as_is", "as_hex", "as_decimal"),
    [
        ("0031", "31", "1f", "49"),
        ("00AbC", "abc", None, "2748"),
        ("0x1f", "x1f", None, None),  # int() would take the prefix: not an id's digit
        ("1_0", "1_0", None, None),  # nor an underscore
        ("١٢", "١٢", None, None),  # nor another script's digits
        ("000", "0", "0", "0"),
        ("", "", None, None),
        ("9" * 65, "9" * 65, None, None),  # longer than any id: not converted
    ],
)
def test_receipt_id_readings(
    raw: str, as_is: str, as_hex: str | None, as_decimal: str | None
) -> None:
    """A receipt id is read in another base only when it is plain ASCII digits of it."""
    readings = receipt_id_readings(raw)
    assert (readings.as_is, readings.hex_response, readings.decimal_response) == (
        as_is,
        as_hex,
        as_decimal,
    )


def _evidence(numbers: range, fmt: IdFormat, hex_style: str) -> IdEvidence:
    """What dispatch.sql id_format_evidence reports when every receipt's submit is known."""
    response_style, receipt_style = (
        hex_style if style == "hex" else style for style in ID_FORMAT_STYLES[fmt.value]
    )
    submits = {
        normalise_message_id(format_id(n, response_style), fmt, IdSide.RESPONSE) for n in numbers
    }
    total = as_is = as_hex = as_decimal = 0
    for n in numbers:
        readings = receipt_id_readings(format_id(n, receipt_style))
        if readings.hex_response == readings.decimal_response == readings.as_is:
            continue  # every reading the same: says nothing
        total += 1
        as_is += readings.as_is in submits
        as_hex += readings.hex_response in submits
        as_decimal += readings.decimal_response in submits
    return IdEvidence(total, as_is, as_hex, as_decimal)


@given(
    st.one_of(st.just(1), st.integers(1, 10**4), st.integers(1, 10**15)),
    st.integers(1, 400),
    st.sampled_from(MISMATCHES),
    st.sampled_from(["hex", "HEX", "hex0"]),
)
def test_detection_finds_the_format_and_never_a_wrong_one(
    first: int, count: int, fmt: IdFormat, hex_style: str
) -> None:
    """Receipts of any run of ids (small sequential ones too, where a decimal id is also
    valid hex) never detect a wrong format, and detect the right one once there are
    enough of them."""
    evidence = _evidence(range(first, first + count), fmt, hex_style)
    detected = detect_id_format(evidence)
    assert detected in (fmt, None)
    if evidence.receipts >= MIN_EVIDENCE:
        assert detected is fmt


@given(st.integers(0, 200), st.integers(0, 200), st.integers(0, 200), st.integers(0, 200))
def test_detection_needs_one_clear_winner(
    receipts: int, as_is: int, as_hex: int, as_decimal: int
) -> None:
    """A format is detected only over enough receipts, when its reading names a submit for
    nearly all of them and no other reading comes close."""
    hits = (min(as_is, receipts), min(as_hex, receipts), min(as_decimal, receipts))
    evidence = IdEvidence(receipts, *hits)
    detected = detect_id_format(evidence)
    if detected is None:
        return
    assert receipts >= MIN_EVIDENCE
    share = evidence.hits()
    assert share[detected] >= 0.9 * receipts
    assert all(n < 0.75 * receipts for f, n in share.items() if f is not detected)
