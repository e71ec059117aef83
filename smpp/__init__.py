"""SMPP 3.4 for an ESME: PDU codec, asyncio session, receipts, text, SMSC simulator.

The names most callers need are re-exported here; see :mod:`smpp.session` for the
session's contract.
"""

from smpp.config import Address, BindMode, SessionConfig
from smpp.errors import (
    AuthenticationFailed,
    BindRefused,
    DeadlinePassed,
    InboundRejected,
    NotBound,
    SessionClosed,
    SmppError,
)
from smpp.inbound import DeliveryReceipt, InboundEvent, MoMessage, UssdIndication
from smpp.outcome import (
    Accepted,
    Outcome,
    PermanentFailure,
    StatusPolicy,
    TemporaryFailure,
    Unknown,
)
from smpp.receipts import IdFormat, IdSide, normalise_message_id
from smpp.session import InboundHandler, Session
from smpp.stats import SessionState, SessionStats

__all__ = [
    "Accepted",
    "Address",
    "AuthenticationFailed",
    "BindMode",
    "BindRefused",
    "DeadlinePassed",
    "DeliveryReceipt",
    "IdFormat",
    "IdSide",
    "InboundEvent",
    "InboundHandler",
    "InboundRejected",
    "MoMessage",
    "NotBound",
    "Outcome",
    "PermanentFailure",
    "Session",
    "SessionClosed",
    "SessionConfig",
    "SessionState",
    "SessionStats",
    "SmppError",
    "StatusPolicy",
    "TemporaryFailure",
    "Unknown",
    "UssdIndication",
    "normalise_message_id",
]
