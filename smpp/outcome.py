"""What became of one submit_sm, and which command_status values are worth a retry."""

from __future__ import annotations

from dataclasses import dataclass, field

from smpp.constants import Status, status_name

DEFAULT_TEMPORARY = frozenset(
    {
        Status.ESME_RTHROTTLED,
        Status.ESME_RMSGQFUL,
        Status.ESME_RSYSERR,
        Status.ESME_RX_T_APPN,
        Status.ESME_RSUBMITFAIL,
        Status.ESME_RINVBNDSTS,
        Status.ESME_RUNKNOWNERR,
    }
)
"""Statuses after which the same message may be submitted again later."""

DEFAULT_THROTTLING = frozenset({Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL})
"""Statuses that mean "too fast": they slow the whole bind down for a while."""

DEFAULT_VALIDITY_REFUSED = frozenset({Status.ESME_RINVEXPIRY, Status.ESME_RINVSCHED})
"""Statuses that refuse the submit_sm's validity period or schedule, not the message: that
submit_sm is never accepted (a permanent failure), the message may be in another window."""


@dataclass(frozen=True, slots=True)
class Accepted:
    """The SMSC took the message. ``message_id`` is normalised (see
    :func:`smpp.receipts.normalise_message_id`) so it equals the receipt's."""

    message_id: str
    raw_message_id: str
    sequence: int


@dataclass(frozen=True, slots=True)
class TemporaryFailure:
    """The SMSC refused the message for now; submitting it again later may work."""

    status: int
    sequence: int

    @property
    def status_name(self) -> str:
        return status_name(self.status)


@dataclass(frozen=True, slots=True)
class PermanentFailure:
    """The SMSC refused the message; the same submit_sm will never be accepted."""

    status: int
    sequence: int

    @property
    def status_name(self) -> str:
        return status_name(self.status)


@dataclass(frozen=True, slots=True)
class Unknown:
    """The submit_sm was written to the socket and no response came (timeout, or the
    connection dropped). The SMSC may or may not have it: never resend it blindly."""

    reason: str
    sequence: int


Outcome = Accepted | TemporaryFailure | PermanentFailure | Unknown


@dataclass(frozen=True, slots=True)
class StatusPolicy:
    """Per-SMSC mapping of error command_status values to temporary or permanent, and of
    the ones that count as throttling. Anything not listed as temporary is permanent."""

    temporary: frozenset[int] = field(default=DEFAULT_TEMPORARY)
    throttling: frozenset[int] = field(default=DEFAULT_THROTTLING)

    def failure(self, status: int, sequence: int) -> TemporaryFailure | PermanentFailure:
        """The outcome for a non-zero command_status."""
        if status in self.temporary or status in self.throttling:
            return TemporaryFailure(status, sequence)
        return PermanentFailure(status, sequence)
