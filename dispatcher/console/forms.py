"""The create-campaign form → the API's create payload (pure; no I/O).

The console does not validate a campaign itself: it turns the form into the JSON payload
of ``POST /api/v1/campaigns`` and lets :func:`campaigns.spec.parse_campaign` judge it, so
both doors accept exactly the same campaigns. What only the form has is handled here:
local times (``datetime-local`` inputs, read in the program's zone) and the survey script.

A survey script is written per language: questions separated by a blank line, each a
question line followed by one option per line (a leading ``1.`` ``2)`` or ``-`` is
dropped)::

    How do you like the new tariff?
    1. Very much
    2. It is fine

    Would you recommend it?
    1. Yes
    2. No
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from campaigns.spec import flatten_errors
from campaigns.triggers import TriggerError, condition_from_text
from dispatcher.console.variant_form import variant_form, variant_payload
from dispatcher.kernel.values import EARLIEST_YEAR, LATEST_YEAR, instant_in_range

LANGUAGE_ORDER = ("kk", "ru", "en")
_OPTION_MARK = re.compile(r"^\s*(?:\d{1,2}\s*[.)]|[-*•])\s*")

Question = tuple[str, list[str]]


def campaign_payload(
    form: Mapping[str, str], zone: ZoneInfo
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(payload for ``parse_campaign``, errors found by the form itself)."""
    errors: dict[str, Any] = {}
    payload: dict[str, Any] = {
        "name": form.get("name", ""),
        "partner": form.get("partner", ""),
        "kind": form.get("kind") or "info",
        "scope": form.get("scope") or "smart",
        "variables": [v.strip().lower() for v in form.get("variables", "").split(",") if v.strip()],
    }
    defaults = variable_defaults(form.get("variable_defaults", ""))
    if isinstance(defaults, str):
        errors["variable_defaults"] = defaults
    elif defaults:
        payload["variable_defaults"] = defaults
    texts = {lang: text for lang in LANGUAGE_ORDER if (text := _text(form, f"text_{lang}"))}
    if texts or payload["kind"] != "survey":
        payload["texts"] = texts
    payload |= variant_payload(form, texts, errors)  # issue 15: variants B–D, holdout
    for key in ("start_at", "end_at"):
        instant = local_instant(form.get(key, ""), zone)
        if isinstance(instant, str):
            errors[key] = instant
        elif instant is not None:
            payload[key] = instant.isoformat()
    if payload["kind"] == "survey":
        payload["survey"] = survey_payload(form, errors)
    if form.get("trigger_event", "").strip():
        payload["trigger"] = trigger_payload(form, errors)
    return payload, errors


def trigger_payload(form: Mapping[str, str], errors: dict[str, Any]) -> dict[str, Any]:
    """ "Triggered by event" (issue 15): the event type, a condition in words (``amount >=
    1000``; blank: every event) and the max delay (``12h``, ``PT12H``; blank: 1 day)."""
    event = form.get("trigger_event", "").strip()
    trigger: dict[str, Any] = {"event": event}
    try:
        trigger["condition"] = condition_from_text(event, form.get("trigger_condition", ""))
    except TriggerError as exc:
        errors["trigger.condition"] = exc.details["condition"]
    delay = form.get("trigger_max_delay", "").strip()
    if delay:
        trigger["max_delay"] = delay
    return trigger


def variable_defaults(text: str) -> dict[str, str] | str:
    """The form's defaults, one ``variable=default`` a line (``bonus=`` : optional, renders
    empty), as the payload's ``variable_defaults``; the problem if a line is not so."""
    defaults: dict[str, str] = {}
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            return (
                "expected one variable=default a line (name=friend; bonus= for optional): "
                f"{line.strip()[:40]!r}"
            )
        defaults[name.strip().lower()] = value.strip()
    return defaults


def _text(form: Mapping[str, str], key: str) -> str:
    """A textarea's text with browser line endings (CRLF) made LF; blank means absent."""
    text = form.get(key, "").replace("\r\n", "\n")
    return text if text.strip() else ""


