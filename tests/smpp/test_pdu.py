"""Byte-level tests of the PDU codec, with hex fixtures and smpplib as the reference."""

from __future__ import annotations

import pytest
import smpplib.command_codes
import smpplib.consts
import smpplib.smpp

from smpp import legacy
from smpp.constants import CommandId, Status, Tag, status_name
from smpp.pdu import (
    FrameError,
    PduError,
    ShortMessage,
    decode_message_id,
    decode_short_message,
    encode_header_only,
    encode_message_id_resp,
    encode_short_message,
    parse_header,
    parse_tlvs,
    split_frame,
    tlv_int,
    tlv_str,
)

# submit_sm as smpplib 2.2.4 generates it (sequence 1)
SUBMIT_HEX = (
    "00000053000000040000000000000001"
    "00"
    "0500"
    "534d41525400"
    "0101"
    "373730313132333435363700"
    "000000"
    "00"
    "00"
    "01000000"
    "22"
    "48656c6c6f20776f726c64207468697320697320612074657374206d657373616765"
)
SUBMIT = ShortMessage(
    source_addr="SMART",
    source_addr_ton=5,
    destination_addr="77011234567",
    dest_addr_ton=1,
    dest_addr_npi=1,
    registered_delivery=1,
    short_message=b"Hello world this is a test message",
)
# deliver_sm receipt: esm_class 0x04, text form plus receipted_message_id and message_state
RECEIPT_HEX = (
    "00000010"
    "00000005"
    "00000000"
    "0000002a"  # length patched below
    "00"
    "0101"
    "373730313132333435363700"
    "0500"
    "534d41525400"
    "040000"
    "00"
    "00"
    "00000000"
    "15"
    "69643a303030303120737461743a44454c49565244"  # "id:00001 stat:DELIVRD"
    "001e0006"
    "303030303100"
    "04270001"
    "02"
)


def _patched(hex_frame: str) -> bytes:
    frame = bytearray.fromhex(hex_frame)
    frame[0:4] = len(frame).to_bytes(4, "big")
    return bytes(frame)


def test_submit_sm_encodes_to_smpplib_bytes() -> None:
    """Our fast submit_sm encoder produces smpplib's bytes exactly."""
    assert encode_short_message(CommandId.SUBMIT_SM, 1, SUBMIT).hex() == SUBMIT_HEX


def test_submit_sm_matches_smpplib_generate() -> None:
    """Same bytes as smpplib.make_pdu(...).generate() with TLVs and odd fields."""
    sm = ShortMessage(
        source_addr="1204",
        source_addr_ton=3,
        destination_addr="77001112233",
        dest_addr_ton=1,
        dest_addr_npi=1,
        esm_class=0x40,
        data_coding=8,
        validity_period="260101120000000+",
        short_message=bytes(range(1, 50)),
        tlvs={Tag.SAR_MSG_REF_NUM: b"\x00\x07"},
    )
    ours = encode_short_message(CommandId.SUBMIT_SM, 9, sm)
    theirs = smpplib.smpp.make_pdu(
        "submit_sm",
        client=legacy._FixedSequence(9),
        source_addr="1204",
        source_addr_ton=3,
        destination_addr="77001112233",
        dest_addr_ton=1,
        dest_addr_npi=1,
        esm_class=0x40,
        data_coding=8,
        validity_period="260101120000000+",
        short_message=bytes(range(1, 50)),
        sar_msg_ref_num=7,
    )
    theirs.sequence = 9
    assert ours == theirs.generate()


def test_submit_sm_round_trip_and_smpplib_parses_it() -> None:
    """A submit_sm decodes back to its fields, and smpplib reads the same fields."""
    frame = bytes.fromhex(SUBMIT_HEX)
    header, body = split_frame(frame)
    assert header == (0x53, CommandId.SUBMIT_SM, 0, 1)
    assert decode_short_message(body) == SUBMIT
    parsed = legacy.smpplib_command(frame)
    assert parsed.destination_addr == b"77011234567"
    assert parsed.short_message == SUBMIT.short_message


def test_receipt_deliver_sm_decodes_tlvs() -> None:
    """A receipt deliver_sm fixture decodes mandatory fields and both TLVs."""
    header, body = split_frame(_patched(RECEIPT_HEX))
    assert header.command_id == CommandId.DELIVER_SM and header.sequence == 42
    sm = decode_short_message(body)
    assert sm.esm_class == 0x04 and sm.source_addr == "77011234567"
    assert sm.short_message.startswith(b"id:00001")
    assert tlv_str(sm.tlvs[Tag.RECEIPTED_MESSAGE_ID]) == "00001"
    assert tlv_int(sm.tlvs[Tag.MESSAGE_STATE]) == 2


def test_submit_sm_resp_fixture() -> None:
    """submit_sm_resp bytes equal smpplib's, and the message_id reads back."""
    frame = encode_message_id_resp(CommandId.SUBMIT_SM_RESP, 1, 0, "abcdef12")
    assert frame.hex() == "00000019800000040000000000000001616263646566313200"
    assert decode_message_id(split_frame(frame)[1]) == "abcdef12"


def test_error_response_has_no_body() -> None:
    """An error submit_sm_resp is a bare header; decoding it gives an empty id."""
    frame = encode_message_id_resp(CommandId.SUBMIT_SM_RESP, 3, Status.ESME_RTHROTTLED, "x")
    assert frame.hex() == "00000010800000040000005800000003"
    assert decode_message_id(b"") == ""


def test_message_id_without_nul_is_tolerated() -> None:
    """A vendor's submit_sm_resp without the terminating NUL still yields the id."""
    assert decode_message_id(b"ABC123") == "ABC123"


