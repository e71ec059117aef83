"""Store-and-forward in the SMSC simulator (see :mod:`smpp.simulator`), as a real SMSC does
it: every deliver_sm it pushes to the ESME — a delivery receipt or an MO message — is kept
until the ESME answers it.

* ``ESME_ROK``: delivered, forgotten.
* a temporary status (:data:`TEMPORARY`): kept, and sent again after ``redeliver_delay``
  (when set) and whenever a receiver binds;
* any other status: refused for good (a permanent error), forgotten, never sent again;
* no answer because the connection was lost: kept, and sent again when a receiver binds.

Receipts go to a receiver bound with the system_id that submitted the message, MO to
any receiver. USSD indications are not stored (a USSD dialogue does not survive its
session on a real network either).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from smpp.constants import CommandId, Status

if TYPE_CHECKING:
    from smpp.sim_connection import SimConnection

log = structlog.get_logger("smpp.simulator")

TEMPORARY = frozenset(
    {
        Status.ESME_RX_T_APPN,
        Status.ESME_RTHROTTLED,
        Status.ESME_RMSGQFUL,
        Status.ESME_RSYSERR,
        Status.ESME_RINVBNDSTS,
    }
)
"""deliver_sm_resp statuses after which the message is delivered again."""


class Kind(enum.Enum):
    RECEIPT = "receipt"
    MO = "mo"


class Fate(enum.Enum):
    PENDING = "pending"
    DELIVERED = "delivered"
    REFUSED = "refused"
    """A permanent error status: not delivered again."""
    DISCARDED = "discarded"
    """Dropped by the store's limit or with store-and-forward off."""


@dataclass(slots=True, eq=False)
class Delivery:
    """One stored deliver_sm and its history."""

    number: int
    kind: Kind
    body: bytes
    system_id: str | None
    """Receipts: the ESME's system_id; MO: None (any receiver)."""
    statuses: list[int] = field(default_factory=list)
    """Every answer so far, in order."""
    attempts: int = 0
    fate: Fate = Fate.PENDING
    in_flight: SimConnection | None = None
    first_answer: asyncio.Future[int] | None = None
    """The status of the first attempt; cancelled if its connection was lost first."""

    def wants(self, conn: SimConnection) -> bool:
        """Whether ``conn`` may receive this delivery."""
        return conn.can_receive and (self.system_id is None or conn.system_id == self.system_id)


class Outbox:
    """The simulator's store of unacknowledged deliver_sm."""

    def __init__(
        self,
        receiver: Callable[[Delivery], SimConnection | None],
        *,
        forward: Callable[[], bool],
        redeliver_delay: Callable[[], float | None],
        limit: Callable[[], int],
        changed: Callable[[], None],
    ) -> None:
        """``receiver`` picks a connection for a delivery (None: nobody bound);
        ``changed`` is called after every answer (the simulator's waiters re-check); the
        other callables read the simulator's options at the moment they matter."""
        self._receiver = receiver
        self._changed = changed
        self._forward = forward
        self._redeliver_delay = redeliver_delay
        self._limit = limit
        self._items: dict[int, Delivery] = {}
        self._numbers = itertools.count(1)
        self.delivered = 0
        self.refused = 0
        self.resent = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def pending(self) -> list[Delivery]:
        """Deliveries not yet acknowledged, oldest first."""
        return list(self._items.values())

    def offer(self, kind: Kind, body: bytes, system_id: str | None = None) -> Delivery:
        """Store a deliver_sm and send it now if a receiver is bound."""
        loop = asyncio.get_running_loop()
        delivery = Delivery(next(self._numbers), kind, body, system_id)
        delivery.first_answer = loop.create_future()
        self._items[delivery.number] = delivery
        while len(self._items) > self._limit():
            oldest = self._items.pop(next(iter(self._items)))
            oldest.fate = Fate.DISCARDED
            log.warning("simulator: store full, oldest deliver_sm discarded", kind=oldest.kind)
        self._send(delivery)
        return delivery

    def on_bind(self, conn: SimConnection) -> int:
        """A receiver bound: send it everything stored for it that is not in flight;
        returns how many."""
        sent = 0
        for delivery in list(self._items.values()):
            if delivery.in_flight is None and delivery.wants(conn):
                sent += self._send(delivery, conn)
        return sent

    def _send(self, delivery: Delivery, conn: SimConnection | None = None) -> bool:
        conn = conn or self._receiver(delivery)
        if conn is None or delivery.fate is not Fate.PENDING:
            return False
        if delivery.attempts:
            self.resent += 1
        delivery.attempts += 1
        delivery.in_flight = conn
        answer = conn.request(CommandId.DELIVER_SM, delivery.body)
        answer.add_done_callback(lambda f: self._answered(delivery, conn, f))
        return True

    def _answered(
        self, delivery: Delivery, conn: SimConnection, answer: asyncio.Future[tuple[int, bytes]]
    ) -> None:
        if delivery.in_flight is conn:
            delivery.in_flight = None
        first = delivery.first_answer
        if answer.cancelled():  # the connection was lost before the deliver_sm_resp
            if first is not None and not first.done():
                first.cancel()
            self._settle(delivery, None)
        else:
            status, _ = answer.result()
            delivery.statuses.append(status)
            if first is not None and not first.done():
                first.set_result(status)
            self._settle(delivery, status)
        self._changed()

    def _settle(self, delivery: Delivery, status: int | None) -> None:
        if status == Status.ESME_ROK:
            delivery.fate = Fate.DELIVERED
            self.delivered += 1
        elif status is not None and status not in TEMPORARY:
            delivery.fate = Fate.REFUSED
            self.refused += 1
            log.info("simulator: deliver_sm refused for good", status=status, kind=delivery.kind)
        elif not self._forward():
            delivery.fate = Fate.DISCARDED
        else:
            delay = self._redeliver_delay()
            if status is not None and delay is not None:
                asyncio.get_running_loop().call_later(delay, self._retry, delivery)
            return
        self._items.pop(delivery.number, None)

    def _retry(self, delivery: Delivery) -> None:
        if delivery.fate is Fate.PENDING and delivery.in_flight is None:
            self._send(delivery)
