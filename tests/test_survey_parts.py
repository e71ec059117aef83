"""The create preview counts the messages the engine really sends (issue 14): a survey's first
message is intro + question 1 + its options, not the intro alone; follow-up questions and the
thank-you are counted too; past the part limit it warns; with placeholders it says the count
assumes them as written. A property over texts checks the preview against what the engine
sends, part for part; one test asks the console's preview over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.messages import campaign_messages, messages_preview
from campaigns.spec import parse_campaign
from campaigns.templates import render
from dispatcher.kernel.states import Role
from dispatcher.program.surveys import _Session
from smpp.text import encode_message
from tests.test_console import sign_in
from tests.web_helpers import running_api

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MAX_PARTS = 10

# Letters of both alphabets, so a message is GSM-7 or UCS-2 by what was drawn, and long
# enough to need several parts.
_GSM = "abcdefghij KLMNOP 0123456789.,!?"
_WIDE = "абвгдеёжзӘәҒғҚқҢңӨөҰұҮүҺһІі"
_text = st.text(alphabet=_GSM + _WIDE, min_size=1, max_size=200).filter(str.strip)
_option = st.text(alphabet=_GSM + _WIDE, min_size=1, max_size=40).filter(str.strip)


def _survey(intro: str | None, questions: list[tuple[str, list[str]]]) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "name": "s",
        "kind": "survey",
        "survey": {
            "questions": [
                {"texts": {"kk": q}, "options": [{"kk": o} for o in options]}
                for q, options in questions
            ],
            "thanks": {"kk": "Рақмет!"},
        },
    }
    if intro is not None:
        payload["texts"] = {"kk": intro}
    return payload


def _sent_parts(text: str) -> int:
    """How many parts the engine submits for ``text`` (engine._encode: encode_message)."""
    return len(encode_message(render(text, {}), reference=1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    intro=st.one_of(st.none(), _text),
    questions=st.lists(
        st.tuples(_text, st.lists(_option, min_size=1, max_size=4)),
        min_size=1,
        max_size=3,
    ),
)
def test_preview_parts_equal_the_parts_the_engine_sends(
    intro: str | None, questions: list[tuple[str, list[str]]]
) -> None:
    """For any intro and questions, each message the preview counts has the parts the
    engine submits: the first (the stored campaign text), each follow-up (as the survey
    runtime composes it) and the thank-you."""
    payload = _survey(intro, questions)
    spec = parse_campaign(payload, NOW, 255, ("kk",))
    assert spec.survey is not None
    messages = campaign_messages(
        "survey", payload.get("texts") or {}, spec.survey.questions, spec.survey.thanks
    )
    preview = messages_preview(messages, MAX_PARTS)
    counted = {m["key"]: m["costs"]["kk"]["segments"] for m in preview["messages"]}
    assert counted["question 1"] == _sent_parts(spec.texts["kk"])
    session = _Session(1, 1, 1, False, "kk", spec.survey.questions, {"kk": "x"}, timedelta(1))
    for number in range(2, len(questions) + 1):
        assert counted[f"question {number}"] == _sent_parts(session.question(number))
    assert counted["thanks"] == _sent_parts("Рақмет!")
    over = [m["key"] for m in preview["messages"] if m["over_limit"]]
    assert over == [key for key, parts in counted.items() if parts > MAX_PARTS]


def test_a_survey_first_message_is_counted_with_its_question() -> None:
    """The issue's case: an intro of one part whose first message (intro + question +
    options) needs two parts is shown as two."""
    intro = "Сауалнамаға қатысыңыз!"  # 22 UCS-2 characters: 1 part alone
    question = ("Жаңа кофе қалай ұнады? Біз үшін пікіріңіз маңызды", ["Керемет", "Жақсы", "Жаман"])
    payload = _survey(intro, [question])
    spec = parse_campaign(payload, NOW, MAX_PARTS, ("kk",))
    assert spec.survey is not None
    preview = messages_preview(
        campaign_messages("survey", {"kk": intro}, spec.survey.questions, spec.survey.thanks),
        MAX_PARTS,
    )
    first = preview["messages"][0]
    assert first["key"] == "question 1" and first["costs"]["kk"]["segments"] == 2
    assert _sent_parts(spec.texts["kk"]) == 2


def test_placeholders_and_the_limit_are_called_out() -> None:
    """A text with placeholders says the count assumes them as written; one past the part
    limit is flagged with the limit."""
    messages = campaign_messages("info", {"kk": "{name}, " + "ә" * 700, "en": "Hi"}, [], {})
    preview = messages_preview(messages, MAX_PARTS)
    (message,) = preview["messages"]
    assert message["over_limit"] and preview["limit"] == MAX_PARTS
    assert message["costs"]["kk"]["segments"] == 11
    assert preview["placeholders"] == ["name"]
    assert any("placeholder" in w and "may" in w for w in preview["warnings"])
    assert any("more than 10 SMS parts" in w for w in preview["warnings"])


async def test_console_preview_counts_the_composed_survey(settings, clock, database) -> None:
    """The console's preview, given the form's survey scripts, answers per message and
    language: the first message (intro + question 1), the follow-ups and the thank-you;
    under each intro box, the first message's cost."""
    body = {
        "kind": "survey",
        "texts": {"kk": "Сауалнамаға қатысыңыз!"},
        "survey": {
            "kk": "Жаңа кофе қалай ұнады? Біз үшін пікіріңіз маңызды\n1. Керемет\n2. Жақсы\n"
            "3. Жаман\n\nТағы келесіз бе?\n1. Иә\n2. Жоқ"
        },
        "thanks": {"kk": "Рақмет!"},
    }
    async with running_api(settings, clock, database) as api:
        csrf = await sign_in(api, Role.MARKETER)
        response = await api.client.post(
            "/console/preview", json=body, headers={"X-CSRF-Token": csrf}
        )
        assert response.status == 200, await response.text()
        costs = await response.json()
    assert costs["kk"]["segments"] == 2  # the first message, not the intro's 1
    keys = [m["key"] for m in costs["messages"]]
    assert keys == ["question 1", "question 2", "thanks"]
    assert [m["costs"]["kk"]["segments"] for m in costs["messages"]] == [2, 1, 1]
    assert costs["limit"] == settings.campaign_max_segments