def test_header_only_pdus() -> None:
    """enquire_link and generic_nack fixtures."""
    assert encode_header_only(CommandId.ENQUIRE_LINK, 7).hex() == "00000010000000150000000000000007"
    nack = encode_header_only(CommandId.GENERIC_NACK, 9, Status.ESME_RINVCMDID)
    assert nack.hex() == "00000010800000000000000300000009"


@pytest.mark.parametrize("length", [0, 15, 70000])
def test_command_length_out_of_bounds_is_a_frame_error(length: int) -> None:
    """command_length below 16 or above the bound raises FrameError with RINVCMDLEN."""
    data = length.to_bytes(4, "big") + bytes.fromhex("000000040000000000000005")
    with pytest.raises(FrameError) as info:
        parse_header(data)
    assert info.value.status == Status.ESME_RINVCMDLEN and info.value.sequence == 5


def test_frame_length_mismatch() -> None:
    """A frame shorter than its command_length is rejected."""
    with pytest.raises(FrameError):
        split_frame(bytes.fromhex(SUBMIT_HEX)[:-1])


@pytest.mark.parametrize("cut", range(0, 50, 3))
def test_truncated_body_raises_typed_error(cut: int) -> None:
    """Any truncation of a submit_sm body raises PduError, never IndexError."""
    body = bytes.fromhex(SUBMIT_HEX)[16:]
    with pytest.raises(PduError):
        decode_short_message(body[:cut])


def test_c_string_without_nul() -> None:
    """A C-string running to the end of the body is ESME_RINVPARLEN."""
    with pytest.raises(PduError) as info:
        decode_short_message(b"CMT")
    assert info.value.status == Status.ESME_RINVPARLEN


def test_unknown_and_vendor_tlvs_are_kept() -> None:
    """Unknown tags (0x1400 vendor range) are kept raw, as the spec says to ignore them."""
    body = bytes.fromhex(SUBMIT_HEX)[16:] + bytes.fromhex("140100020a0b042700020002")
    sm = decode_short_message(body)
    assert sm.tlvs[0x1401] == b"\x0a\x0b"
    assert tlv_int(sm.tlvs[Tag.MESSAGE_STATE]) == 2  # a 2-octet message_state still reads


def test_trailing_nul_after_short_message_is_tolerated() -> None:
    """A vendor's stray NUL after short_message is not taken for a broken TLV."""
    assert parse_tlvs(b"\x00", 0) == {}
    with pytest.raises(PduError):
        parse_tlvs(b"\x01\x02", 0)


def test_tlv_running_past_body() -> None:
    """A TLV whose length runs past the body is ESME_RINVOPTPARSTREAM."""
    with pytest.raises(PduError) as info:
        parse_tlvs(bytes.fromhex("04240010aabb"))
    assert info.value.status == Status.ESME_RINVOPTPARSTREAM


def test_encoder_rejects_overlong_fields() -> None:
    """Encoders raise ValueError on fields the spec does not allow."""
    with pytest.raises(ValueError):
        encode_short_message(4, 1, ShortMessage(destination_addr="1" * 21))
    with pytest.raises(ValueError):
        encode_short_message(4, 1, ShortMessage(short_message=b"x" * 255))
    with pytest.raises(ValueError):
        encode_short_message(4, 1, ShortMessage(validity_period="000001"))


def test_bind_round_trip_through_smpplib() -> None:
    """Bind encode/decode (via smpplib) round-trips, and the password is not in repr."""
    bind = legacy.BindRequest("esme", "s3cret", "VMA", addr_ton=1, address_range="^7701")
    frame = legacy.encode_bind(CommandId.BIND_TRANSCEIVER, 5, bind)
    assert frame.hex() == (
        "0000002900000009000000000000000565736d650073336372657400564d41003401005e3737303100"
    )
    decoded = legacy.decode_bind(frame)
    assert decoded == bind and "s3cret" not in repr(decoded)


def test_bind_refuses_password_smpplib_would_truncate() -> None:
    """A 9-character password raises instead of being silently cut to 8 by smpplib."""
    with pytest.raises(ValueError) as info:
        legacy.encode_bind(CommandId.BIND_TRANSMITTER, 1, legacy.BindRequest("a", "123456789"))
    assert "123456789" not in str(info.value)


def test_bind_resp_with_sc_interface_version() -> None:
    """bind_resp with the sc_interface_version TLV yields the SMSC system_id."""
    frame = _patched("00000000800000090000000000000001534d5343000210000134")
    assert legacy.decode_bind_resp(frame) == "SMSC"
    error = legacy.encode_bind_resp(CommandId.BIND_TRANSCEIVER_RESP, 1, Status.ESME_RINVPASWD, "")
    assert error.hex() == "00000010800000090000000e00000001"
    assert legacy.decode_bind_resp(error) == ""


def test_bind_without_nul_is_pdu_error() -> None:
    """A bind whose strings lack NULs is rejected before smpplib mis-slices it."""
    with pytest.raises(PduError):
        legacy.decode_bind(_patched("0000000000000009000000000000000165736d65"))


def test_describe_never_raises() -> None:
    """The debug decoder returns an error entry instead of raising."""
    assert "error" in legacy.describe(b"\x00\x00\x00\x10garbage!")
    assert legacy.describe(bytes.fromhex(SUBMIT_HEX))["command"] == "submit_sm"


def test_constants_agree_with_smpplib() -> None:
    """Our command ids and statuses are smpplib's."""
    for name, code in smpplib.command_codes.commands.items():
        assert CommandId[name.upper()] == code
    for status in Status:
        assert getattr(smpplib.consts, "SMPP_" + status.name, status.value) == status.value
    assert status_name(0x58) == "ESME_RTHROTTLED" and status_name(0x47E) == "0x0000047e"
