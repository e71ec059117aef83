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
    for key in ("start_at", "end_at"):
        instant = local_instant(form.get(key, ""), zone)
        if isinstance(instant, str):
            errors[key] = instant
        elif instant is not None:
            payload[key] = instant.isoformat()
    if payload["kind"] == "survey":
        payload["survey"] = survey_payload(form, errors)
    return payload, errors


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
    questions, problem = merge_languages(scripts)
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


def merge_languages(
    scripts: Mapping[str, list[Question]],
) -> tuple[list[dict[str, Any]], str | None]:
    """The API's ``questions`` from per-language scripts of the same shape, or why not."""
    if not scripts:
        return [], "write the survey's questions in at least one language"
    shapes = {lang: [len(options) for _, options in qs] for lang, qs in scripts.items()}
    if len({tuple(shape) for shape in shapes.values()}) > 1:
        described = "; ".join(f"{lang}: {shape}" for lang, shape in shapes.items())
        return (
            [],
            "every language needs the same questions and options "
            f"(options per question: {described})",
        )
    count = len(next(iter(scripts.values())))
    questions = []
    for number in range(count):
        texts = {lang: qs[number][0] for lang, qs in scripts.items()}
        width = len(next(iter(scripts.values()))[number][1])
        options = [{lang: qs[number][1][i] for lang, qs in scripts.items()} for i in range(width)]
        questions.append({"texts": texts, "options": options})
    return questions, None


def flatten_errors(details: Any, prefix: str = "") -> dict[str, str]:
    """``SpecError.details`` (nested per field and language) as ``{"texts.ru": message}``."""
    if not isinstance(details, Mapping):
        return {prefix or "form": str(details)}
    flat: dict[str, str] = {}
    for key, value in details.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        flat.update(
            flatten_errors(value, name) if isinstance(value, Mapping) else {name: str(value)}
        )
    return flat
