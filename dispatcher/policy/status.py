"""What a campaign is doing, in plain words (issue 14): one pure function of the campaign's
state, its delivery counts, the clock, the program calendar, the SMSC bind and the program
messages queued ahead of it.

The answer is a :class:`CampaignStatus`: a plain ``phrase`` first ("waiting", "sending",
"sent", …), the ``reason`` as a stable code, the instant it is waiting for (``until``) and a
sentence for people (``message``, times in the program's local time). The console's campaign
page, the API's campaign JSON and ``smartd campaign show`` all show this one answer; the
engine's own states and counts stay beside it, in a details view.

The reasons follow the engine (``dispatcher/engine/engine.py``): nothing is claimed without a
bind; program service messages are claimed before any campaign; a campaign's messages wait
for the send window (R8).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from dispatcher.kernel.states import CampaignState, DeliveryState
from dispatcher.policy.calendar import ProgramCalendar

#: Delivery states still to be sent (the engine holds the claimed and in-flight ones).
TO_SEND = (DeliveryState.QUEUED, DeliveryState.CLAIMED, DeliveryState.IN_FLIGHT)
#: Handed to the SMSC, its delivery receipt not yet in.
AWAITING_RECEIPT = DeliveryState.SUBMITTED
#: Program messages ahead are counted up to this many; from it on they read "10,000+".
AHEAD_COUNTED = 10_000


class Phrase(enum.StrEnum):
    """The plain word shown first."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    WAITING = "waiting"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"
    ENDED = "ended"


