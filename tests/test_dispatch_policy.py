"""Pure dispatch policy: outcome verdicts, backoff, validity (issue 5, R8)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from dispatcher.kernel.clock import load_zone
from dispatcher.kernel.states import DeliveryState
from dispatcher.policy.calendar import ProgramCalendar
from dispatcher.policy.submit import MAX_ATTEMPTS, backoff, judge
from dispatcher.policy.window import SendWindow
from smpp.constants import Status
from smpp.outcome import Accepted, PermanentFailure, TemporaryFailure, Unknown

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
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
        assert not any(isinstance(p, Accepted | Unknown) for p in parts)
        assert verdict.retry_at is not None and verdict.retry_at > NOW


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
