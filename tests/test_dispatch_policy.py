"""Pure dispatch policy: outcome verdicts, backoff, validity (issue 5, R8)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.kernel.clock import load_zone
from dispatcher.kernel.states import DeliveryState
from dispatcher.policy.calendar import ProgramCalendar
from dispatcher.policy.submit import (
    MAX_ATTEMPTS,
    RETRY_SOON,
    NotWritten,
    PartOutcome,
    backoff,
    fitting,
    judge,
    writable_parts,
)
from dispatcher.policy.window import SendWindow
from smpp.constants import Status
from smpp.outcome import (
    DEFAULT_VALIDITY_REFUSED,
    Accepted,
    PermanentFailure,
    TemporaryFailure,
    Unknown,
)

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
NEXT_OPEN = datetime(2026, 11, 24, 5, tzinfo=UTC)
ASTANA = load_zone("Asia/Almaty")

outcomes = st.one_of(
    st.builds(
        Accepted,
        st.text("0123456789abcdef", min_size=1, max_size=8),
        st.just(""),
        st.integers(1, 100),
    ),
    st.builds(
        TemporaryFailure,
        st.sampled_from([Status.ESME_RTHROTTLED, Status.ESME_RSYSERR]),
        st.integers(1, 100),
    ),
    st.builds(PermanentFailure, st.just(Status.ESME_RINVDSTADR), st.integers(1, 100)),
    st.builds(Unknown, st.just("timeout"), st.integers(1, 100)),
)


@given(st.lists(outcomes, min_size=1, max_size=6), st.integers(0, 10))
def test_unknown_is_never_retried(parts: list[object], attempts: int) -> None:
    """Invariant 2: any unknown part makes the message unknown; nothing unknown is retried."""
    verdict = judge(parts, attempts, NOW)  # type: ignore[arg-type]
    if any(isinstance(p, Unknown) for p in parts):
        assert verdict.state is DeliveryState.UNKNOWN
    if verdict.state is DeliveryState.QUEUED:
        assert not any(isinstance(p, Unknown) for p in parts)
        assert verdict.retry_at is not None and verdict.retry_at > NOW


part_outcomes = st.one_of(
    outcomes,
    st.builds(NotWritten, st.booleans()),
    st.builds(
        PermanentFailure,
        st.sampled_from([Status.ESME_RINVEXPIRY, Status.ESME_RINVSCHED]),
        st.integers(1, 100),
    ),
)


@st.composite
def tries(draw: st.DrawFn) -> tuple[int, frozenset[int], dict[int, PartOutcome]]:
    """A message of 1-6 parts, some accepted by earlier tries, the others tried now."""
    total = draw(st.integers(1, 6))
    before = draw(st.frozensets(st.integers(1, total), max_size=total - 1))
    now = {n: draw(part_outcomes) for n in range(1, total + 1) if n not in before}
    return total, before, now


@given(tries(), st.integers(0, 10), st.integers(0, 3600))
def test_a_message_is_whole_or_waits_for_its_missing_parts(
    message: tuple[int, frozenset[int], dict[int, PartOutcome]], attempts: int, seconds: int
) -> None:
    """R14: submitted only when every part was accepted (now or before); a message with parts
    out waits for the missing ones only within their validity, else it is undelivered, never
    failed (it did reach the SMSC in part); an attempt is used only by a refusal of the
    message's own; nothing is given up before MAX_ATTEMPTS except for a permanent refusal."""
    total, before, tried = message
    until = NOW + timedelta(seconds=seconds)
    verdict = judge(
        tried,
        attempts,
        NOW,
        parts=total,
        sent_before=before,
        next_window=NEXT_OPEN,
        retry_until=until,
    )
    accepted = {n for n, _ in verdict.accepted}
    done = before | accepted
    assert accepted == {n for n, o in tried.items() if isinstance(o, Accepted)}
    if any(isinstance(o, Unknown) for o in tried.values()):
        assert verdict.state is DeliveryState.UNKNOWN
        return
    assert (verdict.state is DeliveryState.SUBMITTED) == (len(done) == total)
    if verdict.state is DeliveryState.QUEUED:
        assert verdict.retry_at is not None and verdict.retry_at > NOW
        if done:
            assert verdict.retry_at < until
    if verdict.state in (DeliveryState.FAILED, DeliveryState.UNDELIVERED):
        assert (verdict.state is DeliveryState.UNDELIVERED) == bool(done)
    own = [
        o
        for o in tried.values()
        if isinstance(o, TemporaryFailure | PermanentFailure) and o.status not in RETRY_SOON
    ]
    if verdict.state is DeliveryState.QUEUED:
        assert verdict.attempt_used == bool(own)
    permanent = any(
        isinstance(o, PermanentFailure) and o.status not in DEFAULT_VALIDITY_REFUSED
        for o in tried.values()
    )
    if verdict.state is DeliveryState.FAILED and not permanent:
        assert attempts + 1 >= MAX_ATTEMPTS


