"""Hypothesis fuzzing of every decoder: random and mutated frames raise PduError or
nothing, never anything else."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smpp import legacy
from smpp.constants import CommandId
from smpp.inbound import Reassembler, classify
from smpp.pdu import (
    PduError,
    ShortMessage,
    decode_message_id,
    decode_short_message,
    encode_short_message,
    split_frame,
)
from smpp.receipts import IdFormat

SEED_FRAMES = [
    encode_short_message(
        CommandId.DELIVER_SM,
        7,
        ShortMessage(
            source_addr="77011234567",
            destination_addr="1204",
            esm_class=0x40,
            short_message=bytes.fromhex("050003070201") + b"STOP",
            tlvs={0x0424: b"", 0x020C: b"\x00\x07", 0x1400: b"vendor"},
        ),
    ),
    legacy.encode_bind(CommandId.BIND_TRANSCEIVER, 1, legacy.BindRequest("esme", "pw")),
    bytes.fromhex("0000001a800000090000000000000001534d5343000210000134"),
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(st.sampled_from(SEED_FRAMES)))
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(0, len(frame) - 1)))
        if action == "flip" and frame:
            frame[pos] = draw(st.integers(0, 255))
        elif action == "cut":
            del frame[pos:]
        elif action == "insert":
            frame[pos:pos] = draw(st.binary(max_size=8))
        elif frame:
            del frame[pos]
    if draw(st.booleans()) and len(frame) >= 4:
        frame[0:4] = len(frame).to_bytes(4, "big")  # keep the framing plausible
    return bytes(frame)


def _decode_everything(frame: bytes) -> None:
    try:
        _header, body = split_frame(frame)
    except PduError:
        return
    decode_message_id(body)
    try:
        sm = decode_short_message(body)
    except PduError:
        pass
    else:
        classify(sm, 1, 0.0, Reassembler(timeout=1.0, max_groups=2), IdFormat.AS_IS)
    for decoder in (legacy.decode_bind, legacy.decode_bind_resp):
        with contextlib.suppress(PduError):
            decoder(frame)
    legacy.describe(frame)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoders(data: bytes) -> None:
    """Random bytes raise only PduError from every decoder, the inbound path included."""
    _decode_everything(data)
    _decode_everything(len(data).to_bytes(4, "big") + data[4:] if len(data) >= 16 else data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_frames_never_crash_the_decoders(frame: bytes) -> None:
    """Flipped, cut, grown and shrunk valid frames raise only PduError."""
    _decode_everything(frame)
