"""Campaign texts: ``{variable}`` placeholders, rendering, and what a text costs in SMS parts.

A template is plain text with ``{name}`` placeholders (``name`` a lower-case identifier, one
of the campaign's declared audience columns); ``{{`` and ``}}`` stand for literal braces.
Everything here is pure: the engine calls :func:`render` per message, so a template is
parsed once (cached) and rendering is a join. The cache is bounded by bytes, not entries
(issue 13: 750 previews of distinct 1 MiB texts kept 730 MiB in an ``lru_cache(4096)``):
at most :data:`CACHE_BYTES` in all, and a text over :data:`CACHE_ENTRY_BYTES` is parsed
each time, never kept (no campaign text comes near it).
"""

from __future__ import annotations

import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from campaigns.languages import pick_language
from smpp.text import ConcatMode, Encoding, count_segments, max_parts

_TOKEN = re.compile(r"\{\{|\}\}|\{([a-z_][a-z0-9_]{0,62})\}|[{}]")
VARIABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

Piece = tuple[str, str | None]  # (literal text, variable name or None)


class TemplateError(ValueError):
    """A template that cannot be parsed (a stray ``{`` or ``}``)."""


class MissingVariable(KeyError):
    """:func:`render` was not given a value for a placeholder of the template."""


#: The most the parsed-template cache holds, in bytes (the texts and their pieces).
CACHE_BYTES = 4 << 20
#: A template costing more than this (text and pieces) is never cached.
CACHE_ENTRY_BYTES = 64 << 10


class _ParsedCache:
    """Least recently used templates and their pieces, at most ``limit`` bytes in all
    (``sys.getsizeof`` of the text and of each piece's literal)."""

    def __init__(self, limit: int, entry_limit: int) -> None:
        self.limit, self.entry_limit = limit, entry_limit
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[tuple[Piece, ...], int]] = OrderedDict()
        self._lock = threading.Lock()  # render may run in worker threads too

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, template: str) -> tuple[Piece, ...] | None:
        with self._lock:
            entry = self._entries.get(template)
            if entry is None:
                return None
            self._entries.move_to_end(template)
            return entry[0]

    def put(self, template: str, pieces: tuple[Piece, ...]) -> None:
        cost = sys.getsizeof(template) + sum(sys.getsizeof(literal) for literal, _ in pieces)
        if cost > self.entry_limit:
            return
        with self._lock:
            if template in self._entries:
                return
            self._entries[template] = (pieces, cost)
            self.bytes += cost
            while self.bytes > self.limit:
                _, (_, freed) = self._entries.popitem(last=False)
                self.bytes -= freed

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.bytes = 0


_PARSED = _ParsedCache(CACHE_BYTES, CACHE_ENTRY_BYTES)


def parse_template(template: str) -> tuple[Piece, ...]:
    """The template as (literal, variable-or-None) pieces; raises :class:`TemplateError`.
    Cached (bounded by bytes: see the module docstring)."""
    pieces = _PARSED.get(template)
    if pieces is None:
        pieces = _parse(template)
        _PARSED.put(template, pieces)
    return pieces


def _parse(template: str) -> tuple[Piece, ...]:
    pieces: list[Piece] = []
    literal: list[str] = []
    position = 0
    for match in _TOKEN.finditer(template):
        literal.append(template[position : match.start()])
        position = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
        elif match.group(1) is not None:
            pieces.append(("".join(literal), match.group(1)))
            literal = []
        else:
            raise TemplateError(
                f"unmatched {token!r} at character {match.start() + 1}; "
                "placeholders look like {name}, literal braces are doubled"
            )
    literal.append(template[position:])
    pieces.append(("".join(literal), None))
    return tuple(pieces)


def variables_of(template: str) -> frozenset[str]:
    """The placeholder names ``template`` uses; raises :class:`TemplateError`."""
    return frozenset(name for _, name in parse_template(template) if name is not None)


def fill_variables(
    values: Mapping[str, str], defaults: Mapping[str, str] | None
) -> dict[str, str] | None:
    """The one rule for a blank variable, at upload, when sending and in the preview:
    ``values`` with each blank (empty, white space or absent) value replaced by its
    variable's default (``""`` for an optional one); None when a blank one has no default
    (the upload rejects that row)."""
    filled: dict[str, str] = {}
    for name, value in values.items():
        if value is not None and value.strip():
            filled[name] = value
        elif defaults is not None and name in defaults:
            filled[name] = defaults[name]
        else:
            return None
    return filled


def render(
    template: str, variables: Mapping[str, str] | None, defaults: Mapping[str, str] | None = None
) -> str:
    """``template`` with every ``{name}`` replaced by ``variables[name]``, or by the
    campaign's default for ``name`` when that value is blank or absent (:func:`fill_variables`).

    Pure and cheap after the first call for a template. Raises :class:`MissingVariable`
    when a placeholder has neither, :class:`TemplateError` for a malformed template.
    """
    pieces = parse_template(template)
    if len(pieces) == 1:
        return pieces[0][0]
    values = variables or {}
    out: list[str] = []
    for literal, name in pieces:
        out.append(literal)
        if name is not None:
            value = values.get(name)
            if value is None or not value.strip():
                if defaults is None or name not in defaults:
                    raise MissingVariable(name)
                value = defaults[name]
            out.append(value)
    return "".join(out)


