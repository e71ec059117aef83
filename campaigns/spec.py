"""The create-campaign payload, validated into a :class:`CampaignSpec` (pure, no I/O).

Every problem is collected, not just the first, into :class:`SpecError.details`: a field
name → message, and for ``texts`` (and each survey question) language → message, so a
console can show them beside the inputs.

Two rules hold for every campaign, whatever its scope (both are partner or operator
advertising): caps cannot be switched off (R7: ``apply_caps`` is accepted only as ``true``, and
the database refuses anything else), and the texts carry every required language (R15: the Law
"On Advertising", art. 6, requires Kazakh; the list is the ``required_languages`` setting).

A survey's first question is the campaign message: ``texts`` (optional for a survey) is an
introduction put before it, and the stored campaign text per language is
``intro + question 1 + numbered options``. Placeholders are allowed in ``texts`` only;
follow-up questions, options and the thank-you go out as written.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from campaigns.templates import VARIABLE_NAME, check_text, first_message, question_message
from campaigns.triggers import Trigger, TriggerError, parse_trigger
from campaigns.variants import parse_holdout, parse_variants
from dispatcher.kernel.states import CampaignScope, ContactKind, Language
from dispatcher.kernel.values import EARLIEST_YEAR, LATEST_YEAR, parse_instant

LANGUAGES = frozenset(lang.value for lang in Language)
MAX_QUESTIONS = 10
MAX_OPTIONS = 9  # one digit to reply with


class SpecError(ValueError):
    """The payload is invalid; ``details`` maps each bad field to what is wrong with it."""

    def __init__(self, details: dict[str, Any]) -> None:
        super().__init__("invalid campaign")
        self.details = details


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


@dataclass(frozen=True, slots=True)
class SurveySpec:
    """Questions ``[{"texts": {lang: q}, "options": [{lang: o}, ...]}]``, thanks, timeout."""

    questions: list[dict[str, Any]]
    thanks: dict[str, str]
    timeout: timedelta


@dataclass(frozen=True, slots=True)
class CampaignSpec:
    name: str
    partner: str
    kind: ContactKind
    scope: CampaignScope
    texts: dict[str, str]
    variables: list[str]
    priority: int = 0
    start_at: datetime | None = None
    end_at: datetime | None = None
    survey: SurveySpec | None = None
    #: variable → what a blank audience cell takes ("": optional, renders empty)
    variable_defaults: dict[str, str] = field(default_factory=dict)
    #: text variants [{"name", "texts", "percent"}] ([]: ``texts`` alone; campaigns/variants.py)
    variants: list[dict[str, Any]] = field(default_factory=list)
    holdout_percent: int = 0
    #: the operator event that queues its message (issue 15); None: an audience campaign
    trigger: Trigger | None = None


def parse_campaign(
    payload: Any,
    now: datetime,
    max_segments: int,
    required_languages: Collection[str] = ("kk",),
) -> CampaignSpec:
    """Validate a create payload (see the HTTP contract); raises :class:`SpecError`.

    ``required_languages`` (the setting of that name; R15) must each have a text."""
    if not isinstance(payload, Mapping):
        raise SpecError({"body": "expected a JSON object"})
    errors: dict[str, Any] = {}
    name = _string(payload, "name", errors, required=True, longest=200)
    partner = _string(payload, "partner", errors, longest=200)
    kind = _enum(payload, "kind", ContactKind, errors, None)
    scope = _enum(payload, "scope", CampaignScope, errors, CampaignScope.SMART)
    variables = _variables(payload.get("variables", []), errors)
    defaults = _defaults(payload.get("variable_defaults"), variables, errors)
    priority = _integer(payload, "priority", errors, -32768, 32767)
    _caps_stay_on(payload, errors)
    start_at, end_at = _window(payload, now, errors)
    holdout = parse_holdout(payload, errors)
    variants = _variants(payload, kind, errors)
    texts = variants[0]["texts"] if variants else _texts(payload.get("texts"), kind, errors)
    survey = None
    if kind is ContactKind.SURVEY:
        survey = _survey(payload.get("survey"), errors)
        if survey is not None:
            texts = _survey_texts(texts, survey, errors)
            _check_follow_ups(survey, max_segments, errors)
    elif payload.get("survey") is not None:
        errors["survey"] = "only a campaign of kind 'survey' has a survey"
    if variants:
        _check_variants(variants, frozenset(variables), max_segments, required_languages, errors)
    else:
        _check_texts(texts, frozenset(variables), max_segments, errors)
        _check_required(texts, required_languages, kind, errors)
    trigger = _trigger(payload.get("trigger"), variables, defaults, errors)
    if errors:
        raise SpecError(errors)
    assert kind is not None and scope is not None
    return CampaignSpec(
        name,
        partner,
        kind,
        scope,
        texts,
        variables,
        priority,
        start_at,
        end_at,
        survey,
        defaults,
        variants if len(variants) > 1 else [],
        holdout,
        trigger,
    )


def _variants(
    payload: Mapping[str, Any], kind: ContactKind | None, errors: dict[str, Any]
) -> list[dict[str, Any]]:
    """``variants`` read (campaigns/variants.py); with them, ``texts`` (if given) must be
    variant A's. A single variant is the campaign's ``texts``, stored as before."""
    variants = parse_variants(payload.get("variants"), errors, _language_map)
    if not variants:
        return []
    if kind is ContactKind.SURVEY:
        errors["variants"] = (
            "text variants are for info campaigns (a survey's first message is its "
            "questions'); a survey may have a holdout_percent"
        )
        return []
    given = payload.get("texts")
    if given is not None and given != variants[0]["texts"]:
        errors["texts"] = "with variants, texts is variant A's: give the texts in variants only"
    return variants


def _check_variants(
    variants: list[dict[str, Any]],
    declared: frozenset[str],
    max_segments: int,
    required: Collection[str],
    errors: dict[str, Any],
) -> None:
    """Each variant's texts as ``texts`` are checked (placeholders, parts, R15), the
    problems under ``variants[i].texts``: language → what is wrong."""
    for index, variant in enumerate(variants):
        key = f"variants[{index}].texts"
        if key in errors:
            continue
        found: dict[str, Any] = {}
        _check_texts(variant["texts"], declared, max_segments, found)
        _check_required(variant["texts"], required, ContactKind.INFO, found)
        if "texts" in found:
            errors[key] = found["texts"]


def _trigger(
    value: Any, variables: list[str], defaults: dict[str, str], errors: dict[str, Any]
) -> Trigger | None:
    """The ``trigger`` (issue 15), or None for an audience campaign. A triggered campaign
    has no audience file, so its texts may use only variables that have a default."""
    if value is None:
        return None
    try:
        trigger = parse_trigger(value)
    except TriggerError as exc:
        errors["trigger"] = exc.details
        return None
    without = [name for name in variables if name not in defaults]
    if without and "variables" not in errors:
        errors["variables"] = (
            f"a triggered campaign has no audience file: give {', '.join(without)} a default "
            "or remove it"
        )
    return trigger


def _caps_stay_on(payload: Mapping[str, Any], errors: dict[str, Any]) -> None:
    """R7: every partner message takes a cap slot. ``apply_caps`` is still accepted, as
    ``true`` only, so clients that send it keep working; ``false`` is refused, never ignored."""
    if payload.get("apply_caps", True) is not True:
        errors["apply_caps"] = (
            "caps cannot be switched off: every campaign message takes a monthly cap slot (R7)"
        )


def _check_required(
    texts: dict[str, str],
    required: Collection[str],
    kind: ContactKind | None,
    errors: dict[str, Any],
) -> None:
    """R15: a text in each required language (the advertising law: Kazakh). For ``texts``
    the problem is given per missing language, like the other text problems; for a survey,
    whose languages are its questions', under ``survey``."""
    missing = [lang for lang in required if lang not in texts]
    if not missing or "texts" in errors or "survey" in errors:
        return
    why = 'advertising must include it (R15, Law "On Advertising" art. 6)'
    if kind is ContactKind.SURVEY:
        names = ", ".join(missing)
        errors["survey"] = (
            f"missing required language(s) {names}: {why}; give the questions, options and "
            f"thank-you in {names}"
        )
    else:
        errors["texts"] = {lang: f"required language {lang} is missing: {why}" for lang in missing}


