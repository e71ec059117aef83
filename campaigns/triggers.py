"""Event triggers of a campaign (issue 15): which operator event queues the campaign's message
for its number, on what condition of the event's fields, and how long the message may wait
for the send window before it is stale.

A trigger is ``{"event": "top_up", "condition": {"field": "amount", "op": ">=", "value":
1000}, "max_delay": "PT12H"}``. The condition language is one comparison of one field of the
event with a constant (or a list of constants, ``in``), typed by the field: a number field
takes every operator, a text field ``=``, ``!=`` and ``in``. Nothing is evaluated as code:
the database compares the values (``trigger_matches``, migration 0041) when an event is
recorded; :func:`matches` is the same rule in Python, for the console's sentence and tests.

Pure: parsing and validation only, every problem a message keyed by the part it is about.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from dispatcher.kernel.states import SubscriberStatus

#: Event type → its fields a condition may test → the field's kind.
TRIGGER_EVENTS: dict[str, dict[str, str]] = {
    "top_up": {"amount": "number"},
    "tariff_change": {"tariff": "text"},
    "subscriber_status": {"status": "status"},
}
#: Names the gateway and a trigger also accept for an event type.
EVENT_ALIASES = {"status": "subscriber_status"}
NUMBER_OPS = ("=", "!=", "<", "<=", ">", ">=", "in")
TEXT_OPS = ("=", "!=", "in")
MAX_IN = 50  # constants of one ``in``
MAX_TEXT = 100  # characters of a text constant (as the gateway's tariff)
MAX_NUMBER = Decimal(10) ** 12
MIN_DELAY = timedelta(minutes=1)
MAX_DELAY = timedelta(days=7)
DEFAULT_DELAY = timedelta(hours=24)
STATUSES = tuple(s.value for s in SubscriberStatus)

_DURATION = re.compile(r"^P(?:(\d{1,3})D)?(?:T(?:(\d{1,4})H)?(?:(\d{1,5})M)?(?:(\d{1,6})S)?)?$")
_SHORT = re.compile(r"^\s*(\d{1,6})\s*([dhms])\s*$", re.IGNORECASE)
_SHORT_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_CONDITION = re.compile(r"^\s*([a-z_]+)\s*(>=|<=|!=|=|<|>|\s(?:in|IN)\s)\s*(.*?)\s*$")


class TriggerError(ValueError):
    """The trigger is invalid; ``details`` maps its part (event, condition, max_delay) to
    what is wrong with it."""

    def __init__(self, details: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in details.items()))
        self.details = details


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: Any  # a number, a text, or a list of them for ``in``

    def as_json(self) -> dict[str, Any]:
        return {"field": self.field, "op": self.op, "value": self.value}

    def __str__(self) -> str:
        """``amount >= 1000``, ``tariff in A, B``: the console's and the CLI's words."""
        if self.op == "in":
            return f"{self.field} in {', '.join(_word(v) for v in self.value)}"
        return f"{self.field} {self.op} {_word(self.value)}"


@dataclass(frozen=True, slots=True)
class Trigger:
    event: str
    condition: Condition | None
    max_delay: timedelta

    def as_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "condition": None if self.condition is None else self.condition.as_json(),
            "max_delay": iso_duration(self.max_delay),
        }

    def __str__(self) -> str:
        when = f" where {self.condition}" if self.condition else ""
        return f"on {self.event}{when}, stale after {short_duration(self.max_delay)}"

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Trigger | None:
        """From a campaign row's trigger columns (migration 0041); None when not triggered."""
        event = row.get("trigger_event")
        if event is None:
            return None
        raw = row.get("trigger_condition")
        condition = None if raw is None else Condition(raw["field"], raw["op"], raw["value"])
        return cls(event, condition, row["trigger_max_delay"])


def _word(value: Any) -> str:
    return str(value)


def canonical_event(name: Any) -> str | None:
    """The event type ``name`` stands for (aliases resolved), or None."""
    if not isinstance(name, str):
        return None
    name = EVENT_ALIASES.get(name, name)
    return name if name in TRIGGER_EVENTS else None


