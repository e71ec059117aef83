"""``python -m bench grant``: one SMSC account's grant shared by three ``smartd serve``
replicas, through a ``kill -9`` of one and a new one joining (issue 16, item 5).

An SMSC simulator in this process grants the account ``--grant`` submits/s across all its
binds (a token bucket of ``--sim-burst``: beyond it, ESME_RTHROTTLED) and counts the submits it
accepted and refused in each second of its own clock. Three replicas start against one
campaign; after a warm-up of two share intervals (their first agreement, not counted) and
``--phase`` seconds one is killed with SIGKILL, after another phase a new one
joins, and after a third all stop.

Printed: the share of the grant used over the whole run and per phase (goal ≥ 95 %), the
busiest second (goal: at most the grant plus the burst) and the throttled submits (goal 0: a
throttle is a submit past the grant). The baseline, measured in the same run, is the old way:
``SMARTD_SMPP_TPS`` set by hand to the grant divided by the replicas (the dead replica's part
is lost until someone edits the setting). ``--runs N`` repeats both and prints the median.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from bench._net import SMPP_PASSWORD, free_port, serve_env
from bench._ussd import wait_ready
from dispatcher.db import create_pool
from smpp.simulator import SimulatorOptions, SmscSimulator

FIRST_RECIPIENT = 77090000000
REPLICAS = 3


@dataclass(frozen=True)
class Figures:
    mode: str
    seconds: int
    used: float  # accepted / (grant × seconds), whole seconds of the run
    phases: tuple[float, float, float]  # used in: all three / after the kill / after the join
    busiest: int  # most submits accepted in one second of the SMSC's clock
    throttled: int


class Replica:
    """One ``smartd serve`` child."""

    def __init__(self, url: str, smpp_port: int, data_dir: Path, env: dict[str, str]) -> None:
        port = free_port()
        self.http = f"http://127.0.0.1:{port}"
        child_env = serve_env(url, port, smpp_port, data_dir, **env)
        with (data_dir / f"serve-{port}.log").open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dispatcher.cli", "serve"],
                env=child_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def kill(self) -> None:
        """SIGKILL, reaped off the loop: the simulator runs on this loop, and a loop blocked
        in wait() read the other replicas' submits of that moment in one clump (throttled)."""
        self.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(self.proc.wait, 10)

    async def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def _seed(url: str, recipients: int) -> None:
    pool = await create_pool(url, min_size=1, max_size=2)
    try:
        targets = [str(FIRST_RECIPIENT + i) for i in range(recipients)]
        await pool.execute("INSERT INTO subscribers (msisdn) SELECT unnest($1::text[])", targets)
        await pool.execute(
            "INSERT INTO memberships (msisdn, joined_at, join_channel) "
            "SELECT unnest($1::text[]), timestamptz '2026-11-01 00:00+00', 'ussd'",
            targets,
        )
        campaign = await pool.fetchval(
            "INSERT INTO campaigns (name, kind, scope, texts, state) "
            "VALUES ('grant', 'info', 'smart', $1, 'running') RETURNING id",
            {"kk": "grant: 20% жеңілдік", "ru": "grant: скидка 20%"},
        )
        await pool.execute(
            "INSERT INTO deliveries (campaign_id, msisdn) SELECT $1, unnest($2::text[])",
            campaign,
            targets,
        )
    finally:
        await pool.close()


async def _watch(url: str) -> None:
    """Print the account's members each second (--verbose)."""
    conn = await asyncpg.connect(url)
    try:
        while True:
            rows = await conn.fetch("SELECT node, joined, share FROM smsc_members ORDER BY 2")
            print("members:", [(r["node"][-8:], r["joined"], round(r["share"], 1)) for r in rows])
            await asyncio.sleep(1.0)
    finally:
        await conn.close()


def _used(sim: SmscSimulator, grant: float, first: int, last: int) -> float:
    """Accepted over whole seconds [first, last) of the SMSC's clock, as a share of the grant."""
    if last <= first:
        return 0.0
    accepted = sum(sim.accepted_by_second.get(s, 0) for s in range(first, last))
    return accepted / (grant * (last - first))