def local_instant(value: str, zone: ZoneInfo) -> datetime | str | None:
    """A ``datetime-local`` value read in ``zone``; None when empty, the problem if bad."""
    if not value.strip():
        return None
    try:
        instant = datetime.fromisoformat(value.strip()[:64])
    except ValueError:
        return "expected a date and time"
    if instant.tzinfo is None:
        instant = instant.replace(tzinfo=zone)
    if not instant_in_range(instant):
        return f"expected a date in the years {EARLIEST_YEAR}-{LATEST_YEAR}"
    return instant


def survey_payload(form: Mapping[str, str], errors: dict[str, Any]) -> dict[str, Any]:
    """The ``survey`` object: questions from the per-language scripts, thanks, timeout."""
    scripts = {
        lang: parse_script(s) for lang in LANGUAGE_ORDER if (s := _text(form, f"survey_{lang}"))
    }
    thanks = {lang: t for lang in LANGUAGE_ORDER if (t := _text(form, f"thanks_{lang}"))}
    lines = {lang: question_lines(_text(form, f"survey_{lang}")) for lang in scripts}
    questions, problem = merge_languages(scripts, lines)
    if problem:
        errors["survey"] = problem
    hours: float | str = form.get("timeout_hours", "").strip() or "24"
    try:
        hours = float(hours)
    except ValueError:
        errors["timeout_hours"] = "expected a number of hours"
    return {"questions": questions, "thanks": thanks, "timeout_hours": hours}


def parse_script(script: str) -> list[Question]:
    """Questions of one language's script: blocks separated by blank lines."""
    questions: list[Question] = []
    for block in re.split(r"\n\s*\n", script.strip()):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if lines:
            options = [_OPTION_MARK.sub("", line, count=1) for line in lines[1:]]
            questions.append((lines[0], options))
    return questions


def question_lines(script: str) -> list[int]:
    """The line (from 1) where each question of a script starts, as :func:`parse_script`
    splits it: the first non-blank line after the start or a blank line."""
    starts, in_block = [], False
    for number, line in enumerate(script.split("\n"), 1):
        if not line.strip():
            in_block = False
        elif not in_block:
            starts.append(number)
            in_block = True
    return starts