def parse_trigger(value: Any) -> Trigger:
    """A trigger from the create payload's ``trigger``; raises :class:`TriggerError`."""
    if not isinstance(value, Mapping):
        raise TriggerError(
            {"trigger": 'expected {"event": ..., "condition": {...}, "max_delay": "PT12H"}'}
        )
    errors: dict[str, str] = {}
    unknown = sorted(set(value) - {"event", "condition", "max_delay"})
    if unknown:
        errors["trigger"] = f"unknown field(s) {', '.join(unknown)}"
    event = canonical_event(value.get("event"))
    if event is None:
        errors["event"] = "expected one of " + ", ".join([*TRIGGER_EVENTS, *EVENT_ALIASES])
    condition = None
    if event is not None and value.get("condition") is not None:
        try:
            condition = parse_condition(event, value["condition"])
        except TriggerError as exc:
            errors |= exc.details
    delay = DEFAULT_DELAY
    if value.get("max_delay") is not None:
        parsed = parse_duration(value["max_delay"])
        if parsed is None:
            errors["max_delay"] = (
                "expected an ISO 8601 duration (PT12H, P1D, PT90M) "
                f"from {iso_duration(MIN_DELAY)} to {iso_duration(MAX_DELAY)}"
            )
        else:
            delay = parsed
    if errors:
        raise TriggerError(errors)
    assert event is not None
    return Trigger(event, condition, delay)


def parse_condition(event: str, value: Any) -> Condition:
    """``{"field", "op", "value"}`` checked against the fields of ``event``."""
    fields = TRIGGER_EVENTS[event]
    if not isinstance(value, Mapping) or set(value) != {"field", "op", "value"}:
        raise TriggerError({"condition": 'expected {"field": ..., "op": ..., "value": ...}'})
    name, op = value["field"], value["op"]
    kind = fields.get(name) if isinstance(name, str) else None
    if kind is None:
        raise TriggerError(
            {"condition": f"{event} events have the field(s) {', '.join(fields)}, not {name!r}"}
        )
    ops = NUMBER_OPS if kind == "number" else TEXT_OPS
    if op not in ops:
        raise TriggerError({"condition": f"{name} takes the operators {' '.join(ops)}"})
    if op == "in":
        items = value["value"]
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_IN:
            raise TriggerError({"condition": f"in takes a list of 1..{MAX_IN} values"})
        return Condition(name, op, [_constant(name, kind, item) for item in items])
    return Condition(name, op, _constant(name, kind, value["value"]))


def _constant(name: str, kind: str, value: Any) -> Any:
    if kind == "number":
        number = json_number(value)
        if number is None:
            raise TriggerError(
                {"condition": f"{name} is compared with a number (at most {MAX_NUMBER:,})"}
            )
        return number
    if kind == "status":
        if value not in STATUSES:
            raise TriggerError({"condition": f"{name} is one of {', '.join(STATUSES)}"})
        return value
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise TriggerError({"condition": f"{name} is compared with text of 1..{MAX_TEXT}"})
    return value


def json_number(value: Any) -> int | float | None:
    """A finite number of at most :data:`MAX_NUMBER` (a JSON number or a decimal text) as
    JSON keeps it: an integer when whole; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) <= MAX_NUMBER else None
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) > MAX_NUMBER:
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,13}(\.\d{1,6})?", value.strip()):
        try:
            exact = Decimal(value.strip())
        except InvalidOperation:  # pragma: no cover - the pattern is a decimal
            return None
        return json_number(int(exact) if exact == exact.to_integral() else float(exact))
    return None


def parse_duration(value: Any) -> timedelta | None:
    """An ISO 8601 duration (days, hours, minutes, seconds) or a short ``12h``/``90m``/
    ``1d`` within [:data:`MIN_DELAY`, :data:`MAX_DELAY`]; None otherwise."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    short = _SHORT.match(text)
    if short:
        delay = timedelta(**{_SHORT_UNITS[short.group(2).lower()]: int(short.group(1))})
    else:
        match = _DURATION.match(text.upper())
        if match is None or text.upper() in ("P", "PT") or text.upper().endswith("T"):
            return None
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        delay = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    return delay if MIN_DELAY <= delay <= MAX_DELAY else None


