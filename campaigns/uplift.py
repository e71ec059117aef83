"""The uplift of a variant over the holdout, with a 95% interval (pure).

The uplift is the difference of two proportions, ``p1 - p2`` (a variant's rate minus the
holdout's, e.g. of bonus activations per recipient). Its interval is Newcombe's hybrid score
interval (Newcombe 1998, method 10), built from the two Wilson score intervals: unlike the
plain Wald interval it stays inside [-1, 1], is not empty at rates of 0 or 1, and keeps close
to its nominal coverage with the small counts and rare events a campaign's opt-outs give.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Uplift:
    """``difference`` = rate 1 − rate 2, and its interval ``[low, high]`` (proportions,
    -1..1)."""

    difference: float
    low: float
    high: float

    def as_dict(self, digits: int = 4) -> dict[str, float]:
        return {
            "difference": round(self.difference, digits),
            "low": round(self.low, digits),
            "high": round(self.high, digits),
        }


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes`` of ``trials`` (``trials`` > 0)."""
    if trials <= 0 or not 0 <= successes <= trials:
        raise ValueError("expected 0 <= successes <= trials and trials > 0")
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    # At a rate of 0 or 1 the bound is the rate itself; floating point may miss it by 1e-16.
    return min(max(0.0, centre - half), p), max(min(1.0, centre + half), p)


def uplift(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> Uplift | None:
    """The difference of ``k1/n1`` over ``k2/n2`` with Newcombe's hybrid score interval;
    None when either group is empty."""
    if n1 <= 0 or n2 <= 0:
        return None
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    difference = p1 - p2
    low = difference - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = difference + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return Uplift(difference, max(-1.0, low), min(1.0, high))
