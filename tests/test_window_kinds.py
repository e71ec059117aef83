"""Which message kinds wait for the send window (R8): one table, and queued messages obey it."""

from __future__ import annotations

import pytest

from dispatcher.kernel.states import ContactKind, ServiceKind
from dispatcher.policy.waiting import WAITS_FOR_WINDOW, waits_for_window
from dispatcher.program.outbox import ServiceMessage

SUBSCRIBER_REPLIES = {
    ServiceKind.JOIN_CONFIRMATION,
    ServiceKind.LEAVE_CONFIRMATION,
    ServiceKind.DNC_CONFIRMATION,
    ServiceKind.HELP,
    ServiceKind.SURVEY_THANKS,
}


def test_every_kind_has_an_entry() -> None:
    """Each partner and service kind is in the table, and nothing else is."""
    assert set(WAITS_FOR_WINDOW) == set(ContactKind) | set(ServiceKind)
    assert len(WAITS_FOR_WINDOW) == len(ContactKind) + len(ServiceKind)


@pytest.mark.parametrize("kind", list(ContactKind))
def test_partner_messages_and_surveys_always_wait(kind: ContactKind) -> None:
    """R8: info messages and surveys leave only inside the window."""
    assert waits_for_window(kind)


@pytest.mark.parametrize("kind", list(ServiceKind))
def test_only_replies_to_the_subscriber_go_at_any_hour(kind: ServiceKind) -> None:
    """Confirmations, help and the survey thank-you go at once; notices and questions wait."""
    assert waits_for_window(kind) is (kind not in SUBSCRIBER_REPLIES)


@pytest.mark.parametrize("kind", list(ServiceKind))
def test_queued_message_takes_its_kind_s_answer(kind: ServiceKind) -> None:
    """A service message's in_window column value comes from the table, not its caller."""
    assert ServiceMessage("77011234567", kind, "text").in_window is waits_for_window(kind)