def _string(
    payload: Mapping[str, Any],
    key: str,
    errors: dict[str, Any],
    *,
    required: bool = False,
    longest: int = 200,
) -> str:
    value = payload.get(key, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()):
        errors[key] = "required text" if required else "expected text"
        return ""
    if len(value) > longest:
        errors[key] = f"at most {longest} characters"
    return value.strip()


def _enum(
    payload: Mapping[str, Any], key: str, enum: Any, errors: dict[str, Any], default: Any
) -> Any:
    value = payload.get(key)
    if value is None and default is not None:
        return default
    try:
        return enum(value)
    except ValueError:
        errors[key] = "expected one of " + ", ".join(member.value for member in enum)
        return None


def _integer(
    payload: Mapping[str, Any], key: str, errors: dict[str, Any], low: int, high: int
) -> int:
    value = payload.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors[key] = f"expected an integer {low}..{high}"
        return 0
    return value


def _variables(value: Any, errors: dict[str, Any]) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors["variables"] = "expected a list of audience column names"
        return []
    bad = [v for v in value if not VARIABLE_NAME.match(v)]
    if bad:
        errors["variables"] = f"not lower-case identifiers: {', '.join(bad)}"
    elif len(set(value)) != len(value):
        errors["variables"] = "a column is named twice"
    return list(value)


