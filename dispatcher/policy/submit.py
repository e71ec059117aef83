"""Pure submit policy: what an SMPP outcome means for a message, and retry backoff.

No I/O: functions of their inputs and an explicit ``now`` (STYLE.md, principle 3). The
validity of a submit (R8: it ends when the window closes) is the calendar's answer:
:meth:`dispatcher.policy.calendar.ProgramCalendar.validity_until`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatcher.kernel.states import DeliveryState
from smpp.constants import Status
from smpp.outcome import (
    DEFAULT_THROTTLING,
    Accepted,
    Outcome,
    PermanentFailure,
    TemporaryFailure,
    Unknown,
)

MAX_ATTEMPTS = 5
BASE_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(minutes=30)
#: A throttled message is not at fault: it is retried soon and without using up attempts
#: (the session has already slowed the bind down).
THROTTLE_BACKOFF = timedelta(seconds=5)
#: Refusals retried soon without using an attempt: throttling, and "not bound" (the SMSC's
#: ESME_RINVBNDSTS, or a submit given up unwritten while the bind was down).
RETRY_SOON = DEFAULT_THROTTLING | {Status.ESME_RINVBNDSTS}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to record for one message after all its parts were tried."""

    state: DeliveryState
    status: int | None
    accepted: tuple[tuple[int, str], ...]  # (part number, message id) of accepted parts
    error: str | None = None
    retry_at: datetime | None = None


def backoff(attempt: int, rng: random.Random | None = None) -> timedelta:
    """Delay before retry ``attempt`` (1-based): exponential from 30 s, capped, ±20 % jitter."""
    base = min(BASE_BACKOFF * 2 ** min(max(attempt - 1, 0), 16), MAX_BACKOFF)
    factor = 0.8 + 0.4 * (rng or random).random()
    return timedelta(seconds=base.total_seconds() * factor)


def judge(
    outcomes: Sequence[Outcome],
    attempts_before: int,
    now: datetime,
    rng: random.Random | None = None,
    throttling: frozenset[int] = RETRY_SOON,
) -> Verdict:
    """The message's fate from its parts' outcomes (in part order).

    * any part unknown → ``unknown``: it may have reached the subscriber; never resent;
    * some part accepted → ``submitted`` (receipts decide; refused parts are noted);
    * nothing accepted, all refusals throttling → ``queued`` for a few seconds;
    * nothing accepted, all refusals temporary, attempts left → ``queued`` with backoff;
    * otherwise → ``failed`` (its cap slot is released).
    """
    accepted = tuple(
        (n, o.message_id) for n, o in enumerate(outcomes, 1) if isinstance(o, Accepted)
    )
    failures = [o for o in outcomes if isinstance(o, TemporaryFailure | PermanentFailure)]
    status = failures[-1].status if failures else 0
    unknown = [o for o in outcomes if isinstance(o, Unknown)]
    if unknown:
        return Verdict(DeliveryState.UNKNOWN, status or None, accepted, unknown[0].reason)
    if accepted:
        error = f"{len(failures)} part(s) refused" if failures else None
        return Verdict(DeliveryState.SUBMITTED, status, accepted, error)
    if failures and all(o.status in throttling for o in failures):
        retry_at = now + THROTTLE_BACKOFF * (0.8 + 0.4 * (rng or random).random())
        return Verdict(DeliveryState.QUEUED, status, (), _name(failures), retry_at)
    temporary = all(isinstance(o, TemporaryFailure) for o in failures)
    attempt = attempts_before + 1
    if temporary and attempt < MAX_ATTEMPTS:
        retry_at = now + backoff(attempt, rng)
        return Verdict(DeliveryState.QUEUED, status, (), _name(failures), retry_at)
    return Verdict(DeliveryState.FAILED, status, (), _name(failures))


def _name(failures: Sequence[TemporaryFailure | PermanentFailure]) -> str:
    return failures[-1].status_name if failures else "no outcome"
