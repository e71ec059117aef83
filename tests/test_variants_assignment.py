"""Variants and a control group (issue 15): each recipient's arm is decided in the database
from (campaign id, msisdn) alone (migration 0039: audience_bucket, arm_bounds, audience_arm) —
deterministic, reproducible outside the database by its documented formula, and splitting a
large audience within tolerance of the percentages."""

from __future__ import annotations

import hashlib
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatcher.db import Database

ARM_SQL = (
    "SELECT m AS msisdn, audience_arm($1, m, $2, arm_bounds($3::jsonb)) AS arm "
    "FROM unnest($4::text[]) AS m"
)


def bucket(campaign_id: int, msisdn: str, draw: int) -> int:
    """README's formula: 32 bits of md5('<campaign id>:<msisdn>') — the first for the
    holdout (draw 0), the next for the variant (draw 1) — modulo 10,000."""
    digest = hashlib.md5(f"{campaign_id}:{msisdn}".encode()).hexdigest()
    return int(digest[8 * draw : 8 * draw + 8], 16) % 10000


def arm(campaign_id: int, msisdn: str, holdout: int, percents: list[int]) -> int | None:
    """README's rule: a holdout bucket below holdout × 100 is the holdout; else the variant
    bucket against the cumulative percentages × 100."""
    if bucket(campaign_id, msisdn, 0) < holdout * 100:
        return None
    b = bucket(campaign_id, msisdn, 1)
    upto = 0
    index = 0
    for percent in percents[:-1]:
        upto += percent
        index += b >= upto * 100
    return index


def _variants(percents: list[int]) -> list[dict[str, object]]:
    """The variants column (jsonb: the pool's codec encodes the list)."""
    return [{"name": chr(65 + i), "percent": p} for i, p in enumerate(percents)]


splits = (
    st.integers(1, 4)
    .flatmap(
        lambda n: st.lists(st.integers(1, 97), min_size=n - 1, max_size=n - 1).filter(
            lambda xs: sum(xs) < 100
        )
    )
    .map(lambda xs: [*xs, 100 - sum(xs)])
)
numbers = st.lists(st.from_regex(r"7701[0-9]{7}", fullmatch=True), min_size=1, max_size=50)


DB_PROPERTY = {"deadline": None, "suppress_health_check": [HealthCheck.function_scoped_fixture]}


@settings(max_examples=25, **DB_PROPERTY)
@given(campaign=st.integers(1, 10**9), holdout=st.integers(0, 50), percents=splits, msisdns=numbers)
async def test_database_arm_is_the_documented_formula(
    database: Database, campaign: int, holdout: int, percents: list[int], msisdns: list[str]
) -> None:
    """The arm the database assigns is the README's formula, computed here from md5 alone,
    and asking twice gives the same answer."""
    rows = await database.pool.fetch(ARM_SQL, campaign, holdout, _variants(percents), msisdns)
    again = await database.pool.fetch(ARM_SQL, campaign, holdout, _variants(percents), msisdns)
    assert [r["arm"] for r in rows] == [r["arm"] for r in again]
    for row in rows:
        assert row["arm"] == arm(campaign, row["msisdn"], holdout, percents)


@settings(max_examples=6, **DB_PROPERTY)
@given(campaign=st.integers(1, 10**6), holdout=st.integers(0, 50), percents=splits)
async def test_large_audience_splits_within_tolerance(
    database: Database, campaign: int, holdout: int, percents: list[int]
) -> None:
    """40,000 numbers: the holdout and each variant get their share within 1.5 points
    (a binomial's standard deviation at 40,000 is at most 0.25 points)."""
    msisdns = [f"7701{n:07d}" for n in range(40_000)]
    rows = await database.pool.fetch(ARM_SQL, campaign, holdout, _variants(percents), msisdns)
    counts = Counter(r["arm"] for r in rows)
    assert abs(100 * counts[None] / len(rows) - holdout) < 1.5
    for index, percent in enumerate(percents):
        expected = (100 - holdout) * percent / 100
        assert abs(100 * counts[index] / len(rows) - expected) < 1.5


async def test_one_text_no_holdout_is_variant_zero(database: Database) -> None:
    """A campaign of one text and no holdout: every recipient is variant 0."""
    rows = await database.pool.fetch(ARM_SQL, 7, 0, [], [f"7701{n:07d}" for n in range(100)])
    assert {r["arm"] for r in rows} == {0}