@pytest.mark.parametrize("status", [Status.ESME_RINVEXPIRY, Status.ESME_RINVSCHED])
def test_validity_refusal_waits_for_the_next_window(status: int) -> None:
    """0x62 / 0x61 refuse the submit's time, not the message: it goes in the next window."""
    verdict = judge([PermanentFailure(status, 1)], 0, NOW, next_window=NEXT_OPEN)
    assert (verdict.state, verdict.retry_at) == (DeliveryState.QUEUED, NEXT_OPEN)


def test_window_closed_before_the_write_uses_no_attempt() -> None:
    """A part the window's close kept unwritten waits for the next window, attempt unused."""
    verdict = judge([NotWritten(window_closed=True)], 4, NOW, next_window=NEXT_OPEN)
    assert (verdict.state, verdict.retry_at, verdict.attempt_used) == (
        DeliveryState.QUEUED,
        NEXT_OPEN,
        False,
    )


def test_throttled_part_of_a_long_message_is_retried_alone() -> None:
    """Parts 1 and 3 accepted, part 2 throttled: queued for part 2 soon, no attempt used."""
    verdict = judge(
        [Accepted("a", "a", 1), TemporaryFailure(Status.ESME_RTHROTTLED, 2), Accepted("c", "c", 3)],
        0,
        NOW,
        retry_until=NOW + timedelta(hours=1),
    )
    assert verdict.state is DeliveryState.QUEUED
    assert verdict.accepted == ((1, "a"), (3, "c"))
    assert not verdict.attempt_used
    done = judge({2: Accepted("b", "b", 4)}, 0, NOW, parts=3, sent_before={1, 3})
    assert (done.state, done.accepted) == (DeliveryState.SUBMITTED, ((2, "b"),))


@given(st.lists(st.integers(0, 6), max_size=30), st.one_of(st.none(), st.integers(0, 60)))
def test_messages_fit_whole_before_the_close(counts: list[int], budget: int | None) -> None:
    """A prefix of the messages is started, whole ones only, as many as the budget holds."""
    n = fitting(counts, budget)
    if budget is None:
        assert n == len(counts)
        return
    assert sum(counts[:n]) <= budget
    assert n == len(counts) or sum(counts[: n + 1]) > budget


@given(st.integers(0, 7200), st.floats(0.5, 500))
def test_writable_parts_before_the_close(seconds: int, tps: float) -> None:
    """The parts the grant can write before the close: none once it is reached."""
    closes = NOW + timedelta(seconds=seconds)
    writable = writable_parts(NOW, closes, tps)
    assert writable is not None and writable <= seconds * tps < writable + 1
    assert writable_parts(closes, closes, tps) == 0
    assert writable_parts(NOW, None, tps) is None


def test_accepted_parts_are_submitted() -> None:
    """Any accepted part makes the message submitted, with its part numbers and ids."""
    verdict = judge([Accepted("a", "a", 1), Accepted("b", "b", 2)], 0, NOW)
    assert verdict.state is DeliveryState.SUBMITTED
    assert verdict.accepted == ((1, "a"), (2, "b"))


def test_permanent_failure_fails() -> None:
    """A permanent refusal fails the message at once."""
    verdict = judge([PermanentFailure(Status.ESME_RINVDSTADR, 1)], 0, NOW)
    assert verdict.state is DeliveryState.FAILED


def test_temporary_failures_exhaust_attempts() -> None:
    """A system error is retried until the attempts run out, then fails."""
    error = [TemporaryFailure(Status.ESME_RSYSERR, 1)]
    assert judge(error, MAX_ATTEMPTS - 2, NOW).state is DeliveryState.QUEUED
    assert judge(error, MAX_ATTEMPTS - 1, NOW).state is DeliveryState.FAILED


def test_throttling_never_exhausts_attempts() -> None:
    """Throttling is retried soon, however often it happened."""
    verdict = judge([TemporaryFailure(Status.ESME_RTHROTTLED, 1)], 100, NOW)
    assert verdict.state is DeliveryState.QUEUED
    assert verdict.retry_at is not None and verdict.retry_at - NOW <= timedelta(seconds=6)


@given(st.integers(1, 50), st.integers(0, 2**32))
def test_backoff_grows_and_is_capped(attempt: int, seed: int) -> None:
    """Backoff is exponential from 30 s with ±20 % jitter, never above 30 minutes +20 %."""
    delay = backoff(attempt, random.Random(seed))
    expected = min(30 * 2 ** (attempt - 1), 1800)
    assert 0.8 * expected <= delay.total_seconds() <= 1.2 * expected


def test_validity_ends_at_window_close_in_local_time() -> None:
    """R8: at 17:00 Astana the validity is 21:00 the same day, written with offset +05."""
    calendar = ProgramCalendar(ASTANA, SendWindow.parse("10:00-21:00"))
    assert calendar.validity_until(NOW) == "261123210000020+"
    assert calendar.validity_until(NOW.replace(hour=17)) is None
