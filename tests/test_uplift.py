"""The uplift of a variant over the holdout (campaigns/uplift.py, pure): Newcombe's hybrid
score interval of a difference of two proportions, checked by property."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from campaigns.uplift import uplift, wilson


@st.composite
def proportions(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(1, 100_000))
    return draw(st.integers(0, n)), n


@given(proportions(), proportions())
def test_interval_contains_the_difference_and_stays_in_range(
    one: tuple[int, int], two: tuple[int, int]
) -> None:
    """The interval holds the point estimate, and stays within [-1, 1]."""
    found = uplift(*one, *two)
    assert found is not None
    assert -1.0 <= found.low <= found.difference <= found.high <= 1.0
    assert abs(found.difference - (one[0] / one[1] - two[0] / two[1])) < 1e-12


@given(proportions(), proportions())
def test_swapping_the_groups_mirrors_the_interval(
    one: tuple[int, int], two: tuple[int, int]
) -> None:
    """Symmetry: B over A is A over B negated, interval and all."""
    ab, ba = uplift(*one, *two), uplift(*two, *one)
    assert ab is not None and ba is not None
    assert abs(ab.difference + ba.difference) < 1e-12
    assert abs(ab.low + ba.high) < 1e-9 and abs(ab.high + ba.low) < 1e-9


@given(proportions(), proportions(), st.integers(2, 50))
def test_more_recipients_narrow_the_interval(
    one: tuple[int, int], two: tuple[int, int], factor: int
) -> None:
    """The same rates with ``factor`` times the recipients give a narrower interval."""
    small = uplift(*one, *two)
    large = uplift(one[0] * factor, one[1] * factor, two[0] * factor, two[1] * factor)
    assert small is not None and large is not None
    assert large.high - large.low < small.high - small.low + 1e-12


@given(proportions())
def test_wilson_contains_the_rate(one: tuple[int, int]) -> None:
    """Each group's Wilson interval holds its own rate."""
    low, high = wilson(*one)
    assert 0.0 <= low <= one[0] / one[1] <= high <= 1.0


def test_known_values_and_empty_groups() -> None:
    """Newcombe's (1998) example 56/70 vs 48/80: 0.2000, interval 0.0524 to 0.3339; an
    empty group has no uplift."""
    found = uplift(56, 70, 48, 80)
    assert found is not None
    assert round(found.difference, 4) == 0.2
    assert round(found.low, 4) == 0.0524 and round(found.high, 4) == 0.3339
    assert uplift(0, 0, 1, 10) is None and uplift(1, 10, 0, 0) is None
