"""Time, injected: every time-dependent piece takes a :class:`Clock` so tests set "now".

Zones come from the ``tzdata`` package, never from the host's tz database: a host with data
older than 2024a computes Astana time as UTC+6, the package knows it is UTC+5 since
2024-03-01.
"""

from __future__ import annotations

import importlib.resources
import time
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class Clock(Protocol):
    """Source of the current instant (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class OffsetClock:
    """Real time shifted to start at ``start`` (and optionally sped up): for demos and
    process-level tests that must not depend on the host's wall-clock hour."""

    def __init__(self, start: datetime, speed: float = 1.0) -> None:
        self._start = _require_aware(start)
        self._speed = speed
        self._origin = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._origin) * self._speed
        return self._start + timedelta(seconds=elapsed)


class ManualClock:
    """A clock that moves only when told to: for tests, the demo and simulated soaks."""

    def __init__(self, start: datetime) -> None:
        self._now = _require_aware(start)

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        self._now = _require_aware(instant)

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


def _require_aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("clock instants must be timezone-aware")
    return instant.astimezone(UTC)


@cache
def load_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` read from the ``tzdata`` package, independent of the host.

    Raises ``ZoneInfoNotFoundError`` (a ``KeyError``) for an unknown name.
    """
    if not name or name.startswith(("/", ".")) or ".." in name:
        raise ZoneInfoNotFoundError(name)
    resource = importlib.resources.files("tzdata.zoneinfo").joinpath(name)
    try:
        with resource.open("rb") as fh:
            return ZoneInfo.from_file(fh, key=name)
    except (FileNotFoundError, IsADirectoryError, ValueError) as exc:
        raise ZoneInfoNotFoundError(name) from exc