def pick_text(texts: Mapping[str, str], language: str | None, default: str) -> tuple[str, str]:
    """(language, template) for a recipient, the language chosen by :func:`pick_language`."""
    chosen = pick_language(texts, language, default)
    return chosen, texts[chosen]


def message_text(
    texts: Mapping[str, str],
    language: str | None,
    variables: Mapping[str, str] | None,
    default: str,
    defaults: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """(language, text) a campaign recipient is sent: the text in the language
    :func:`pick_text` chooses, rendered with the recipient's values (a blank one takes the
    campaign's ``defaults``, :func:`render`); the text is ``""`` when
    it cannot be rendered (the engine then fails the message). The engine's message and the
    forecast's parts count (dispatcher/engine/forecast.py) are both this function's answer."""
    chosen, template = pick_text(texts, language, default)
    try:
        return chosen, render(template, variables, defaults)
    except (KeyError, ValueError):
        return chosen, ""  # a template that passed validation at creation


@dataclass(frozen=True, slots=True)
class TextCost:
    """What one text costs: alphabet, SMS parts (UDH concatenation) and characters."""

    encoding: str  # "gsm7" | "ucs2"
    segments: int
    characters: int

    def as_dict(self) -> dict[str, object]:
        return {"encoding": self.encoding, "segments": self.segments, "characters": self.characters}


_ENCODING_NAMES = {Encoding.GSM7: "gsm7", Encoding.UCS2: "ucs2"}


def text_cost(text: str) -> TextCost:
    """Encoding and part count of ``text`` as it would be sent; ValueError if unencodable."""
    encoding, segments = count_segments(text, ConcatMode.UDH)
    return TextCost(_ENCODING_NAMES[encoding], segments, len(text))


def check_text(template: str, declared: frozenset[str], max_segments: int) -> str | None:
    """Why ``template`` cannot be a campaign text, or None when it can.

    Its placeholders must be ``declared`` audience columns, and the template itself (with
    placeholders as written, an estimate of a rendered message) must encode in at most
    ``max_segments`` parts (never more than SMPP's 255).
    """
    if not template.strip():
        return "text is empty"
    try:
        unknown = sorted(variables_of(template) - declared)
        cost = text_cost(template)
    except (TemplateError, ValueError) as exc:
        return str(exc)
    if unknown:
        shown = ", ".join(sorted(declared)) or "none"
        return f"unknown variable(s) {', '.join(unknown)}; audience columns declared: {shown}"
    limit = min(max_segments, max_parts(ConcatMode.UDH))
    if cost.segments > limit:
        return f"text needs {cost.segments} SMS parts ({cost.encoding}); at most {limit} allowed"
    return None


def preview(
    texts: Mapping[str, str],
    sample: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
) -> dict[str, dict[str, object]]:
    """Per language: encoding, segments and characters of the text, rendered with ``sample``
    values where given, else the variable's default (as :func:`render` does; placeholders
    with neither are counted as written)."""
    result: dict[str, dict[str, object]] = {}
    for language, template in texts.items():
        try:
            text = _render_sample(template, sample or {}, defaults or {})
            result[language] = text_cost(text).as_dict()
        except (TemplateError, ValueError) as exc:
            result[language] = {"error": str(exc)}
    return result


def _render_sample(template: str, sample: Mapping[str, str], defaults: Mapping[str, str]) -> str:
    out: list[str] = []
    for literal, name in parse_template(template):
        out.append(literal)
        if name is None:
            continue
        value = sample.get(name)
        if value is None or not value.strip():
            value = defaults.get(name, "{" + name + "}")
        out.append(value)
    return "".join(out)


def numbered(question: str, options: list[str]) -> str:
    """A survey question as sent: the question, then one ``N. option`` line per option."""
    lines = [question.rstrip()]
    lines.extend(f"{number}. {option.strip()}" for number, option in enumerate(options, 1))
    return "\n".join(lines)


def question_message(question: Mapping[str, Any], language: str) -> str:
    """Survey question ``{"texts": {lang: q}, "options": [{lang: o}]}`` as sent in
    ``language``: the one composition of a question, used for the first message (with the
    intro: :func:`first_message`), by the survey runtime for the follow-ups, and by the
    create preview."""
    return numbered(question["texts"][language], [o[language] for o in question["options"]])


def first_message(intro: str | None, question: Mapping[str, Any], language: str) -> str:
    """A survey's campaign message in ``language``: the intro (if any) on its own line(s),
    then question 1 numbered. Stored as the campaign's text at creation and sent as is."""
    head = intro.rstrip() + "\n" if intro else ""
    return head + question_message(question, language)


def intro_of(message: str, question: Mapping[str, Any], language: str) -> str | None:
    """The intro that :func:`first_message` put before question 1 (None when there is
    none, or when ``message`` is not such a composition)."""
    if language not in question["texts"]:
        return None
    tail = question_message(question, language)
    if message == tail or not message.endswith("\n" + tail):
        return None
    return message[: -len(tail) - 1] or None
