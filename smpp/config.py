"""Configuration of an ESME session, and the small value types its API takes."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from smpp.constants import CommandId, Status
from smpp.outcome import StatusPolicy
from smpp.pdu import DEFAULT_MAX_PDU
from smpp.ratelimit import Backoff, ThrottlePolicy
from smpp.receipts import IdFormat


class BindMode(enum.Enum):
    """How the session binds: one transceiver, a transmitter + receiver pair, or a
    transmitter alone (no receipts or MO on this session)."""

    TRANSCEIVER = "transceiver"
    TRANSMITTER_RECEIVER = "transmitter+receiver"
    TRANSMITTER = "transmitter"


class Role(enum.Enum):
    """One connection's bind command."""

    TRANSCEIVER = CommandId.BIND_TRANSCEIVER
    TRANSMITTER = CommandId.BIND_TRANSMITTER
    RECEIVER = CommandId.BIND_RECEIVER

    @property
    def sends(self) -> bool:
        return self is not Role.RECEIVER

    @property
    def receives(self) -> bool:
        return self is not Role.TRANSMITTER


ROLES: dict[BindMode, tuple[Role, ...]] = {
    BindMode.TRANSCEIVER: (Role.TRANSCEIVER,),
    BindMode.TRANSMITTER_RECEIVER: (Role.TRANSMITTER, Role.RECEIVER),
    BindMode.TRANSMITTER: (Role.TRANSMITTER,),
}

DEFAULT_FATAL_BIND = frozenset(
    {Status.ESME_RINVPASWD, Status.ESME_RINVSYSID, Status.ESME_RBINDFAIL}
)
"""Bind refusals that stop the session instead of retrying: retrying a wrong password
only gets an account locked. ESME_RBINDFAIL is here because many SMSCs answer bad
credentials with it; drop it from the set for an SMSC that uses it for "too many binds"."""


@dataclass(frozen=True, slots=True)
class Address:
    """An SMPP address: digits or alphanumeric sender, with its TON and NPI."""

    addr: str
    ton: int = 0
    npi: int = 0

    @classmethod
    def international(cls, msisdn: str) -> Address:
        """E.164 number without '+': TON international, NPI ISDN."""
        return cls(msisdn.lstrip("+"), 1, 1)

    @classmethod
    def alphanumeric(cls, name: str) -> Address:
        """Alphanumeric sender id: TON alphanumeric, NPI unknown."""
        return cls(name, 5, 0)

    @classmethod
    def short_code(cls, code: str) -> Address:
        """Network-specific short code: TON network specific, NPI unknown."""
        return cls(code, 3, 0)


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything one ESME session needs; times are in seconds on the session's clock.

    ``window`` bounds requests outstanding at once, ``tps`` (None = unlimited) is the
    token-bucket rate with bucket size ``burst``. ``first_sequence`` exists for tests of
    the 0x7FFFFFFF wrap. ``id_format``: how the SMSC writes one message's id in the response
    and in the receipt; a receipt's id is converted to the response's form when it is set,
    and left as-is under ``AUTO`` (the default), where the dispatcher detects the format
    from its store of submits.

    Inbound work is bounded: at most ``inbound_concurrency`` handlers run at once, and
    at most ``inbound_backlog`` deliver_sm (plus the parts of one message completed by
    the last one read) are queued or being handled; while the backlog is full a
    receiving connection stops reading, so TCP pushes back on the SMSC. A connection
    that is owed a response (a submit_sm_resp on a transceiver) keeps reading instead,
    and answers the deliver_sm it reads meanwhile with ``inbound_full_status`` (a
    temporary error: the SMSC delivers them again). Concatenated MO parts wait in a
    buffer of at most ``reassembly_max`` messages, ``reassembly_max_parts`` parts and
    ``reassembly_max_bytes`` bytes, for ``reassembly_timeout`` seconds at most.
    """

    host: str
    port: int
    system_id: str
    password: str = field(repr=False)
    system_type: str = ""
    bind_mode: BindMode = BindMode.TRANSCEIVER
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    window: int = 64
    tps: float | None = None
    burst: int = 1
    response_timeout: float = 30.0
    enquire_link_interval: float = 30.0
    enquire_link_timeout: float = 10.0
    connect_timeout: float = 10.0
    bind_timeout: float = 10.0
    unbind_timeout: float = 5.0
    max_pdu_length: int = DEFAULT_MAX_PDU
    reconnect: Backoff = field(default_factory=Backoff)
    throttle: ThrottlePolicy = field(default_factory=ThrottlePolicy)
    status_policy: StatusPolicy = field(default_factory=StatusPolicy)
    fatal_bind_statuses: frozenset[int] = DEFAULT_FATAL_BIND
    id_format: IdFormat = IdFormat.AUTO
    reconnect_on_unbind: bool = True
    handler_error_status: int = Status.ESME_RX_T_APPN
    malformed_deliver_status: int = Status.ESME_RX_P_APPN
    inbound_concurrency: int = 64
    inbound_backlog: int = 1000
    inbound_full_status: int = Status.ESME_RX_T_APPN
    reassembly_timeout: float = 60.0
    reassembly_max: int = 1000
    reassembly_max_parts: int = 10_000
    reassembly_max_bytes: int = 4 * 1024 * 1024
    first_sequence: int = 1

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if self.inbound_concurrency < 1 or self.inbound_backlog < 1:
            raise ValueError("inbound_concurrency and inbound_backlog must be at least 1")
        if not 1 <= self.first_sequence <= 0x7FFFFFFF:
            raise ValueError("first_sequence must be within 1..0x7FFFFFFF")

    @property
    def roles(self) -> tuple[Role, ...]:
        return ROLES[self.bind_mode]
