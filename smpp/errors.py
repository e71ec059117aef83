"""Exceptions of the SMPP layer. None of them means a submit_sm was written: an outcome
of a written submit_sm is always returned, never raised."""

from __future__ import annotations

from smpp.constants import status_name


class SmppError(Exception):
    """Base class of this package's exceptions."""


class BindRefused(SmppError):
    """The SMSC answered the bind with an error status (retried with backoff)."""

    def __init__(self, status: int, role: str) -> None:
        super().__init__(f"{role} bind refused: {status_name(status)}")
        self.status = status
        self.role = role


class AuthenticationFailed(BindRefused):
    """The SMSC rejected the credentials (ESME_RINVPASWD and the like): the session
    stops and does not retry, so that a wrong password cannot lock the account."""


class SessionClosed(SmppError):
    """The session is closing or closed (or stopped after :class:`AuthenticationFailed`,
    which is then the ``__cause__``); nothing was sent."""


class NotBound(SmppError):
    """No bound transmitter within the time the caller allowed; nothing was sent."""


class DeadlinePassed(SmppError):
    """The caller's condition for writing (a send window still open) no longer held when the
    submit_sm's turn came, after waiting for the window, the bind and the pace; nothing was
    sent."""


class InboundRejected(SmppError):
    """Raised by an inbound handler for a PDU that can never be applied (a receipt whose
    message id holds a NUL, say): the session answers it with a permanent error status
    (``status``, else the session's ``malformed_deliver_status``) so the SMSC does not
    deliver it again, and logs ``reason`` once. The reason must not hold an MSISDN."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