MAX_DEFAULT = 200  # characters of a variable's default


def _defaults(value: Any, variables: list[str], errors: dict[str, Any]) -> dict[str, str]:
    """``{"variable": "default"}``: what a blank audience cell of that variable takes; an
    empty default makes the variable optional (it renders empty). Variables left out have
    no default: a blank cell rejects its row."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        errors["variable_defaults"] = 'expected {"variable": "default text"} ("" for optional)'
        return {}
    unknown = sorted(set(value) - set(variables))
    if unknown:
        errors["variable_defaults"] = f"not declared variables: {', '.join(unknown)}"
    elif any(len(v) > MAX_DEFAULT for v in value.values()):
        errors["variable_defaults"] = f"a default is at most {MAX_DEFAULT} characters"
    return {name: text.strip() for name, text in value.items()}


def _window(
    payload: Mapping[str, Any], now: datetime, errors: dict[str, Any]
) -> tuple[datetime | None, datetime | None]:
    start_at = _instant(payload, "start_at", errors)
    end_at = _instant(payload, "end_at", errors)
    if end_at is not None and end_at <= now:
        errors["end_at"] = "must be in the future"
    elif start_at and end_at and end_at <= start_at:
        errors["end_at"] = "must be after start_at"
    return start_at, end_at


def _instant(payload: Mapping[str, Any], key: str, errors: dict[str, Any]) -> datetime | None:
    value = payload.get(key)
    if value is None:
        return None
    instant = parse_instant(value)
    if instant is None:
        errors[key] = (
            f"expected an ISO 8601 time with a UTC offset, in years {EARLIEST_YEAR}-{LATEST_YEAR}"
        )
    return instant


def _language_map(value: Any, what: str) -> tuple[dict[str, str], str | None]:
    """A ``{lang: text}`` map, or the reason it is not one."""
    if not isinstance(value, Mapping) or not value:
        return {}, f'expected {what} per language: an object like {{"ru": "..."}}'
    unknown = sorted(set(value) - LANGUAGES)
    if unknown:
        return {}, f"unknown language(s) {', '.join(unknown)}; use kk, ru, en"
    if not all(isinstance(text, str) and text.strip() for text in value.values()):
        return {}, f"every {what} must be non-empty text"
    return dict(value), None


def _texts(value: Any, kind: ContactKind | None, errors: dict[str, Any]) -> dict[str, str]:
    if value is None and kind is ContactKind.SURVEY:
        return {}
    texts, problem = _language_map(value, "a text")
    if problem:
        errors["texts"] = problem
    return texts


def _check_texts(
    texts: dict[str, str], declared: frozenset[str], max_segments: int, errors: dict[str, Any]
) -> None:
    if "texts" in errors or "survey" in errors:
        return
    problems = {
        lang: problem
        for lang, text in texts.items()
        if (problem := check_text(text, declared, max_segments)) is not None
    }
    if problems:
        errors["texts"] = problems


def _survey(value: Any, errors: dict[str, Any]) -> SurveySpec | None:
    problems: dict[str, Any] = {}
    if not isinstance(value, Mapping):
        errors["survey"] = 'a survey campaign needs {"questions": [...], "thanks": {...}}'
        return None
    questions = value.get("questions")
    if not isinstance(questions, list) or not 1 <= len(questions) <= MAX_QUESTIONS:
        problems["questions"] = f"expected 1..{MAX_QUESTIONS} questions"
        questions = []
    thanks, problem = _language_map(value.get("thanks"), "a thank-you")
    if problem:
        problems["thanks"] = problem
    languages = frozenset(thanks)
    checked = [_question(q, n, languages, problems) for n, q in enumerate(questions, 1)]
    hours = value.get("timeout_hours", 24)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= 24 * 14:
        problems["timeout_hours"] = "expected hours, more than 0 and at most 336"
    if problems:
        errors["survey"] = problems
        return None
    return SurveySpec(checked, thanks, timedelta(hours=hours))


def _question(
    value: Any, number: int, languages: frozenset[str], problems: dict[str, Any]
) -> dict[str, Any]:
    key = f"question {number}"
    if not isinstance(value, Mapping):
        problems[key] = 'expected {"texts": {...}, "options": [{...}, ...]}'
        return {}
    texts, problem = _language_map(value.get("texts"), "a question")
    options: list[Any] = value.get("options") or []
    if problem is None and languages and set(texts) != languages:
        problem = f"languages {sorted(texts)} differ from the thank-you's {sorted(languages)}"
    if problem is None and not (isinstance(options, list) and 1 <= len(options) <= MAX_OPTIONS):
        problem = f"expected 1..{MAX_OPTIONS} options"
    for n, option in enumerate(options if problem is None else [], 1):
        option_texts, option_problem = _language_map(option, "an option")
        if option_problem is None and set(option_texts) != set(texts):
            option_problem = f"languages {sorted(option_texts)} differ from the question's"
        if option_problem:
            problem = f"option {n}: {option_problem}"
            break
    if problem:
        problems[key] = problem
        return {}
    return {"texts": texts, "options": [dict(option) for option in options]}


def _survey_texts(
    intro: dict[str, str], survey: SurveySpec, errors: dict[str, Any]
) -> dict[str, str]:
    """The campaign message per language: the intro (if any), then question 1 numbered."""
    first = survey.questions[0]
    if intro and set(intro) != set(first["texts"]):
        errors["texts"] = "the survey introduction must have the survey's languages"
        return {}
    return {lang: first_message(intro.get(lang), first, lang) for lang in first["texts"]}


def _check_follow_ups(survey: SurveySpec, max_segments: int, errors: dict[str, Any]) -> None:
    """Questions 2.. and the thank-you must encode too, and use no audience variables."""
    problems: dict[str, Any] = {}
    for number, question in enumerate(survey.questions[1:], 2):
        for lang in question["texts"]:
            message = question_message(question, lang)
            if problem := check_text(message, frozenset(), max_segments):
                problems[f"question {number}"] = {lang: problem}
    for lang, text in survey.thanks.items():
        if problem := check_text(text, frozenset(), max_segments):
            problems["thanks"] = {lang: problem}
    if problems:
        errors["survey"] = problems