def iso_duration(delay: timedelta) -> str:
    """``PT12H``, ``P1DT2H``, ``PT90M`` → the ISO 8601 form of ``delay``."""
    seconds = int(delay.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else "")


def short_duration(delay: timedelta) -> str:
    """``12h``, ``1d 2h``, ``90m`` → ``delay`` in the CLI's and the console's words."""
    seconds = int(delay.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s"))]
    return " ".join(p for p in parts if not p.startswith("0")) or "0s"


def condition_from_text(event: str, text: str) -> dict[str, Any] | None:
    """``amount >= 1000``, ``tariff = Smart``, ``status in active, outgoing_blocked`` → the
    JSON condition (checked by :func:`parse_condition` later); blank → None (every event).
    Raises :class:`TriggerError` when the text is not ``field op value``."""
    if not text.strip():
        return None
    match = _CONDITION.match(text)
    if match is None:
        raise TriggerError(
            {
                "condition": "expected 'field op value', e.g. 'amount >= 1000' (op: "
                + " ".join(NUMBER_OPS)
                + ")"
            }
        )
    name, op, raw = match.group(1), match.group(2).strip().lower(), match.group(3)
    kind = TRIGGER_EVENTS.get(event, {}).get(name)
    value: Any
    if op == "in":
        value = [_typed(kind, item.strip()) for item in raw.split(",")]
    else:
        value = _typed(kind, raw)
    return {"field": name, "op": op, "value": value}


def _typed(kind: str | None, raw: str) -> Any:
    if kind == "number":
        number = json_number(raw)
        return raw if number is None else number
    return raw


def trigger_from_words(words: str, max_delay: str | None) -> dict[str, Any]:
    """``top_up amount>=1000`` (the event type, then an optional condition) and a delay
    (``12h``, ``PT12H``) → the create payload's ``trigger``, unchecked."""
    event, _, condition = words.strip().partition(" ")
    name = canonical_event(event) or event
    trigger: dict[str, Any] = {"event": name}
    trigger["condition"] = condition_from_text(name, condition) if name in TRIGGER_EVENTS else None
    if max_delay is not None:
        trigger["max_delay"] = max_delay
    return trigger


def matches(condition: Condition | None, payload: Mapping[str, Any]) -> bool:
    """Whether an event's ``payload`` meets ``condition`` (None: every event): the rule of
    ``trigger_matches`` in migration 0041 — a missing field, or one of another type than
    the constant, never matches."""
    if condition is None:
        return True
    if condition.field not in payload:
        return False
    found = payload[condition.field]
    if condition.op == "in":
        return any(_same_type(found, v) and _compare(found, "=", v) for v in condition.value)
    return _same_type(found, condition.value) and _compare(found, condition.op, condition.value)


def _same_type(a: Any, b: Any) -> bool:
    number = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    return (isinstance(a, number) and isinstance(b, number)) or (
        isinstance(a, str) and isinstance(b, str)
    )


def _compare(a: Any, op: str, b: Any) -> bool:
    if isinstance(a, int | float):
        a, b = Decimal(repr(a)), Decimal(repr(b))
    if op == "=":
        return bool(a == b)
    if op == "!=":
        return bool(a != b)
    if op == "<":
        return bool(a < b)
    if op == "<=":
        return bool(a <= b)
    if op == ">":
        return bool(a > b)
    return bool(a >= b)


def describe_fields() -> Sequence[str]:
    """Each event type with its fields, for help texts: ``top_up: amount (number)``."""
    return [
        f"{event}: " + ", ".join(f"{name} ({kind})" for name, kind in fields.items())
        for event, fields in TRIGGER_EVENTS.items()
    ]
