"""The USSD load generator shared by ``bench program`` and ``bench load``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time

import aiohttp

#: The gateway's mix: the menu, a join (members hear they already are; a number not yet a
#: member joins), the bonus balance.
MIX = [("*555#", 0.4), ("*555*1#", 0.2), ("*111*3#", 0.4)]


async def wait_ready(base: str, path: str = "/healthz", limit: float = 60) -> None:
    """Wait until the service at ``base`` answers 200 on ``path``."""
    deadline = time.monotonic() + limit
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + path) as resp:
                    if resp.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError("smartd serve did not become ready")
            await asyncio.sleep(0.2)  # another process starting up


async def ussd_load(
    base: str,
    token: str,
    first_msisdn: int,
    members: int,
    rate: int,
    seconds: float,
    tag: str = "L",
    sent: list[tuple[str, str]] | None = None,
    timeout_s: float = 30.0,
) -> tuple[list[float], int, float]:
    """POST /gateway/ussd at ``rate``/s for ``seconds`` (open loop) from numbers
    ``first_msisdn`` .. + ``members``; returns the sorted latencies (s), the error count and
    the elapsed time. Latency counts from the scheduled time, so a stall shows in the
    percentiles instead of slowing the load down. ``sent``, when given, receives the
    (msisdn, input) of every request answered 200."""
    total = int(rate * seconds)
    rng = random.Random(f"{tag}{rate}")
    inputs = rng.choices([m for m, _ in MIX], [w for _, w in MIX], k=total)
    numbers = [str(first_msisdn + rng.randrange(members)) for _ in range(total)]
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    trace: list[tuple[float, float]] = []  # (scheduled offset, latency) with BENCH_TRACE set
    errors = 0
    connector = aiohttp.TCPConnector(limit=512)
    # Generous: a slow answer is reported as latency; an error is a failure, not a queue.
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(
        base, headers=headers, connector=connector, timeout=timeout
    ) as session:

        async def one(i: int, due: float) -> None:
            nonlocal errors
            body = {"msisdn": numbers[i], "session_id": f"{tag}{i}", "input": inputs[i]}
            try:
                async with session.post("/gateway/ussd", json=body) as resp:
                    data = await resp.json()
                    if resp.status != 200 or "text" not in data:
                        errors += 1
                    elif sent is not None:
                        sent.append((numbers[i], inputs[i]))
            except (aiohttp.ClientError, ValueError, TimeoutError):
                errors += 1
            latencies.append(time.perf_counter() - due)
            if tracing:
                trace.append((due - started, latencies[-1]))

        tracing = bool(os.environ.get("BENCH_TRACE"))
        started = time.perf_counter()
        tasks = []
        for i in range(total):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # the arrival schedule of an open-loop load
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    latencies.sort()
    if trace:  # when the slow requests were scheduled: a periodic stall shows as a pattern
        per_second: dict[int, int] = {}
        for offset, latency in trace:
            if latency > 0.1:
                per_second[int(offset)] = per_second.get(int(offset), 0) + 1
        print(f"requests over 100 ms, by second of the run: {dict(sorted(per_second.items()))}")
    return latencies, errors, elapsed


async def ussd_capacity(
    base: str, token: str, first_msisdn: int, members: int, *, workers: int, requests: int
) -> tuple[float, int]:
    """What the service sustains now: ``requests`` USSD requests (the gateway's mix, menu
    and balance only, so nothing changes) from ``workers`` closed-loop clients, each sending
    its next request when the last is answered. Returns (answered per second, errors)."""
    rng = random.Random(f"capacity{requests}")
    inputs = [rng.choice(["*555#", "*111*3#"]) for _ in range(requests)]
    numbers = [str(first_msisdn + rng.randrange(members)) for _ in range(requests)]
    headers = {"Authorization": f"Bearer {token}"}
    queue = list(range(requests))
    errors = 0
    async with aiohttp.ClientSession(
        base, headers=headers, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:

        async def worker() -> None:
            nonlocal errors
            while queue:
                i = queue.pop()
                body = {"msisdn": numbers[i], "session_id": f"K{i}", "input": inputs[i]}
                try:
                    async with session.post("/gateway/ussd", json=body) as resp:
                        await resp.read()
                        errors += resp.status != 200
                except (aiohttp.ClientError, TimeoutError):
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(workers)))
        elapsed = time.perf_counter() - started
    return requests / elapsed, errors


def percentiles_ms(latencies: list[float]) -> tuple[float, float, float]:
    """(p50, p99, max) in milliseconds of sorted latencies in seconds."""
    return (
        latencies[len(latencies) // 2] * 1000,
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        latencies[-1] * 1000,
    )
