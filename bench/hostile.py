"""Hostile tenants against a real ``smartd serve`` (issue 13, "one tenant can't starve
another"): ``python -m bench hostile [--only slow,line,preview] [--serve-path DIR]``.

The service runs in a child process (engine and scheduler off) on an embedded PostgreSQL, so
its RSS is its own (``/proc/PID/status``). Three measurements:

* **slow** — 10 audience uploads that declare ``Content-Length: 1000000`` and send 12 bytes,
  then 20 (``--ussd``) USSD requests one after another: each USSD latency (client timeout 15 s), and
  what each slow upload got back and when (``SMARTD_UPLOAD_IDLE_TIMEOUT`` 5 s here);
* **line** — one audience upload of a single 16 MB and one of 64 MB line without a line
  break: time to the answer, the answer, the service's peak RSS, and the longest
  ``/healthz`` round trip while it ran (pinged every 50 ms);
* **preview** — 750 ``POST /api/v1/campaigns/preview`` with distinct ~1 MiB texts: RSS
  before, after, and the time taken.

``--serve-path DIR`` runs the service from another tree (put first on the child's
PYTHONPATH), e.g. one exported with ``git archive REV | tar -x -C DIR``, to compare.

Measured on the project's 2-core VM (shared with other work), issue 13; "before" is 59a09aa
run with ``--serve-path``:

* 10 stalled uploads, then USSD: before, 0 of 3 USSD answered (each timed out at 15 s) and
  no upload was answered in 90 s; after, 20 of 20 answered 200 (max 169 ms), 8 uploads got
  503 ``uploads_busy`` in 0.3 s and the 2 admitted 408 ``body_timeout`` after 5.1-5.3 s.
* one 16 MB / 64 MB line: 400 ``line_too_long`` in 0.01-0.02 s before (the reader was made
  linear in issue 10) and 0.07-0.08 s after (the spool reads 256 KiB first); peak RSS
  58-59 MiB both; ``/healthz`` max 7-22 ms.
* 750 previews of distinct 1 MiB texts: RSS 58 → 1,563 MiB before (it stayed), 59 → 61 MiB
  after (peak 66); about 0.25-0.34 s of CPU per preview either way (counting parts of a
  1 MiB text), 181-255 s in all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg

from bench._net import free_port
from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository

BASE = "/api/v1/campaigns"
USSD = {"msisdn": "77011234567", "session_id": "s1", "input": "*111*3#"}


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextlib.contextmanager
def serving(
    url: str, port: int, data_dir: Path, serve_path: str | None
) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTD_")}
    env |= {
        "SMARTD_DATABASE_URL": url,
        "SMARTD_HTTP_HOST": "127.0.0.1",
        "SMARTD_HTTP_PORT": str(port),
        "SMARTD_ENGINE_ENABLED": "false",
        "SMARTD_SCHEDULER_ENABLED": "false",
        "SMARTD_LOG_LEVEL": "error",
        "SMARTD_DATA_DIR": str(data_dir),
        "SMARTD_UPLOAD_IDLE_TIMEOUT": "5",
    }
    if serve_path:
        env["PYTHONPATH"] = serve_path
    args = [sys.executable, "-m", "dispatcher.cli", "serve"]
    with (data_dir / "serve.log").open("ab") as log:
        child = subprocess.Popen(args, env=env, stdout=log, stderr=log, cwd=serve_path or None)
    try:
        yield child
    finally:
        child.terminate()
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


async def wait_ready(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(base + "/readyz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError("serve did not become ready")


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str, tokens: dict[Role, str]):
        self.session, self.base, self.tokens = session, base, tokens

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def campaign(self) -> int:
        payload = {"name": "hostile", "kind": "info", "variables": [], "texts": {"kk": "Hi"}}
        async with self.session.post(
            self.base + BASE, json=payload, headers=self.auth(Role.ADMIN)
        ) as response:
            return int((await response.json())["id"])

    async def ussd(self) -> tuple[float, str]:
        started = time.perf_counter()
        try:
            async with self.session.post(
                self.base + "/gateway/ussd",
                json=USSD,
                headers=self.auth(Role.GATEWAY),
                timeout=aiohttp.ClientTimeout(total=15),
            ) as response:
                await response.read()
                outcome = str(response.status)
        except TimeoutError:
            outcome = "timeout"
        return time.perf_counter() - started, outcome


async def slow_upload(port: int, token: str, cid: int) -> tuple[float, str]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            (
                f"POST {BASE}/{cid}/audience HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: text/csv\r\n"
                "Content-Length: 1000000\r\n\r\n"
            ).encode()
            + b"77011234567\n"
        )
        await writer.drain()
        try:
            async with asyncio.timeout(90):
                status = (await reader.readline()).decode().split(" ")[1:2]
        except TimeoutError:
            status = ["none in 90 s"]
        return time.perf_counter() - started, (status or ["closed"])[0]
    finally:
        writer.close()


async def bench_slow(client: Client, port: int, requests: int) -> None:
    cid = await client.campaign()
    token = client.tokens[Role.MARKETER]
    uploads = [asyncio.create_task(slow_upload(port, token, cid)) for _ in range(10)]
    await asyncio.sleep(0.5)  # let them reach the service
    latencies = [await client.ussd() for _ in range(requests)]
    answers = await asyncio.gather(*uploads)
    ok = [s for s, o in latencies if o == "200"]
    print(
        f"slow: USSD under 10 stalled uploads: {len(ok)}/{requests} answered 200, "
        f"max {max(s for s, _ in latencies) * 1000:,.0f} ms, "
        f"outcomes {sorted({o for _, o in latencies})}"
    )
    shown = sorted((o, round(s, 1)) for s, o in answers)
    print(f"slow: the uploads got (status, seconds): {shown}")


async def _healthz_max(client: Client, stop: asyncio.Event) -> float:
    worst = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        async with client.session.get(client.base + "/healthz") as response:
            await response.read()
        worst = max(worst, time.perf_counter() - started)
        await asyncio.sleep(0.05)
    return worst


async def bench_line(client: Client, pid: int) -> None:
    for megabytes in (16, 64):
        cid = await client.campaign()
        size = megabytes * 1_000_000

        async def body(size: int = size) -> Iterator[bytes]:  # type: ignore[misc]
            block = b"7" * (1 << 16)
            for _ in range(size // len(block)):
                yield block

        stop = asyncio.Event()
        health = asyncio.create_task(_healthz_max(client, stop))
        started = time.perf_counter()
        headers = {**client.auth(Role.MARKETER), "Content-Type": "text/csv"}
        try:
            async with client.session.post(
                client.base + f"{BASE}/{cid}/audience",
                data=body(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=300),
            ) as response:
                answer = f"{response.status} {(await response.text())[:90]}"
        except aiohttp.ClientError as exc:  # the service answered and closed mid-body
            answer = f"{type(exc).__name__}"
        seconds = time.perf_counter() - started
        stop.set()
        worst = await health
        print(
            f"line: one {megabytes} MB line: {seconds:.2f} s, answer {answer!r}, "
            f"service peak RSS {rss_mib(pid, 'VmHWM'):.0f} MiB, /healthz max {worst * 1000:.0f} ms"
        )


async def bench_preview(client: Client, pid: int, count: int) -> None:
    before = rss_mib(pid)
    started = time.perf_counter()
    for n in range(count):
        text = f"{n:08d} {{name}} " + "x" * ((1 << 20) - 200)
        async with client.session.post(
            client.base + BASE + "/preview",
            json={"texts": {"ru": text}, "sample": {"name": "A"}},
            headers=client.auth(Role.MARKETER),
        ) as response:
            assert response.status == 200, await response.text()
    seconds = time.perf_counter() - started
    print(
        f"preview: {count} distinct 1 MiB texts in {seconds:.1f} s; service RSS "
        f"{before:.0f} → {rss_mib(pid):.0f} MiB (peak {rss_mib(pid, 'VmHWM'):.0f} MiB)"
    )


async def _tokens(url: str) -> dict[Role, str]:
    conn = await asyncpg.connect(url)
    try:
        repo = TokenRepository(conn)
        return {role: (await repo.create(f"bench-{role}", role))[0] for role in Role}
    finally:
        await conn.close()


async def run(args: argparse.Namespace, workdir: Path) -> int:
    from dispatcher.embedded import EmbeddedPostgres
    from dispatcher.migrate import migrate

    server = EmbeddedPostgres(workdir / "pg")
    url = await asyncio.to_thread(server.start)
    try:
        conn = await asyncpg.connect(url)
        try:
            await migrate(conn)
        finally:
            await conn.close()
        tokens = await _tokens(url)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        only = set(args.only.split(","))
        with serving(url, port, workdir, args.serve_path) as child:
            await wait_ready(base)
            async with aiohttp.ClientSession() as session:
                client = Client(session, base, tokens)
                if "slow" in only:
                    await bench_slow(client, port, args.ussd)
                if "line" in only:
                    await bench_line(client, child.pid)
                if "preview" in only:
                    await bench_preview(client, child.pid, args.previews)
    finally:
        await asyncio.to_thread(server.stop)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench hostile")
    parser.add_argument("--only", default="slow,line,preview", help="slow, line, preview")
    parser.add_argument("--previews", type=int, default=750)
    parser.add_argument("--ussd", type=int, default=20, help="USSD requests under the stall")
    parser.add_argument("--serve-path", default=None, help="run serve from this source tree")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        return asyncio.run(run(args, Path(tmp)))
