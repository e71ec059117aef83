"""A campaign's status in plain words (issue 14): the pure rule, over states, counts and times
(dispatcher/policy/status.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from campaigns.reports import DeliveryCounts
from dispatcher.kernel.states import CampaignState, DeliveryState
from dispatcher.policy.status import (
    CampaignFacts,
    Phrase,
    Reason,
    campaign_status,
    when,
)
from dispatcher.settings import load_settings

CALENDAR = load_settings({}).calendar  # Astana, 10:00-21:00
ASTANA = CALENDAR.zone
ORIGIN = datetime(2026, 11, 23, tzinfo=UTC)

instants = st.integers(0, 10 * 24 * 3600).map(lambda s: ORIGIN + timedelta(seconds=s))
count_maps = st.dictionaries(st.sampled_from(list(DeliveryState)), st.integers(0, 10**6))
FIXED = {
    CampaignState.DRAFT: Phrase.DRAFT,
    CampaignState.PAUSED: Phrase.PAUSED,
    CampaignState.CANCELLED: Phrase.CANCELLED,
    CampaignState.EXPIRED: Phrase.ENDED,
    CampaignState.SCHEDULED: Phrase.SCHEDULED,
    CampaignState.COMPLETED: Phrase.SENT,
}


def local(year: int, month: int, day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=ASTANA).astimezone(UTC)


def running(now: datetime, bound: bool | None = True, ahead: int = 0, **counts: int) -> Reason:
    facts = CampaignFacts(
        CampaignState.RUNNING,
        None,
        None,
        {DeliveryState(k): v for k, v in counts.items()},
        bound,
        ahead,
    )
    return campaign_status(facts, now, CALENDAR).reason


@given(
    st.sampled_from(list(CampaignState)),
    count_maps,
    instants,
    st.none() | instants,
    st.none() | st.booleans(),
    st.integers(0, 10**6),
    st.booleans(),
)
@settings(max_examples=600)
def test_status_follows_the_engine(state, counts, now, start_at, bound, ahead, exact) -> None:
    """Plain word and reason for any state, counts, clock, bind and program messages ahead:
    the state's own word where the state says it all; for a running campaign, sent when
    nothing is left to send, else waiting for the window (until it opens), for the bind, for
    the program messages ahead, in that order, else sending. Every message starts with its
    plain word; a waited-for instant is in the future; a partner-facing one names no count."""
    facts = CampaignFacts(state, start_at, None, counts, bound, ahead, exact)
    status = campaign_status(facts, now, CALENDAR)
    assert status.message.startswith(status.phrase.capitalize() + " — ")
    assert status.until is None or status.until > now
    if not exact:
        assert status.count is None
    queued = counts.get(DeliveryState.QUEUED, 0)
    to_send = queued + counts.get(DeliveryState.CLAIMED, 0) + counts.get(DeliveryState.IN_FLIGHT, 0)
    if state is not CampaignState.RUNNING:
        assert status.phrase is FIXED[state]
        if state is CampaignState.SCHEDULED and start_at is not None and start_at > now:
            assert status.until == start_at
        return
    if to_send == 0:
        assert status.phrase is Phrase.SENT
        awaiting = counts.get(DeliveryState.SUBMITTED, 0) > 0
        assert status.reason is (Reason.WAITING_FOR_RECEIPTS if awaiting else Reason.FINISHED)
    elif queued and not CALENDAR.is_open(now):
        assert (status.phrase, status.reason) == (Phrase.WAITING, Reason.WINDOW_CLOSED)
        assert status.until == CALENDAR.next_open(now) and CALENDAR.is_open(status.until)
        assert not CALENDAR.is_open(status.until - timedelta(seconds=1))
        assert when(status.until, now, CALENDAR) in status.message
    elif queued and bound is False:
        assert (status.phrase, status.reason) == (Phrase.WAITING, Reason.SMSC_NOT_BOUND)
    elif queued and ahead:
        assert (status.phrase, status.reason) == (Phrase.WAITING, Reason.BEHIND_SERVICE)
        assert status.count == (ahead if exact else None)
    else:
        assert (status.phrase, status.reason) == (Phrase.SENDING, Reason.SENDING)
    assert status.active == (status.reason is not Reason.FINISHED)


@given(st.sampled_from(list(CampaignState)), count_maps, instants, st.integers(1, 50))
def test_partner_facing_status_does_not_depend_on_the_counts(state, counts, now, k) -> None:
    """R11: without exact counts the message is the same whatever the (non-zero) counts."""
    scaled = {s: n * k for s, n in counts.items()}
    one, other = (
        campaign_status(CampaignFacts(state, None, None, c, True, 3, False), now, CALENDAR)
        for c in (counts, scaled)
    )
    assert one == other


def test_window_closes_at_21_exactly() -> None:
    """20:59:59 local still sends; 21:00:00 waits until 10:00 the next day (the date named)."""
    assert running(local(2026, 11, 23, 20, 59, 59), queued=4) is Reason.SENDING
    at_close = local(2026, 11, 23, 21, 0, 0)
    facts = CampaignFacts(CampaignState.RUNNING, None, None, {DeliveryState.QUEUED: 4}, True, 0)
    status = campaign_status(facts, at_close, CALENDAR)
    assert status.reason is Reason.WINDOW_CLOSED
    assert status.until == local(2026, 11, 24, 10, 0)
    assert status.message == (
        "Waiting — window closed until 10:00 on 24 Nov (local time); 4 messages wait for it."
    )


def test_window_opens_at_10_exactly() -> None:
    """09:59:59 local waits until 10:00 today (no date); 10:00:00 sends."""
    facts = CampaignFacts(CampaignState.RUNNING, None, None, {DeliveryState.QUEUED: 1}, True, 0)
    status = campaign_status(facts, local(2026, 11, 24, 9, 59, 59), CALENDAR)
    assert status.message == (
        "Waiting — window closed until 10:00 (local time); 1 message waits for it."
    )
    assert status.until == local(2026, 11, 24, 10, 0)
    assert running(local(2026, 11, 24, 10, 0, 0), queued=1) is Reason.SENDING


def test_reasons_in_the_engine_order() -> None:
    """The window comes before the bind, the bind before the program messages ahead."""
    night, day = local(2026, 11, 23, 23, 0), local(2026, 11, 23, 12, 0)
    assert running(night, bound=False, ahead=5, queued=1) is Reason.WINDOW_CLOSED
    assert running(day, bound=False, ahead=5, queued=1) is Reason.SMSC_NOT_BOUND
    assert running(day, bound=True, ahead=5, queued=1) is Reason.BEHIND_SERVICE
    assert running(day, bound=None, ahead=0, queued=1) is Reason.SENDING
    assert running(day, in_flight=2) is Reason.SENDING
    assert running(day, submitted=2, delivered=1) is Reason.WAITING_FOR_RECEIPTS
    assert running(day, delivered=3, suppressed=1) is Reason.FINISHED


def test_scheduled_names_its_start_and_the_window() -> None:
    """A start inside the window is named; one outside it also says when the window opens."""
    now = local(2026, 11, 23, 12, 0)
    facts = CampaignFacts(CampaignState.SCHEDULED, local(2026, 11, 23, 15, 30), None, {}, None, 0)
    assert campaign_status(facts, now, CALENDAR).message == (
        "Scheduled — sending starts at 15:30 (local time)."
    )
    late = CampaignFacts(CampaignState.SCHEDULED, local(2026, 11, 23, 22, 0), None, {}, None, 0)
    assert campaign_status(late, now, CALENDAR).message == (
        "Scheduled — sending starts at 22:00 (local time); the send window is closed then, "
        "so it opens at 10:00 on 24 Nov."
    )


@given(st.dictionaries(st.sampled_from(list(DeliveryState)), st.integers(0, 10**7)))
def test_percent_reads_100_only_when_nothing_is_left(states) -> None:
    """Issue 14: a campaign read "100%" while recipients were still to send (99.96 rounded
    up): the done share is never rounded up to 100, nor down to 0 once something is done."""
    counts = DeliveryCounts.of({s.value: n for s, n in states.items()})
    if counts.total == 0:
        assert counts.percent == 0.0
        return
    assert (counts.percent == 100.0) == (counts.remaining == 0)
    assert (counts.percent == 0.0) == (counts.done == 0)


def test_program_messages_ahead_past_the_count_limit() -> None:
    """Counted up to AHEAD_COUNTED: from there on the status says "10,000+"."""
    day = local(2026, 11, 23, 12, 0)
    for ahead, said in ((9_999, "behind 9,999 program messages"), (10_000, "behind 10,000+")):
        facts = CampaignFacts(
            CampaignState.RUNNING, None, None, {DeliveryState.QUEUED: 1}, True, ahead
        )
        assert said in campaign_status(facts, day, CALENDAR).message
