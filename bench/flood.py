"""Memory of the ESME under an inbound flood: an SMSC that writes deliver_sm without waiting
for the responses (issue 11).

``python -m bench flood [--messages N] [--groups G --parts P]``

Two runs, each with the ESME (our Session, the handler simulating a database commit of
``--handler-ms``, default 10) in a child process, so its RSS is its own:

* **mo** — N one-part MO deliver_sm (default 100,000) written as fast as TCP takes them;
* **parts** — G concatenated messages of P parts (default 80 × 49) that never complete,
  each part with a 60 KiB message_payload.

Prints the child's RSS once bound and its peak RSS. The flood is written with
``writer.drain()``: TCP backpressure is the only thing that slows it, which is the point.
To compare with another version of ``smpp``, put it first on PYTHONPATH and run from a
directory without one (the current directory comes first on ``sys.path``).

Measured on the project's 2-core VM (issue 11), handler 10 ms, peak RSS of the ESME:

==========================  =================  ==================
flood                       before the bounds  with them
==========================  =================  ==================
100,000 one-part MO         252 MiB            32 MiB (31 bound)
80 × 48 parts of 60 KiB     287 MiB            39 MiB (31 bound)
==========================  =================  ==================
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from bench._net import free_port
from smpp import legacy
from smpp.config import SessionConfig
from smpp.constants import RESPONSE_BIT, CommandId, Tag
from smpp.pdu import HEADER, HEADER_SIZE, ShortMessage, encode_short_message
from smpp.session import Session


def _mo(sequence: int) -> bytes:
    sm = ShortMessage(source_addr="77011234567", destination_addr="5555", short_message=b"1")
    return encode_short_message(CommandId.DELIVER_SM, sequence, sm)


def _part(sequence: int, reference: int, seqnum: int, total: int) -> bytes:
    payload = bytes((5, 0, 3, reference, total, seqnum)) + b"x" * (60 * 1024)
    sm = ShortMessage(
        source_addr="77011234567",
        destination_addr="5555",
        esm_class=0x40,
        tlvs={Tag.MESSAGE_PAYLOAD: payload},
    )
    return encode_short_message(CommandId.DELIVER_SM, sequence, sm)


def frames(kind: str, args: argparse.Namespace) -> list[bytes]:
    if kind == "mo":
        return [_mo(i + 1) for i in range(args.messages)]
    return [  # part 1..P-1 of every group: none ever completes
        _part(g * args.parts + n, g % 256, n, args.parts)
        for g in range(args.groups)
        for n in range(1, args.parts)
    ]


async def flood(port: int, pdus: list[bytes], started: asyncio.Event) -> None:
    """Accept one bind, write every PDU, read the responses; until cancelled."""
    answered = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        length, command_id, _, sequence = HEADER.unpack(await reader.readexactly(HEADER_SIZE))
        await reader.readexactly(length - HEADER_SIZE)
        writer.write(legacy.encode_bind_resp(command_id | RESPONSE_BIT, sequence, 0, "FLOOD"))
        started.set()

        async def responses() -> None:
            nonlocal answered
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while True:
                    length, *_ = HEADER.unpack(await reader.readexactly(HEADER_SIZE))
                    await reader.readexactly(length - HEADER_SIZE)
                    answered += 1

        counting = asyncio.create_task(responses())
        for start in range(0, len(pdus), 500):
            writer.write(b"".join(pdus[start : start + 500]))
            await writer.drain()
        await counting

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        await asyncio.Event().wait()


async def child(port: int, expected: int, handler_ms: int) -> None:
    """The ESME: bind, handle until ``expected`` deliver_sm were answered, print RSS."""
    handled = 0

    async def handler(event: object) -> None:
        nonlocal handled
        await asyncio.sleep(handler_ms / 1000)
        handled += 1

    config = SessionConfig(
        "127.0.0.1", port, "flood", "pw", enquire_link_interval=600.0, response_timeout=1.0
    )
    session = Session(config, handler)
    async with session:
        await session.wait_bound()
        bound_rss = _status_mib()
        while session.stats.deliver_sm_received < expected:  # noqa: ASYNC110 - a bench polls
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        peak = _status_mib("VmHWM")
    print(json.dumps({"bound_rss": bound_rss, "peak_rss": peak, "handled": handled}))


def _status_mib(field: str = "VmRSS") -> float:
    """A memory figure of this process from /proc (VmHWM: peak RSS of this program image;
    ru_maxrss would carry the parent's RSS over the fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run(kind: str, args: argparse.Namespace) -> None:
    pdus = frames(kind, args)
    port = free_port()
    started = asyncio.Event()
    server = asyncio.create_task(flood(port, pdus, started))
    await asyncio.sleep(0.2)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.flood",
        "--child",
        str(port),
        str(len(pdus)),
        str(args.handler_ms),
        stdout=subprocess.PIPE,
        env=os.environ.copy(),
    )
    out, _ = await proc.communicate()
    server.cancel()
    figures = json.loads(out.decode().strip().splitlines()[-1])
    print(
        f"{kind}: {len(pdus):,} deliver_sm flooded: ESME RSS {figures['bound_rss']:.0f} MiB "
        f"bound, peak {figures['peak_rss']:.0f} MiB"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench flood")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=80)
    parser.add_argument("--parts", type=int, default=49)
    parser.add_argument("--only", choices=["mo", "parts"], default=None)
    parser.add_argument("--handler-ms", type=int, default=10, help="simulated commit per event")
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(child(*args.child))
        return 0
    for kind in ("mo", "parts"):
        if args.only in (None, kind):
            asyncio.run(run(kind, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
