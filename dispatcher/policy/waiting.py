"""Which messages wait for the send window (R8): one table, keyed by message kind.

A message of a kind that waits is claimed and written to the SMSC only while the window is
open, with a validity ending at the close; the others may leave at any hour. The
``service_messages.in_window`` column stores this table's answer when a message is queued.

* Partner messages and surveys (:class:`ContactKind`) always wait: R8.
* A reply to something the subscriber just did (join, leave, 1204, help, the thank-you for a
  survey's last answer) goes at once, whatever the hour: the subscriber is awake and waiting.
* Survey follow-up questions and re-prompts are survey traffic: they wait (R8, R13).
* Bonus notices go to every member at once from the monthly job (00:05 on the 1st): they
  wait for the morning rather than wake five million people at midnight.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from dispatcher.kernel.states import ContactKind, ServiceKind

MessageKind = ContactKind | ServiceKind

WAITS_FOR_WINDOW: Mapping[MessageKind, bool] = MappingProxyType(
    {
        ContactKind.INFO: True,
        ContactKind.SURVEY: True,
        ServiceKind.JOIN_CONFIRMATION: False,
        ServiceKind.LEAVE_CONFIRMATION: False,
        ServiceKind.DNC_CONFIRMATION: False,
        ServiceKind.HELP: False,
        ServiceKind.BONUS_NOTICE: True,
        ServiceKind.SURVEY_QUESTION: True,
        ServiceKind.SURVEY_REPROMPT: True,
        ServiceKind.SURVEY_THANKS: False,
    }
)


def waits_for_window(kind: MessageKind) -> bool:
    """Whether a message of ``kind`` leaves only while the send window is open (R8)."""
    return WAITS_FOR_WINDOW[kind]
