"""submit_sm/s through our asyncio session vs smpplib's blocking Client, same SMSC, same run.

``python -m bench smpp [--messages N] [--baseline-messages M] [--window W] [--profile]``

The SMSC is our simulator (no throttling, no receipts, no recording) in a separate process,
so that it and the ESME under test each have one of the machine's two cores; both clients
send the same one-part GSM message. The session runs with its production code path: window
(default 64), token bucket (unlimited), sequence/future pairing, outcome classification.

Measured on the project's 2-core machine (medians of 3 interleaved runs): ours ~80,000
submit_sm/s, smpplib's Client ~14,600/s, ratio ~5.6x. The 10x goal is not reached: ours
costs ~12 µs per submit_sm, about a third of it asyncio's own future/task wake-up per
message; smpplib costs ~68 µs of which ~36 µs is building the PDU. Run-to-run variance on
this VM is large (scheduler placement of the two processes): single runs of 30k-85k/s
ours and 6k-15k/s smpplib have been seen; compare figures from the same run only.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import smpplib.client
import smpplib.consts

from bench._net import free_port
from smpp.config import Address, SessionConfig
from smpp.outcome import Accepted
from smpp.session import Session
from smpp.submit import build_submit
from smpp.text import encode_message

SOURCE = Address.alphanumeric("SMART")
DEST = Address.international("77011234567")
TEXT = "Bonus 500 units credited. Reply STOP to leave."


def start_simulator(port: int) -> subprocess.Popen[bytes]:
    """The simulator in its own process; returns once it accepts connections."""
    root = Path(__file__).resolve().parent.parent
    args = ["--port", str(port), "--fast"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "smpp.simulator", *args], cwd=root, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("simulator did not start")


async def run_ours(port: int, messages: int, window: int, workers: int) -> tuple[float, int]:
    """(seconds, accepted) for ``messages`` submits through one session."""
    config = SessionConfig("127.0.0.1", port, "bench", "bench", window=window)
    body_sm = build_submit(encode_message(TEXT)[0], SOURCE, DEST, registered_delivery=0)
    from smpp.pdu import encode_short_message_body

    body = encode_short_message_body(body_sm)
    accepted = 0

    async def worker(count: int) -> None:
        nonlocal accepted
        for _ in range(count):
            if isinstance(await session.submit_body(body), Accepted):
                accepted += 1

    async with Session(config) as session:
        await asyncio.wait_for(session.wait_bound(), 10)
        await asyncio.gather(*(worker(200 // workers + 1) for _ in range(workers)))  # warm-up
        accepted = 0
        per_worker = messages // workers
        start = time.perf_counter()
        await asyncio.gather(*(worker(per_worker) for _ in range(workers)))
        elapsed = time.perf_counter() - start
    return elapsed, accepted


def run_smpplib(port: int, messages: int) -> tuple[float, int]:
    """(seconds, accepted) for smpplib's Client: send_message, then read its response."""
    client = smpplib.client.Client("127.0.0.1", port, timeout=10)
    sent: list[bytes] = []
    client.set_message_sent_handler(lambda pdu: sent.append(pdu.message_id))
    client.connect()
    client.bind_transceiver(system_id="bench", password="bench")
    part = encode_message(TEXT)[0]
    start = time.perf_counter()
    for _ in range(messages):
        client.send_message(
            source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
            source_addr=SOURCE.addr,
            dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
            dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
            destination_addr=DEST.addr,
            data_coding=part.data_coding,
            short_message=part.short_message,
        )
        client.read_once()
    elapsed = time.perf_counter() - start
    client.unbind()
    client.disconnect()
    return elapsed, len(sent)


def _profile(port: int, messages: int, window: int, workers: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(run_ours(port, messages, window, workers))
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(18)
    return out.getvalue()


def _fmt(rates: list[float]) -> str:
    return ", ".join(f"{r:,.0f}" for r in rates)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench smpp")
    parser.add_argument("--messages", type=int, default=60000)
    parser.add_argument("--baseline-messages", type=int, default=8000)
    parser.add_argument("--rounds", type=int, default=3, help="median of this many runs")
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--workers", type=int, default=256, help="concurrent submitters")
    parser.add_argument("--profile", action="store_true", help="cProfile our session run")
    args = parser.parse_args(argv)
    port = free_port()
    proc = start_simulator(port)
    try:
        ours_runs, base_runs = [], []
        for _ in range(args.rounds):  # interleaved, so both see the same machine state
            seconds, ok = asyncio.run(run_ours(port, args.messages, args.window, args.workers))
            ours_runs.append(ok / seconds)
            base_seconds, base_ok = run_smpplib(port, args.baseline_messages)
            base_runs.append(base_ok / base_seconds)
        ours, base = statistics.median(ours_runs), statistics.median(base_runs)
        print(f"ours    : {ours:,.0f} submit_sm/s (window {args.window}; runs {_fmt(ours_runs)})")
        print(f"smpplib : {base:,.0f} submit_sm/s (blocking Client; runs {_fmt(base_runs)})")
        print(f"ratio   : {ours / base:.1f}x (medians of {args.rounds} interleaved runs)")
        if args.profile:
            print(_profile(port, args.messages // 3, args.window, args.workers))
    finally:
        proc.terminate()
        proc.wait(5)
    return 0 if ours >= 10000 and ours >= 10 * base else 1
