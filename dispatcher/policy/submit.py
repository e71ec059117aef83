"""Pure submit policy: what an SMPP outcome means for a message, and retry backoff.

No I/O: functions of their inputs and an explicit ``now`` (STYLE.md, principle 3). The
validity of a submit (R8: it ends when the window closes) is the calendar's answer:
:meth:`dispatcher.policy.calendar.ProgramCalendar.validity_until`.

A message is tried part by part: the parts accepted so far are kept (with the message's
concatenation reference), and a retry sends only the missing ones (R14). An attempt is used
only by a refusal that is the message's own (a temporary SMSC error, a validity refusal):
throttling, a lost bind and the window closing before a part was written use none.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatcher.kernel.states import DeliveryState
from smpp.constants import Status
from smpp.outcome import (
    DEFAULT_THROTTLING,
    DEFAULT_VALIDITY_REFUSED,
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
#: How long the missing parts of a message sent outside the window (no validity of ours)
#: may still follow the parts accepted: the handset's reassembly does not wait forever.
PART_RETRY_LIMIT = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class NotWritten:
    """A part the session gave up before writing it: nothing of it reached the SMSC.
    ``window_closed``: the send window closed while it waited; else the bind was lost."""

    window_closed: bool


PartOutcome = Outcome | NotWritten


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to record for one message after the parts tried this time."""

    state: DeliveryState
    status: int | None
    accepted: tuple[tuple[int, str], ...]  # (part number, message id) accepted this time
    error: str | None = None
    retry_at: datetime | None = None
    attempt_used: bool = True  # whether this try counts against MAX_ATTEMPTS


def backoff(attempt: int, rng: random.Random | None = None) -> timedelta:
    """Delay before retry ``attempt`` (1-based): exponential from 30 s, capped, ±20 % jitter."""
    base = min(BASE_BACKOFF * 2 ** min(max(attempt - 1, 0), 16), MAX_BACKOFF)
    factor = 0.8 + 0.4 * (rng or random).random()
    return timedelta(seconds=base.total_seconds() * factor)


def judge(
    outcomes: Sequence[PartOutcome] | Mapping[int, PartOutcome],
    attempts_before: int,
    now: datetime,
    rng: random.Random | None = None,
    throttling: frozenset[int] = RETRY_SOON,
    *,
    parts: int | None = None,
    sent_before: Collection[int] = (),
    next_window: datetime | None = None,
    retry_until: datetime | None = None,
    validity_refused: frozenset[int] = DEFAULT_VALIDITY_REFUSED,
) -> Verdict:
    """The message's fate from the outcomes of the parts tried now (a sequence: parts 1..n;
    a mapping: by part number), given the ``parts`` it has in all (default: those tried and
    ``sent_before``) and the part numbers accepted by earlier tries (``sent_before``).

    * any part unknown → ``unknown``: it may have reached the subscriber; never resent;
    * every part accepted (now or before) → ``submitted`` (receipts decide);
    * a part refused for good → ``failed``, or ``undelivered`` when other parts went out
      (the message can never be whole: never reported delivered);
    * otherwise the missing parts are tried again, alone, later: a validity refusal or the
      window closing before the write → at ``next_window``; throttling or no bind → in a
      few seconds; another temporary refusal → with backoff, using an attempt, until
      MAX_ATTEMPTS. A message with parts already out gives up (``undelivered``) when that
      retry would fall at or after ``retry_until`` (the accepted parts' validity).
    """
    tried = dict(enumerate(outcomes, 1)) if isinstance(outcomes, Sequence) else dict(outcomes)
    total = parts if parts is not None else len(set(tried) | set(sent_before))
    accepted = tuple(sorted((n, o.message_id) for n, o in tried.items() if isinstance(o, Accepted)))
    done = set(sent_before) | {n for n, _ in accepted}
    failures = [o for o in tried.values() if isinstance(o, TemporaryFailure | PermanentFailure)]
    status = failures[-1].status if failures else 0
    unknown = [o for o in tried.values() if isinstance(o, Unknown)]
    if unknown:
        return Verdict(DeliveryState.UNKNOWN, status or None, accepted, unknown[0].reason)
    if len(done) >= total:
        return Verdict(DeliveryState.SUBMITTED, status, accepted)
    given_up = DeliveryState.UNDELIVERED if done else DeliveryState.FAILED
    missing = f"{total - len(done)} of {total} part(s) not accepted"
    error = f"{missing}: {_name(failures)}" if failures else missing
    validity = [o for o in failures if o.status in validity_refused]
    if any(isinstance(o, PermanentFailure) and o.status not in validity_refused for o in failures):
        return Verdict(given_up, status, accepted, error)
    held = [o for o in tried.values() if isinstance(o, NotWritten) and o.window_closed]
    temporary = [o for o in failures if o.status not in throttling | validity_refused]
    attempt_used = bool(validity or temporary)
    if attempt_used and attempts_before + 1 >= MAX_ATTEMPTS:
        return Verdict(given_up, status, accepted, error)
    if (validity or held) and next_window is not None:
        retry_at = next_window
    elif temporary or validity:
        retry_at = now + backoff(attempts_before + 1, rng)
    else:  # throttled, or not written for want of a bind
        retry_at = now + THROTTLE_BACKOFF * (0.8 + 0.4 * (rng or random).random())
    if done and retry_until is not None and retry_at >= retry_until:
        return Verdict(given_up, status or None, accepted, f"{error} within the validity")
    return Verdict(DeliveryState.QUEUED, status or None, accepted, error, retry_at, attempt_used)


def writable_parts(now: datetime, closes: datetime | None, tps: float) -> int | None:
    """How many parts can still be written at ``tps`` before the window closes at ``closes``
    (None: no close to meet). Never negative."""
    if closes is None:
        return None
    return max(0, math.floor((closes - now).total_seconds() * tps))


def fitting(part_counts: Sequence[int], budget: int | None) -> int:
    """How many of the messages (their part counts, in sending order) fit whole into
    ``budget`` parts: a message is never started whose parts cannot all be written
    (None: no limit). A message with no parts (it fails unsent) costs nothing."""
    if budget is None:
        return len(part_counts)
    used = 0
    for taken, count in enumerate(part_counts):
        used += count
        if used > budget:
            return taken
    return len(part_counts)


def _name(failures: Sequence[TemporaryFailure | PermanentFailure]) -> str:
    return failures[-1].status_name if failures else "no outcome"