class Reason(enum.StrEnum):
    """Why: a stable code (the API's ``status.reason``)."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    STARTING = "starting"  # scheduled time passed: the engine's next sweep starts it
    WINDOW_CLOSED = "window_closed"
    SMSC_NOT_BOUND = "smsc_not_bound"
    BEHIND_SERVICE = "behind_service_messages"
    SENDING = "sending"
    PAUSED = "paused"
    WAITING_FOR_RECEIPTS = "waiting_for_receipts"
    WAITING_FOR_EVENTS = "waiting_for_events"  # a triggered campaign (issue 15), none queued
    FINISHED = "finished"
    CANCELLED = "cancelled"
    ENDED = "campaign_ended"


@dataclass(frozen=True, slots=True)
class CampaignStatus:
    """The answer: ``phrase`` first, then ``message``; ``until`` the instant waited for (UTC),
    ``count`` the number the reason speaks of (messages ahead, receipts awaited, …)."""

    phrase: Phrase
    reason: Reason
    message: str
    until: datetime | None = None
    count: int | None = None

    @property
    def active(self) -> bool:
        """Whether the campaign may still change by itself (a page showing it refreshes)."""
        return self.phrase in (Phrase.SCHEDULED, Phrase.WAITING, Phrase.SENDING) or (
            self.reason is Reason.WAITING_FOR_RECEIPTS
        )

    def as_json(self) -> dict[str, object]:
        return {
            "phrase": self.phrase.value,
            "reason": self.reason.value,
            "until": None if self.until is None else self.until.isoformat(),
            "count": self.count,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class CampaignFacts:
    """What the status is decided from, read once: the campaign row's state and times, its
    deliveries by state (absent states count zero), whether any engine is bound to the SMSC
    (None: unknown), the program messages the engine will send before it, and whether the
    reader may see exact counts."""

    state: CampaignState
    start_at: datetime | None
    finished_at: datetime | None
    counts: Mapping[DeliveryState, int]
    bound: bool | None
    service_ahead: int
    #: False for a partner-facing caller (R11): the status then names no count.
    exact: bool = True
    #: triggered by operator events (issue 15): it runs until its end or a cancel
    triggered: bool = False


def when(instant: datetime, now: datetime, calendar: ProgramCalendar) -> str:
    """``instant`` as people read it: ``10:00`` today (local), else ``10:00 on 24 Nov``
    (``24 Nov 2027`` in another year); seconds only when they are not zero."""
    local, today = calendar.local(instant), calendar.local(now)
    clock = f"{local:%H:%M}" if local.second == 0 else f"{local:%H:%M:%S}"
    if local.date() == today.date():
        return clock
    day = f"{local.day} {local:%b}" + ("" if local.year == today.year else f" {local.year}")
    return f"{clock} on {day}"


def _wait(n: int | None) -> str:
    """``4 messages wait``, ``1 message waits``; without a count ``messages wait``."""
    return _plural(n, "message") + (" waits" if n == 1 else " wait")


def _ahead(n: int | None) -> str:
    """``12 program messages``; ``10,000+ program messages`` at the counting limit."""
    if n is not None and n >= AHEAD_COUNTED:
        return f"{AHEAD_COUNTED:,}+ program messages"
    return _plural(n, "program message")


def _plural(n: int | None, word: str) -> str:
    """``4 messages``, ``1 message``; without a count (R11) ``messages``."""
    if n is None:
        return word + "s"
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def campaign_status(
    facts: CampaignFacts, now: datetime, calendar: ProgramCalendar
) -> CampaignStatus:
    """The campaign's status at ``now``; see the module docstring."""
    count = {state: facts.counts.get(state, 0) for state in DeliveryState}

    def shown(n: int) -> int | None:
        return n if facts.exact else None

    queued = count[DeliveryState.QUEUED]
    to_send = sum(count[state] for state in TO_SEND)
    awaiting = count[AWAITING_RECEIPT]
    total = sum(count.values())
    state = facts.state

    def say(
        phrase: Phrase,
        reason: Reason,
        detail: str,
        until: datetime | None = None,
        count: int | None = None,
    ) -> CampaignStatus:
        return CampaignStatus(phrase, reason, f"{phrase.capitalize()} — {detail}.", until, count)

    ended = "" if facts.finished_at is None else f" at {when(facts.finished_at, now, calendar)}"
    if state is CampaignState.DRAFT:
        return say(
            Phrase.DRAFT,
            Reason.DRAFT,
            "start it to take events"
            if facts.triggered
            else "start it to send"
            if total
            else "add an audience, then start it",
        )
    if state is CampaignState.CANCELLED:
        return say(
            Phrase.CANCELLED,
            Reason.CANCELLED,
            f"ended for good{ended}; its queued messages were suppressed",
        )
    if state is CampaignState.EXPIRED:
        return say(
            Phrase.ENDED,
            Reason.ENDED,
            f"its end time passed{ended}; what was not sent by then was suppressed",
        )
    if state is CampaignState.PAUSED:
        left = f"; {_wait(shown(to_send))}" if to_send else ""
        return say(
            Phrase.PAUSED,
            Reason.PAUSED,
            f"nothing more is sent until it is resumed{left}",
            count=shown(to_send),
        )
    if state is CampaignState.SCHEDULED:
        if facts.start_at is None or facts.start_at <= now:
            return say(
                Phrase.SCHEDULED,
                Reason.STARTING,
                "its start time has come; the engine starts it at its next sweep",
            )
        detail = f"sending starts at {when(facts.start_at, now, calendar)} (local time)"
        opens = calendar.next_open(facts.start_at)
        if opens != facts.start_at:
            detail += (
                f"; the send window is closed then, so it opens at {when(opens, now, calendar)}"
            )
        return say(Phrase.SCHEDULED, Reason.SCHEDULED, detail, until=facts.start_at)
    # running or completed
    if to_send == 0 and facts.triggered and state is CampaignState.RUNNING:
        sent = f"; {_plural(shown(awaiting), 'delivery receipt')} awaited" if awaiting else ""
        return say(
            Phrase.WAITING,
            Reason.WAITING_FOR_EVENTS,
            f"for events: each matching one queues its message{sent}",
        )
    if to_send == 0 or state is CampaignState.COMPLETED:
        if awaiting:
            return say(
                Phrase.SENT,
                Reason.WAITING_FOR_RECEIPTS,
                "every message went to the SMSC; waiting for "
                + _plural(shown(awaiting), "delivery receipt"),
                count=shown(awaiting),
            )
        return say(
            Phrase.SENT,
            Reason.FINISHED,
            f"finished{ended}; every recipient has a final state",
        )
    if queued and not calendar.is_open(now):
        opens = calendar.next_open(now)
        return say(
            Phrase.WAITING,
            Reason.WINDOW_CLOSED,
            f"window closed until {when(opens, now, calendar)} (local time); "
            f"{_wait(shown(queued))} for it",
            until=opens,
            count=shown(queued),
        )
    if queued and facts.bound is False:
        return say(
            Phrase.WAITING,
            Reason.SMSC_NOT_BOUND,
            "SMSC not bound: nothing can be sent until the connection is back; "
            f"{_wait(shown(queued))}",
            count=shown(queued),
        )
    if queued and facts.service_ahead > 0:
        return say(
            Phrase.WAITING,
            Reason.BEHIND_SERVICE,
            f"behind {_ahead(shown(facts.service_ahead))} (confirmations, "
            "bonus notices, survey questions), which the engine sends first",
            count=shown(facts.service_ahead),
        )
    left = f"{to_send:,} of {_plural(total, 'message')} left" if facts.exact else "messages left"
    return say(Phrase.SENDING, Reason.SENDING, f"{left} to send", count=shown(to_send))
