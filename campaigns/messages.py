"""The messages a campaign sends, as composed for sending, and what each costs in SMS parts
(pure). The create preview counts these, not the text boxes: a survey's first message is its
intro *and* question 1 with the options (:func:`campaigns.templates.first_message`, the text
stored at creation and sent as is), each follow-up question is composed as the survey runtime
composes it (:func:`campaigns.templates.question_message`), then the thank-you.

Placeholders are counted as written (``{name}`` is six characters): until an audience exists
there are no values to count with, and the preview says so (the campaign page counts with the
audience's values once it has one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from campaigns.templates import (
    TemplateError,
    first_message,
    preview,
    question_message,
    variables_of,
)


@dataclass(frozen=True, slots=True)
class Message:
    """One message a recipient may get: ``key`` (``message``, ``question N``, ``thanks``),
    a label for people, and its text per language."""

    key: str
    label: str
    texts: dict[str, str]


def campaign_messages(
    kind: str,
    texts: Mapping[str, str],
    questions: Sequence[Mapping[str, Any]],
    thanks: Mapping[str, str],
) -> list[Message]:
    """The messages of a campaign: for ``info`` its text; for a ``survey`` (``texts`` being
    the optional intro) question 1 with the intro, each follow-up question, the thank-you."""
    if kind != "survey":
        return [Message("message", "Message", dict(texts))]
    if not questions:
        return []
    first, *rest = questions
    messages = [
        Message(
            "question 1",
            "First message: intro + question 1" if texts else "First message: question 1",
            {lang: first_message(texts.get(lang), first, lang) for lang in first["texts"]},
        )
    ]
    for number, question in enumerate(rest, 2):
        composed = {lang: question_message(question, lang) for lang in question["texts"]}
        messages.append(Message(f"question {number}", f"Question {number}", composed))
    if thanks:
        messages.append(Message("thanks", "Thank-you", dict(thanks)))
    return messages


def messages_preview(messages: Sequence[Message], limit: int) -> dict[str, Any]:
    """Per message and language the encoding, parts and characters; ``over_limit`` where a
    language needs more than ``limit`` parts (the ``campaign_max_segments`` setting), the
    placeholders used, and the warnings to show (past the limit; counted with placeholders)."""
    shown: list[dict[str, Any]] = []
    warnings: list[str] = []
    placeholders: set[str] = set()
    for message in messages:
        costs = preview(message.texts)
        over = sorted(
            lang for lang, cost in costs.items() if int(str(cost.get("segments", 0))) > limit
        )
        placeholders.update(_placeholders(message.texts))
        shown.append(
            {"key": message.key, "label": message.label, "costs": costs, "over_limit": bool(over)}
        )
        if over:
            warnings.append(
                f"{message.label} ({', '.join(over)}) needs more than {limit} SMS parts, the "
                "limit: the campaign would be refused"
            )
    if placeholders:
        names = ", ".join("{" + name + "}" for name in sorted(placeholders))
        warnings.append(
            f"Counted with the placeholder(s) {names} as written; until an audience is "
            "uploaded the real values are unknown, and they may need more parts (or UCS-2 "
            "if a value has letters outside GSM-7)"
        )
    return {
        "messages": shown,
        "limit": limit,
        "placeholders": sorted(placeholders),
        "warnings": warnings,
    }


def _placeholders(texts: Mapping[str, str]) -> set[str]:
    found: set[str] = set()
    for text in texts.values():
        with suppress(TemplateError):  # the cost shows the error
            found |= variables_of(text)
    return found
