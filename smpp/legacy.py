"""smpplib's PDU classes behind a safe interface (binds, and a debug decode of anything).

smpplib is the reference field table, but its parser is fragile — read its source
(``smpplib/command.py``) and issue tracker before touching this module:

* unknown or vendor TLVs raise ``UnknownCommandError`` unless
  ``allow_unknown_opt_params`` is set (issues #2, #14, #111);
* a TLV the spec defines but the command class does not list raises ``KeyError``;
* integer TLVs are read with the size from its table, not the length on the wire, so a
  vendor's 2-octet ``message_state`` shifts every later field;
* a C-string without its NUL makes ``find`` return -1 and the slice silently eats the
  rest of the body; a truncated body raises ``struct.error``;
* the ``sequence`` keyword is ignored when a client object is passed (a property reads
  the client's counter), and strings over the spec's maximum are silently truncated —
  a 9-character password would be cut to 8 without a word.

So: encoders check lengths first and set ``sequence`` after construction; decoders
check the layout with :class:`smpp.pdu._Reader`-style bounds first, then let smpplib fill
its object, and turn any exception it still raises into :class:`~smpp.pdu.PduError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import smpplib.command
import smpplib.smpp

from smpp.constants import INTERFACE_VERSION, CommandId, Status
from smpp.pdu import HEADER_SIZE, PduError, encode_header_only, parse_tlvs, split_frame


class _FixedSequence:
    """Stands in for smpplib's client so that PDU construction does not touch a counter."""

    def __init__(self, sequence: int) -> None:
        self.sequence = sequence

    def next_sequence(self) -> int:
        return self.sequence


BIND_COMMANDS = frozenset(
    {CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER, CommandId.BIND_TRANSCEIVER}
)
BIND_RESP_COMMANDS = frozenset(CommandId(c | 0x80000000) for c in BIND_COMMANDS)


@dataclass(frozen=True, slots=True)
class BindRequest:
    """Body of a bind_transmitter / bind_receiver / bind_transceiver.

    The password is kept out of ``repr`` so that it never reaches a log line.
    """

    system_id: str
    password: str = field(repr=False)
    system_type: str = ""
    interface_version: int = INTERFACE_VERSION
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""


_BIND_LIMITS = (("system_id", 16), ("password", 9), ("system_type", 13), ("address_range", 41))


def _generate(name: str, sequence: int, status: int, **fields: Any) -> bytes:
    pdu = smpplib.smpp.make_pdu(name, client=_FixedSequence(sequence), **fields)
    pdu.sequence = sequence  # the constructor ignores the keyword: see the module docstring
    pdu.status = status
    data = pdu.generate()
    assert isinstance(data, bytes)
    return data


def encode_bind(command_id: int, sequence: int, bind: BindRequest) -> bytes:
    """Encode a bind request with smpplib; ``ValueError`` if a field is over its limit."""
    if command_id not in BIND_COMMANDS:
        raise ValueError(f"not a bind command: 0x{command_id:08x}")
    for name, limit in _BIND_LIMITS:
        value: str = getattr(bind, name)
        if len(value.encode("latin-1")) >= limit:
            shown = "***" if name == "password" else repr(value)
            raise ValueError(f"{name} must be under {limit} octets: {shown}")
    return _generate(
        CommandId(command_id).name.lower(),
        sequence,
        0,
        system_id=bind.system_id,
        password=bind.password,
        system_type=bind.system_type,
        addr_ton=bind.addr_ton,
        addr_npi=bind.addr_npi,
        address_range=bind.address_range,
    )


def encode_bind_resp(command_id: int, sequence: int, status: int, system_id: str) -> bytes:
    """Encode a bind_*_resp; an error response has no body, as the spec says."""
    if command_id not in BIND_RESP_COMMANDS:
        raise ValueError(f"not a bind response: 0x{command_id:08x}")
    if status != Status.ESME_ROK:
        return encode_header_only(command_id, sequence, status)
    if len(system_id) >= 16:
        raise ValueError(f"system_id must be under 16 octets: {system_id!r}")
    name = CommandId(command_id).name.lower()
    return _generate(name, sequence, status, system_id=system_id)


def _check_cstrings(body: bytes, count: int, name: str) -> int:
    """Position after ``count`` NUL-terminated strings; PduError if one has no NUL."""
    pos = 0
    for _ in range(count):
        end = body.find(b"\x00", pos)
        if end < 0:
            raise PduError(f"{name}: C-string without NUL", status=Status.ESME_RINVPARLEN)
        pos = end + 1
    return pos


def _parse(frame: bytes) -> Any:
    try:
        return smpplib.smpp.parse_pdu(
            frame, client=_FixedSequence(0), allow_unknown_opt_params=True
        )
    except Exception as exc:  # smpplib raises anything from KeyError to struct.error
        raise PduError(f"smpplib could not parse the PDU: {exc!r}") from exc


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return "" if value is None else str(value)


def decode_bind(frame: bytes) -> BindRequest:
    """Decode a complete bind request frame (header included)."""
    header, body = split_frame(frame)
    if header.command_id not in BIND_COMMANDS:
        raise PduError("not a bind request", status=Status.ESME_RINVCMDID)
    pos = _check_cstrings(body, 3, "bind")
    if pos + 3 > len(body):
        raise PduError("bind: body truncated", status=Status.ESME_RINVMSGLEN)
    _check_cstrings(body[pos + 3 :], 1, "bind address_range")
    pdu = _parse(frame)
    return BindRequest(
        system_id=_text(pdu.system_id),
        password=_text(pdu.password),
        system_type=_text(pdu.system_type),
        interface_version=int(pdu.interface_version or 0),
        addr_ton=int(pdu.addr_ton or 0),
        addr_npi=int(pdu.addr_npi or 0),
        address_range=_text(pdu.address_range),
    )


def decode_bind_resp(frame: bytes) -> str:
    """system_id of a bind_*_resp frame; empty for an error response without a body."""
    header, body = split_frame(frame)
    if header.command_id not in BIND_RESP_COMMANDS:
        raise PduError("not a bind response", status=Status.ESME_RINVCMDID)
    if not body:
        return ""
    pos = _check_cstrings(body, 1, "bind_resp")
    parse_tlvs(body, pos)  # validates the TLV stream before smpplib walks it
    if pos < len(body):
        # smpplib reads any TLV it knows with its own size table; ours was checked above,
        # so hand it the system_id only.
        frame = frame[:HEADER_SIZE] + body[:pos]
        frame = (HEADER_SIZE + pos).to_bytes(4, "big") + frame[4:]
    return _text(_parse(frame).system_id)


def describe(frame: bytes) -> dict[str, object]:
    """Best-effort field dump of any PDU for logs; never raises.

    Used for commands this package does not handle itself (query_sm_resp, data_sm …).
    """
    try:
        header, _ = split_frame(frame)
        pdu = _parse(frame)
    except PduError as exc:
        return {"error": str(exc), "hex": frame[:64].hex()}
    params = getattr(pdu, "params", {})
    fields = {name: getattr(pdu, name, None) for name in params}
    return {"command": pdu.command, "sequence": header.sequence, **fields}


def smpplib_command(frame: bytes) -> Any:
    """The smpplib object for a frame, for interoperability tests; PduError on failure."""
    split_frame(frame)
    return _parse(frame)