def merge_languages(
    scripts: Mapping[str, list[Question]],
    lines: Mapping[str, list[int]] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """The API's ``questions`` from per-language scripts of the same shape, or why not: the
    first place they differ (question, languages and, given ``lines`` from
    :func:`question_lines`, the script's line), then the shapes."""
    if not scripts:
        return [], "write the survey's questions in at least one language"
    shapes = {lang: [len(options) for _, options in qs] for lang, qs in scripts.items()}
    if len({tuple(shape) for shape in shapes.values()}) > 1:
        described = "; ".join(f"{lang}: {shape}" for lang, shape in shapes.items())
        return (
            [],
            f"{_first_difference(shapes, lines or {})} — every language needs the same "
            f"questions and options (options per question: {described})",
        )
    count = len(next(iter(scripts.values())))
    questions = []
    for number in range(count):
        texts = {lang: qs[number][0] for lang, qs in scripts.items()}
        width = len(next(iter(scripts.values()))[number][1])
        options = [{lang: qs[number][1][i] for lang, qs in scripts.items()} for i in range(width)]
        questions.append({"texts": texts, "options": options})
    return questions, None


def campaign_form(payload: Mapping[str, Any], zone: ZoneInfo) -> dict[str, str]:
    """The form's fields for a campaign's create payload (:func:`campaigns.editing.
    stored_payload`): the inverse of :func:`campaign_payload`, to edit a draft."""
    form = {
        "name": payload["name"],
        "partner": payload["partner"],
        "kind": payload["kind"],
        "scope": payload["scope"],
        "variables": ", ".join(payload["variables"]),
        "variable_defaults": "\n".join(
            f"{name}={text}" for name, text in (payload.get("variable_defaults") or {}).items()
        ),
        "timeout_hours": "24",
    }
    trigger = payload.get("trigger")
    if trigger:
        condition = trigger.get("condition")
        form["trigger_event"] = trigger["event"]
        form["trigger_condition"] = "" if not condition else _condition_words(condition)
        form["trigger_max_delay"] = trigger["max_delay"]
    form |= {f"text_{lang}": text for lang, text in (payload.get("texts") or {}).items()}
    form |= variant_form(payload)
    for key in ("start_at", "end_at"):
        instant = payload.get(key)
        form[key] = "" if instant is None else local_input(datetime.fromisoformat(instant), zone)
    survey = payload.get("survey")
    if survey is not None:
        form |= {f"thanks_{lang}": text for lang, text in survey["thanks"].items()}
        questions = survey["questions"]
        form |= {f"survey_{lang}": script_of(questions, lang) for lang in survey["thanks"]}
        form["timeout_hours"] = f"{survey['timeout_hours']:g}"
    return form


def _condition_words(condition: Mapping[str, Any]) -> str:
    """A stored condition as the form's words (what :func:`trigger_payload` reads back)."""
    value = condition["value"]
    if condition["op"] == "in":
        return f"{condition['field']} in {', '.join(str(v) for v in value)}"
    return f"{condition['field']} {condition['op']} {value}"


def local_input(instant: datetime, zone: ZoneInfo) -> str:
    """``instant`` as a ``datetime-local`` value in ``zone`` (seconds only when it has any)."""
    local = instant.astimezone(zone)
    return local.strftime("%Y-%m-%dT%H:%M:%S" if local.second else "%Y-%m-%dT%H:%M")


def script_of(questions: list[dict[str, Any]], lang: str) -> str:
    """One language's survey script (what :func:`parse_script` reads) for ``questions``."""
    blocks = []
    for question in questions:
        options = [f"{n}. {option[lang]}" for n, option in enumerate(question["options"], 1)]
        blocks.append("\n".join([question["texts"][lang], *options]))
    return "\n\n".join(blocks)


def _first_difference(shapes: Mapping[str, list[int]], lines: Mapping[str, list[int]]) -> str:
    """Where per-language shapes (options per question) first differ, in words."""

    def line(lang: str, number: int) -> str:
        found = lines.get(lang, [])
        return f", line {found[number - 1]}" if number <= len(found) else ""

    first, *others = shapes
    for number in range(1, max(len(shape) for shape in shapes.values()) + 1):
        for lang in others:
            mine, theirs = shapes[first], shapes[lang]
            if number > len(theirs):
                return f"question {number} ({first}{line(first, number)}) has no {lang} counterpart"
            if number > len(mine):
                return f"question {number} ({lang}{line(lang, number)}) has no {first} counterpart"
            if mine[number - 1] != theirs[number - 1]:
                return (
                    f"question {number}: {first} has {mine[number - 1]} options "
                    f"({first}{line(first, number)}), {lang} has {theirs[number - 1]} "
                    f"({lang}{line(lang, number)})"
                )
    return "the languages differ"


#: A problem the form finds itself → the campaign domain's problems it causes (a survey
#: script the form could not read leaves the domain no questions; hours that are no number
#: are no hours): not shown, they would stand above the real cause and mislead.
CAUSED_BY = {"survey": ("survey.questions",), "timeout_hours": ("survey.timeout_hours",)}


def form_errors(details: Any, own: Mapping[str, str]) -> dict[str, str]:
    """The form's own problems first (each is a cause), then the campaign domain's
    (``SpecError.details``) except those one of the form's caused (:data:`CAUSED_BY`)."""
    caused = tuple(key for field in own for key in CAUSED_BY.get(field, ()))
    spec = {
        name: message
        for name, message in flatten_errors(details).items()
        if name not in own and not any(name == c or name.startswith(c + ".") for c in caused)
    }
    return dict(own) | spec
