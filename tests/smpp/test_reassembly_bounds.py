"""The reassembly buffer is bounded in bytes, parts, groups and age whatever the SMSC sends
(issue 11: 80 never-completed groups of 49 parts held 310 MiB), and no part is lost: each
deliver_sm fed is handed back exactly once, in a ready event, for its deliver_sm_resp."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from smpp.constants import Tag
from smpp.inbound import MoMessage, Reassembler, part_bytes
from smpp.pdu import ShortMessage

MAX_BYTES, MAX_PARTS, MAX_GROUPS, TIMEOUT = 20_000, 40, 6, 30.0


@dataclass(frozen=True)
class Fed:
    sm: ShortMessage
    size: int
    advance: float


@st.composite
def parts(draw: st.DrawFn) -> Fed:
    """One deliver_sm of a concatenated MO: UDH or SAR, a group claiming up to 255 parts,
    user data up to 4 KiB in short_message or message_payload."""
    reference = draw(st.integers(0, 5))
    total = draw(st.sampled_from([2, 3, 49, 255]))
    seqnum = draw(st.integers(1, total))
    data = b"x" * draw(st.sampled_from([0, 1, 100, 140, 1_000, 4_000]))
    if draw(st.booleans()):
        user_data = bytes((5, 0, 3, reference, total, seqnum)) + data
        long = len(user_data) > 254
        sm = ShortMessage(
            source_addr=draw(st.sampled_from(["7701", "7702"])),
            destination_addr="5555",
            esm_class=0x40,
            short_message=b"" if long else user_data,
            tlvs={Tag.MESSAGE_PAYLOAD: user_data} if long else {},
        )
    else:
        sm = ShortMessage(
            source_addr="7701",
            destination_addr="5555",
            short_message=b"" if len(data) > 254 else data,
            tlvs={
                Tag.SAR_MSG_REF_NUM: reference.to_bytes(2, "big"),
                Tag.SAR_TOTAL_SEGMENTS: bytes((total,)),
                Tag.SAR_SEGMENT_SEQNUM: bytes((seqnum,)),
                **({Tag.MESSAGE_PAYLOAD: data} if len(data) > 254 else {}),
            },
        )
    advance = draw(st.sampled_from([0.0, 0.0, 0.5, 10.0, 31.0]))
    return Fed(sm, len(sm.short_message) + sum(len(v) for v in sm.tlvs.values()), advance)


@settings(max_examples=200, deadline=None)
@given(stream=st.lists(parts(), max_size=120))
def test_reassembly_buffer_stays_within_its_bounds(stream: list[Fed]) -> None:
    """After every part: the bytes of the parts held (as received), their number, the
    groups and the oldest group's age are within the limits; every token comes back once."""
    r: Reassembler[int] = Reassembler(
        timeout=TIMEOUT, max_groups=MAX_GROUPS, max_parts=MAX_PARTS, max_bytes=MAX_BYTES
    )
    held: dict[int, tuple[int, float]] = {}  # token -> (bytes, time fed)
    returned: Counter[int] = Counter()
    now = 0.0
    for token, fed in enumerate(stream):
        now += fed.advance
        assert part_bytes(fed.sm) == fed.size
        held[token] = (fed.size, now)
        for ready in r.feed(fed.sm, token, now):
            assert isinstance(ready.event, MoMessage)
            for t in ready.tokens:
                returned[t] += 1
                held.pop(t)
        assert sum(size for size, _ in held.values()) <= MAX_BYTES
        assert len(held) <= MAX_PARTS
        assert len(r) <= MAX_GROUPS
        assert all(now - fed_at < TIMEOUT for _, fed_at in held.values())
        assert (r.buffered_bytes, r.buffered_parts) == (
            sum(size for size, _ in held.values()),
            len(held),
        )
    for ready in r.drain():
        returned.update(ready.tokens)
    assert returned == Counter(range(len(stream)))
    assert (r.buffered_bytes, r.buffered_parts, len(r)) == (0, 0, 0)
