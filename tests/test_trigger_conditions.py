"""The trigger condition language (issue 15): the database's evaluator (``trigger_matches``,
migration 0041) against a Python model of the rule, and the parsing of triggers, conditions
and delays (pure)."""

from __future__ import annotations

import operator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from campaigns.triggers import (
    Condition,
    TriggerError,
    condition_from_text,
    iso_duration,
    matches,
    parse_condition,
    parse_duration,
    parse_trigger,
    short_duration,
    trigger_from_words,
)
from dispatcher.db import Database

OPS = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

# Amounts as the gateway keeps them: whole numbers as integers, others as floats of at most
# two decimals (what JSON carries), around the thresholds.
AMOUNTS = st.one_of(
    st.integers(1, 3000),
    st.decimals(Decimal("0.01"), Decimal("3000"), places=2).map(
        lambda d: int(d) if d == d.to_integral() else float(d)
    ),
)
TEXTS = st.sampled_from(["Smart 5000", "smart 5000", "Smart", "Ақ", ""])


def model(field: str, op: str, value: Any, payload: dict[str, Any]) -> bool:
    """The rule written independently of campaigns/triggers.py: compare exact decimals for
    numbers, strings by equality; a missing field or another type never matches."""
    if field not in payload:
        return False
    found = payload[field]

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, str) != isinstance(b, str):
            return False
        if isinstance(a, str):
            return a == b
        return Decimal(str(a)) == Decimal(str(b))

    if op == "in":
        return any(same(found, v) for v in value)
    if isinstance(found, str) != isinstance(value, str):
        return False
    if isinstance(found, str):
        return bool(OPS[op](found, value))
    return bool(OPS[op](Decimal(str(found)), Decimal(str(value))))


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A condition and a payload: amount (number ops) or tariff (=, !=, in), sometimes a
    payload without the field or with a value of the other type."""
    if draw(st.booleans()):
        field, values = "amount", AMOUNTS
        op = draw(st.sampled_from([*OPS, "in"]))
    else:
        field, values = "tariff", TEXTS
        op = draw(st.sampled_from(["=", "!=", "in"]))
    value = draw(st.lists(values, min_size=1, max_size=4)) if op == "in" else draw(values)
    payload = draw(
        st.one_of(
            st.fixed_dictionaries({field: values}),
            st.fixed_dictionaries({field: TEXTS if field == "amount" else AMOUNTS}),
            st.just({}),
        )
    )
    return {"field": field, "op": op, "value": value}, payload


@given(batch=st.lists(cases(), min_size=1, max_size=40))
@hypothesis.settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_database_evaluator_against_a_model(
    database: Database, batch: list[tuple[dict[str, Any], dict[str, Any]]]
) -> None:
    """trigger_matches in PostgreSQL (jsonb comparisons) and matches() in Python agree with
    the model for any condition and payload, numbers at the boundaries included."""
    conditions = [c for c, _ in batch]
    payloads = [p for _, p in batch]
    rows = await database.pool.fetch(
        "SELECT trigger_matches(c, p) AS m FROM unnest($1::jsonb[], $2::jsonb[]) "
        "WITH ORDINALITY AS x(c, p, n) ORDER BY n",
        conditions,
        payloads,
    )
    for (condition, payload), row in zip(batch, rows, strict=True):
        expected = model(condition["field"], condition["op"], condition["value"], payload)
        assert row["m"] is expected, (condition, payload)
        python = matches(Condition(**condition), payload)
        assert python is expected, (condition, payload)


async def test_no_condition_matches_every_event(database: Database) -> None:
    """A trigger without a condition (NULL) takes every event of its type."""
    assert await database.pool.fetchval("SELECT trigger_matches(NULL, '{}'::jsonb)") is True
    assert matches(None, {})


def test_parse_trigger_defaults_and_aliases() -> None:
    """``status`` is subscriber_status; the max delay defaults to 24 hours."""
    trigger = parse_trigger({"event": "status"})
    assert (trigger.event, trigger.condition, trigger.max_delay) == (
        "subscriber_status",
        None,
        timedelta(hours=24),
    )
    assert trigger.as_json()["max_delay"] == "P1D"


@pytest.mark.parametrize(
    ("text", "delay"),
    [
        ("PT12H", timedelta(hours=12)),
        ("P1D", timedelta(days=1)),
        ("PT90M", timedelta(minutes=90)),
        ("P1DT2H", timedelta(days=1, hours=2)),
        ("12h", timedelta(hours=12)),
        ("45m", timedelta(minutes=45)),
        ("7d", timedelta(days=7)),
        ("PT1M", timedelta(minutes=1)),
    ],
)
def test_durations(text: str, delay: timedelta) -> None:
    """ISO 8601 and short delays parse, and print back in both forms."""
    assert parse_duration(text) == delay
    assert parse_duration(iso_duration(delay)) == delay
    assert parse_duration(short_duration(delay).replace(" ", "")) in (delay, None)


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "PT59S", "P8D", "12", "1 week", "-PT1H"])
def test_bad_durations(text: str) -> None:
    """Out of 1 minute..7 days, or not a duration: refused."""
    assert parse_duration(text) is None


@given(seconds=st.integers(60, 7 * 86400))
def test_iso_duration_round_trip(seconds: int) -> None:
    """Every delay in range prints as an ISO 8601 duration that parses back to itself."""
    delay = timedelta(seconds=seconds)
    assert parse_duration(iso_duration(delay)) == delay


def test_condition_words() -> None:
    """The CLI's and the console's words: ``field op value``, ``in`` with a list."""
    assert condition_from_text("top_up", "amount>=1000") == {
        "field": "amount",
        "op": ">=",
        "value": 1000,
    }
    assert condition_from_text("top_up", " amount < 99.5 ") == {
        "field": "amount",
        "op": "<",
        "value": 99.5,
    }
    assert condition_from_text("tariff_change", "tariff in Smart 5000, Smart 9000") == {
        "field": "tariff",
        "op": "in",
        "value": ["Smart 5000", "Smart 9000"],
    }
    assert condition_from_text("top_up", "  ") is None
    with pytest.raises(TriggerError):
        condition_from_text("top_up", "amount is big")
    assert trigger_from_words("top_up amount>=1000", "12h") == {
        "event": "top_up",
        "condition": {"field": "amount", "op": ">=", "value": 1000},
        "max_delay": "12h",
    }
    assert str(parse_trigger(trigger_from_words("status status=active", None))) == (
        "on subscriber_status where status = active, stale after 1d"
    )


def test_conditions_are_typed() -> None:
    """A number field takes numbers and every operator; a text field no ordering."""
    assert parse_condition("top_up", {"field": "amount", "op": "in", "value": [1, "2.5"]}) == (
        Condition("amount", "in", [1, 2.5])
    )
    for bad in (
        {"field": "amount", "op": ">", "value": True},
        {"field": "amount", "op": ">", "value": float("nan")},
        {"field": "tariff", "op": ">", "value": "A"},
        {"field": "amount", "op": ">", "value": 1, "and": 2},
    ):
        with pytest.raises(TriggerError):
            parse_condition("top_up" if bad["field"] == "amount" else "tariff_change", bad)
