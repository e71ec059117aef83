"""CPU time of the processes a benchmark runs beside itself (the simulator, ``smartd serve``,
the embedded PostgreSQL's postmaster and backends), read through psutil: robust to a loaded
host where wall time is not."""

from __future__ import annotations

import contextlib

import psutil


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by the processes ``pids`` (gone ones: 0)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def server_pids(postmaster: int) -> list[int]:
    """The PostgreSQL server's processes: the postmaster and its children."""
    with contextlib.suppress(psutil.Error):
        return [postmaster, *(p.pid for p in psutil.Process(postmaster).children())]
    return [postmaster]
