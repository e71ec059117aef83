"""Counters of one session, for metrics; plain attributes, no metrics library here."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field


class SessionState(enum.Enum):
    """Life cycle of a session (for TX+RX, the least advanced of the two binds)."""

    DISCONNECTED = "disconnected"
    BINDING = "binding"
    BOUND = "bound"
    UNBINDING = "unbinding"
    CLOSED = "closed"


@dataclass(slots=True)
class SessionStats:
    """Monotonic counters since the session was created (never reset)."""

    submitted: int = 0
    """submit_sm written to a socket."""
    accepted: int = 0
    temporary_failures: int = 0
    permanent_failures: int = 0
    unknown: int = 0
    throttled: int = 0
    """Responses with a throttling status (each slows the bind down)."""
    timeouts: int = 0
    responses_by_status: Counter[int] = field(default_factory=Counter)
    binds: int = 0
    bind_failures: int = 0
    disconnects: int = 0
    enquire_links_sent: int = 0
    enquire_links_received: int = 0
    generic_nacks_sent: int = 0
    generic_nacks_received: int = 0
    unexpected_responses: int = 0
    malformed_pdus: int = 0
    deliver_sm_received: int = 0
    receipts: int = 0
    mo_messages: int = 0
    ussd_indications: int = 0
    handler_errors: int = 0
    inbound_refused: int = 0
    """deliver_sm answered with the temporary ``inbound_full_status``: read while the
    inbound backlog was full, by a connection that had to keep reading for a response."""
    inbound_dropped: int = 0
    """Inbound events not handled because every connection they came on had closed
    before a handler was free (unacknowledged: the SMSC delivers them again)."""
    reader_pauses: int = 0
    """Times a receiving connection stopped reading because the inbound backlog was full."""
    inbound_rejected: int = 0
    """Inbound PDUs the application refused for good (answered with a permanent error)."""
    unbinds_received: int = 0
