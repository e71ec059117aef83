"""Chart geometry for the console's inline SVG (pure: numbers in, shapes out).

Templates draw what these functions compute: a stacked progress bar of a campaign, the
submits-per-bucket throughput chart, and horizontal bars of survey answers (counts only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatcher.kernel.states import DeliveryState

#: Progress bar groups: (css class, label, delivery states), in drawing order. Queued and
#: claimed rows are what remains: the bar's empty part.
_D = DeliveryState
PROGRESS_GROUPS: tuple[tuple[str, str, tuple[DeliveryState, ...]], ...] = (
    ("delivered", "delivered", (_D.DELIVERED,)),
    ("submitted", "submitted", (_D.SUBMITTED, _D.IN_FLIGHT)),
    ("failed", "not delivered", (_D.UNDELIVERED, _D.EXPIRED, _D.FAILED, _D.UNKNOWN)),
    ("suppressed", "suppressed", (_D.SUPPRESSED,)),
)
#: Bucket widths of the throughput chart, in minutes; the narrowest giving ≤ MAX_BARS bars.
BUCKET_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440)
MAX_BARS = 60
MIN_SLOTS = 12


@dataclass(frozen=True, slots=True)
class Segment:
    """One coloured part of a stacked bar: x and width in percent of the bar."""

    css: str
    label: str
    count: int | str  # str: a partner-facing count shown as "< 5" (R11)
    x: float
    width: float


def progress(states: Mapping[DeliveryState, int]) -> tuple[int, list[Segment]]:
    """(total, segments) of a campaign's progress bar from its counts by delivery state
    (keyed by state or by its name: a :class:`DeliveryState` is its name as a key)."""
    total = sum(states.values())
    segments, x = [], 0.0
    for css, label, members in PROGRESS_GROUPS:
        count = sum(states.get(state, 0) for state in members)
        width = 100.0 * count / total if total else 0.0
        segments.append(Segment(css, label, count, round(x, 3), round(width, 3)))
        x += width
    return total, segments


def bucket_width(first: datetime, last: datetime) -> timedelta:
    """The narrowest bucket of :data:`BUCKET_MINUTES` that spans first..last in at most
    :data:`MAX_BARS` bars."""
    span_minutes = max((last - first).total_seconds() / 60.0, 0.0)
    for minutes in BUCKET_MINUTES:
        if span_minutes / minutes < MAX_BARS:
            return timedelta(minutes=minutes)
    return timedelta(minutes=BUCKET_MINUTES[-1])


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    start: datetime


@dataclass(frozen=True, slots=True)
class TimeChart:
    """Bars in a ``WIDTH`` × ``HEIGHT`` viewBox (plot area inset by ``LEFT``/``BOTTOM``),
    y-axis ticks as (y, value), and the bucket width."""

    bars: list[Bar]
    ticks: list[tuple[float, int]]
    bucket: timedelta
    peak: int
    per_second: float


WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640.0, 220.0, 48.0, 28.0, 10.0


def throughput(buckets: Sequence[tuple[datetime, int]], bucket: timedelta) -> TimeChart | None:
    """The chart of submits per bucket (missing buckets are zero); None without submits."""
    if not buckets:
        return None
    first = buckets[0][0]
    count_of = dict(buckets)
    slots = int((buckets[-1][0] - first) / bucket) + 1
    series = [(first + i * bucket, count_of.get(first + i * bucket, 0)) for i in range(slots)]
    peak = max(n for _, n in series)
    top = nice_ceiling(peak)
    plot_w, plot_h = WIDTH - LEFT - 8.0, HEIGHT - BOTTOM - TOP
    step = plot_w / max(len(series), MIN_SLOTS)  # a few bars stay bar-shaped
    bars = []
    for i, (start, n) in enumerate(series):
        height = plot_h * n / top
        x = LEFT + i * step + step * 0.1
        bars.append(
            Bar(
                round(x, 2),
                round(TOP + plot_h - height, 2),
                round(step * 0.8, 2),
                round(height, 2),
                n,
                start,
            )
        )
    ticks = [(round(TOP + plot_h * (1 - k / 4), 2), top * k // 4) for k in range(5)]
    return TimeChart(bars, ticks, bucket, peak, round(peak / bucket.total_seconds(), 2))


def nice_ceiling(value: int) -> int:
    """The top of a four-step axis for ``value``: 4 × a step of 1, 2, 2.5 or 5 × 10^k (a
    whole number), the smallest such top ≥ ``value``."""
    wanted = max(math.ceil(value / 4), 1)
    magnitude = 1
    while True:
        for factor in (1, 2, 2.5, 5):
            step = factor * magnitude
            if step >= wanted and step == int(step):
                return 4 * int(step)
        magnitude *= 10


@dataclass(frozen=True, slots=True)
class OptionBar:
    """A survey option: its label, answer count, share of the question's answers (percent)
    and the bar's width in percent of the full track: the share itself, so a bar's length
    reads as its percentage (100 % is the whole track, not the most chosen option)."""

    label: str
    count: int | str  # str: a partner-facing count shown as "< 5" (R11)
    share: float | str
    width: float


def option_bars(options: Sequence[tuple[str, int]]) -> list[OptionBar]:
    """Horizontal bars for a question's options, each as long as its share of the answers."""
    total = sum(n for _, n in options)
    bars = []
    for label, n in options:
        share = round(100.0 * n / total, 1) if total else 0.0
        bars.append(OptionBar(label, n, share, share))
    return bars