async def measure(url: str, data_dir: Path, args: argparse.Namespace, shared: bool) -> Figures:
    """Three replicas, a kill -9, a join: what the SMSC saw."""
    grant, phase = args.grant, args.phase
    await _seed(url, int(grant * phase * 3 * 1.5) + 2000)
    options = SimulatorOptions(
        credentials={"smartd": SMPP_PASSWORD},
        tps_limit=grant,
        tps_burst=args.burst,
        receipts=False,
        record=False,
    )
    sim = SmscSimulator(options)
    port = await sim.start()
    if shared:
        env = {
            "SMARTD_SMPP_ACCOUNT_TPS": str(grant),
            "SMARTD_SMPP_ACCOUNT_BINDS": str(REPLICAS),
            "SMARTD_SMPP_SHARE_INTERVAL": str(args.interval),
            "SMARTD_SMPP_ACCOUNT_BURST": str(args.burst),
        }
    else:  # the old way: the grant divided by the replicas, by hand
        env = {"SMARTD_SMPP_TPS": str(grant / REPLICAS)}
    loop = asyncio.get_running_loop()
    watch = asyncio.create_task(_watch(url)) if args.verbose else None
    # started off the loop too (fork and exec): the simulator must not stall while they start
    replicas = [await asyncio.to_thread(Replica, url, port, data_dir, env) for _ in range(REPLICAS)]
    try:
        for r in replicas:
            await wait_ready(r.http, "/readyz")
        # warm-up, not counted: the replicas agree their first shares (two beats)
        await asyncio.sleep(2 * args.interval + 1)
        start = int(loop.time()) + 1  # the first whole second
        await asyncio.sleep(start + phase - loop.time())
        await replicas[1].kill()
        killed = int(loop.time()) + 1
        await asyncio.sleep(killed + phase - loop.time())
        replicas.append(await asyncio.to_thread(Replica, url, port, data_dir, env))
        joined = int(loop.time()) + 1
        await asyncio.sleep(joined + phase - loop.time())
        end = int(loop.time())
    finally:
        await asyncio.gather(*(r.stop() for r in replicas if r.proc.poll() is None))
        await sim.stop()
        if watch is not None:
            watch.cancel()
    seconds = range(start, end)
    if args.verbose:
        print("accepted per second:", [sim.accepted_by_second.get(s, 0) for s in seconds])
        print("throttled per second:", [sim.throttled_by_second.get(s, 0) for s in seconds])
    return Figures(
        mode="shared" if shared else "by hand",
        seconds=end - start,
        used=_used(sim, grant, start, end),
        phases=(
            _used(sim, grant, start, killed),
            _used(sim, grant, killed, joined),
            _used(sim, grant, joined, end),
        ),
        busiest=max(sim.accepted_by_second.get(s, 0) for s in seconds),
        throttled=sum(sim.throttled_by_second.get(s, 0) for s in seconds),
    )


def _print(n: int, f: Figures) -> None:
    a, b, c = (f"{p:.1%}" for p in f.phases)
    print(
        f"run {n} {f.mode:8}: {f.used:.1%} of the grant over {f.seconds} s "
        f"(3 replicas {a}, after the kill -9 {b}, after the join {c}); busiest second "
        f"{f.busiest}; throttled {f.throttled}"
    )


async def _main(args: argparse.Namespace) -> int:
    from dispatcher.db import recreate_database
    from dispatcher.embedded import EmbeddedPostgres

    runs: dict[bool, list[Figures]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="bench-grant-") as tmp:
        os.chmod(tmp, 0o711)  # as root the embedded server runs as its own user
        server = EmbeddedPostgres(Path(tmp))
        admin = await asyncio.to_thread(server.start)
        try:
            for n in range(1, args.runs + 1):
                for shared in (False, True):
                    url = await recreate_database(admin, "bench_grant")
                    run_dir = Path(tmp) / f"run{n}-{'shared' if shared else 'hand'}"
                    run_dir.mkdir()
                    f = await measure(url, run_dir, args, shared)
                    runs[shared].append(f)
                    _print(n, f)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(server.stop)
    print(f"median of {args.runs} run(s), grant {args.grant:g}/s, SMSC burst {args.burst}:")
    for shared, label in ((False, "baseline (SMARTD_SMPP_TPS by hand)"), (True, "shared")):
        fs = runs[shared]
        print(
            f"  {label:36} used {statistics.median(f.used for f in fs):.1%}, after the kill "
            f"{statistics.median(f.phases[1] for f in fs):.1%}; busiest second "
            f"{statistics.median(f.busiest for f in fs):g}; throttled "
            f"{statistics.median(f.throttled for f in fs):g}"
        )
    print(
        f"goals: used >= 95 %, busiest second <= {args.grant + args.burst:g} (grant + "
        "burst), 0 throttled, through a kill -9 and a join"
    )
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench grant")
    parser.add_argument("--grant", type=float, default=300.0, help="the account's submits/s")
    parser.add_argument(
        "--burst",
        type=int,
        default=None,
        help="the account's burst: the SMSC's bucket and SMARTD_SMPP_ACCOUNT_BURST "
        "(default a twentieth of the grant, the setting's default)",
    )
    parser.add_argument("--phase", type=float, default=10.0, help="seconds of each phase")
    parser.add_argument("--interval", type=float, default=1.0, help="SMARTD_SMPP_SHARE_INTERVAL")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="print each second's count")
    args = parser.parse_args(argv)
    if args.burst is None:
        args.burst = max(1, int(args.grant / 20))
    return asyncio.run(_main(args))
