"""Shared pieces of the reliability tests: `smartd serve` as a child process, an SMSC
simulator that remembers what the service acknowledged, and the invariant check every
fault test ends with (DESIGN.md invariants 1, 2 and 4)."""

from __future__ import annotations

import asyncio
import collections
import os
import re
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg

from smpp.constants import CommandId
from smpp.inbound import is_receipt, to_receipt
from smpp.pdu import decode_short_message
from smpp.receipts import IdFormat
from smpp.sim_connection import SimConnection
from smpp.simulator import SimulatorOptions, SmscSimulator
from tests.net import free_port

CLOCK_START = "2026-11-23T12:00:00+00:00"  # 17:00 Astana: inside the send window
SMPP_PASSWORD = (
    "Sm9#qX7z"  # distinctive (SMPP allows 8 characters), so the log scan can look for it
)
LONG_DIGITS = re.compile(r"(?<!\w)\d{11,}(?!\w)")  # a whole token: not inside a hex id
FINAL = {"submitted", "delivered", "undelivered", "expired", "failed", "unknown", "suppressed"}
OPEN = ("queued", "claimed", "in_flight")


def assert_no_personal_data(text: str, numbers: list[str], secrets: list[str]) -> None:
    """No known number in any written form, no 11+ digit run, no secret in ``text``."""
    for number in numbers:
        for form in (number, "8" + number[1:], number[1:]):
            assert form not in text, f"unmasked MSISDN {number[-4:]} in the logs"
    found = LONG_DIGITS.findall(text)
    assert not found, f"digit runs in the logs: {found[:3]}"
    for secret in secrets:
        assert secret not in text, "a secret in the logs"


def scan_serve_logs(data_dir: Path, numbers: list[str]) -> int:
    """Apply :func:`assert_no_personal_data` to every serve log under ``data_dir``; returns
    the number of lines scanned."""
    lines = 0
    for log in data_dir.glob("serve-*.log"):
        text = log.read_text(errors="replace")
        lines += text.count("\n")
        assert_no_personal_data(text, numbers, [SMPP_PASSWORD])
    return lines


@dataclass
class Serve:
    """One `smartd serve` child: its process, HTTP base URL and log file."""

    proc: subprocess.Popen[bytes]
    http: str
    log: Path

    def kill(self) -> None:
        """kill -9: no cleanup, no unbind, no last commit."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    async def stop(self) -> int:
        """SIGTERM and wait for a clean exit; returns the exit status. Waits in a thread: the
        simulator lives in this event loop and must answer the service's unbind.

        A child that does not catch SIGTERM yet (the interpreter itself still starting, before
        smartd's first line: `dispatcher/cli.py` catches it from there on) is given until it
        does: no program can exit cleanly on a signal it has not been able to catch."""
        for _ in range(600):
            if self.proc.poll() is not None or catches_sigterm(self.proc.pid):
                break
            await asyncio.sleep(0.05)  # the child's interpreter starting: no work to wait for
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise

    def alive(self) -> bool:
        return self.proc.poll() is None


def catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGTERM (``SigCgt`` in /proc: Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) >> (signal.SIGTERM - 1) & 1)


def serve(
    database_url: str, smpp_port: int, data_dir: Path, *, window: int = 32, **env: str
) -> Serve:
    """Start `smartd serve` on 127.0.0.1 with its clock pinned inside the send window.
    ``env`` adds or overrides SMARTD_* settings (keys without the prefix, any case)."""
    http_port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / f"serve-{http_port}.log"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTD_")}
    child_env.update(
        {
            "SMARTD_DATABASE_URL": database_url,
            "SMARTD_HTTP_HOST": "127.0.0.1",
            "SMARTD_HTTP_PORT": str(http_port),
            "SMARTD_SMPP_HOST": "127.0.0.1",
            "SMARTD_SMPP_PORT": str(smpp_port),
            "SMARTD_SMPP_SYSTEM_ID": "smartd",
            "SMARTD_SMPP_PASSWORD": SMPP_PASSWORD,
            "SMARTD_SMPP_WINDOW": str(window),
            "SMARTD_SMPP_TPS": "1500",
            "SMARTD_CLOCK_START": CLOCK_START,
            "SMARTD_SCHEDULER_ENABLED": "false",
            "SMARTD_DATA_DIR": str(data_dir),
        }
    )
    child_env.update({f"SMARTD_{k.upper()}": v for k, v in env.items()})
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dispatcher.cli", "serve"],
            env=child_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Serve(proc, f"http://127.0.0.1:{http_port}", log)


async def http_status(url: str) -> int | None:
    """The status of a GET, or None when nothing answers."""
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            return resp.status
    except aiohttp.ClientError:
        return None


async def poll(
    check: Callable[[], Awaitable[bool]],
    *,
    within: float,
    what: str,
    procs: tuple[Serve, ...] = (),
) -> None:
    """Poll another process's progress (through the database or HTTP) until ``check()``;
    fails if it takes longer than ``within`` seconds or a watched process exits."""
    try:
        async with asyncio.timeout(within):
            while not await check():
                for p in procs:
                    assert p.alive(), f"serve exited while waiting for {what}: see {p.log}"
                await asyncio.sleep(0.05)  # another process's progress: brief polling
    except TimeoutError:
        for p in procs:  # serve logs every asyncio task's stack on SIGUSR1: where it hangs
            if p.alive():
                p.proc.send_signal(signal.SIGUSR1)
        await asyncio.sleep(1.0)  # give them a moment to write it
        logs = ", ".join(str(p.log) for p in procs)
        raise AssertionError(f"no {what} within {within} s (logs: {logs})") from None


async def open_deliveries(pool: asyncpg.Pool) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM deliveries WHERE state = ANY($1::text[]::delivery_state[])",
            list(OPEN),
        )
    )


def submits_reached(sim: SmscSimulator, count: int) -> Callable[[], Awaitable[bool]]:
    """A check for :func:`poll`: the SMSC has received ``count`` submit_sm."""

    async def check() -> bool:
        return len(sim.of_kind(CommandId.SUBMIT_SM)) >= count

    return check


def receipts_quiet(sim: RecordingSimulator) -> Callable[[], Awaitable[bool]]:
    """A check for :func:`poll`: no deliver_sm acknowledged for a moment (receipts of the
    last submits have arrived; a receipt the simulator aimed at a dropped connection is
    never coming)."""

    async def check() -> bool:
        acked = len(sim.acknowledged)
        await asyncio.sleep(0.3)  # a quiet spell of the other process
        return len(sim.acknowledged) == acked

    return check


def receipts_applied(pool: asyncpg.Pool) -> Callable[[], Awaitable[bool]]:
    """A check for :func:`poll`: every stored receipt whose submit is known was applied
    (one that beat its submit's record waits for the applier's recheck)."""

    async def check() -> bool:
        left = await pool.fetchval(
            "SELECT count(*) FROM receipts r JOIN submits s USING (smsc, message_id) "
            "WHERE r.applied_at IS NULL"
        )
        return bool(left == 0)

    return check


async def wait_campaigns_done(pool: asyncpg.Pool, *procs: Serve, within: float = 90) -> None:
    """Poll until no delivery is queued, claimed or in flight."""

    async def done() -> bool:
        return await open_deliveries(pool) == 0

    await poll(done, within=within, what="the campaigns to finish", procs=procs)


class _RecordingConnection(SimConnection):
    def answer_submit(self, sequence: int, status: int, message_id: str) -> None:
        if status != 0:
            server = self.server
            assert isinstance(server, RecordingSimulator)
            server.refused.add((self.number, sequence))
        super().answer_submit(sequence, status, message_id)

    def request(self, command_id: int, body: bytes = b"") -> asyncio.Future[tuple[int, bytes]]:
        future = super().request(command_id, body)
        if command_id == CommandId.DELIVER_SM:
            server = self.server
            assert isinstance(server, RecordingSimulator)

            def answered(f: asyncio.Future[tuple[int, bytes]]) -> None:
                if not f.cancelled() and f.result()[0] == 0:
                    server.acknowledged.append(body)

            future.add_done_callback(answered)
        return future


class RecordingSimulator(SmscSimulator):
    """The SMSC simulator, also keeping every deliver_sm the ESME answered with ESME_ROK:
    what the SMSC will never send again, so what must be in the database (invariant 4)."""

    def __init__(self, options: SimulatorOptions | None = None) -> None:
        super().__init__(options)
        self.acknowledged: list[bytes] = []
        self.refused: set[tuple[int, int]] = set()
        """(connection, sequence) of submit_sm answered with an error: not delivered."""

    def taken(self) -> list[tuple[str, bytes]]:
        """(destination, text) of every submit_sm the SMSC did not refuse: accepted, or left
        unanswered (a real SMSC may deliver those)."""
        out = []
        for r in self.of_kind(CommandId.SUBMIT_SM):
            if (r.connection, r.sequence) not in self.refused:
                sm = decode_short_message(r.body)
                out.append((sm.destination_addr, sm.short_message))
        return out

    def _protocol(self) -> SimConnection:
        self._numbers += 1
        conn = _RecordingConnection(self, self._numbers)
        self.connections.append(conn)
        return conn

    def acked_receipt_ids(self) -> set[str]:
        ids = set()
        for body in self.acknowledged:
            sm = decode_short_message(body)
            if is_receipt(sm):
                ids.add(to_receipt(sm, IdFormat.AS_IS).message_id)
        return ids

    def acked_mo(self) -> list[tuple[str, str]]:
        """(source, text) of every acknowledged MO (not a receipt)."""
        out = []
        for body in self.acknowledged:
            sm = decode_short_message(body)
            if not is_receipt(sm):
                out.append((sm.source_addr, sm.short_message.decode("latin-1")))
        return out


def simulator(**options: object) -> RecordingSimulator:
    return RecordingSimulator(SimulatorOptions(credentials={"smartd": SMPP_PASSWORD}, **options))  # type: ignore[arg-type]


@dataclass
class Figures:
    """What a fault test saw, for RELIABILITY.md."""

    submits: int = 0
    recipients: int = 0
    duplicates: int = 0
    unknown: int = 0
    states: dict[str, int] = field(default_factory=dict)
    receipts_acked: int = 0
    mo_acked: int = 0
    survey_submits: int = 0


async def check_invariants(
    pool: asyncpg.Pool,
    sim: SmscSimulator,
    *,
    crashes: int,
    window: int,
    info_cap: int = 10,
    survey_cap: int = 2,
    finished: bool = True,
) -> Figures:
    """Invariants 1, 2 and 4 after a fault test:

    - no number got more than ``survey_cap`` surveys (survey questions start "Survey ");
    - no recipient got one campaign twice from the SMSC (a submit it refused, e.g.
      throttled, does not count) (campaign texts differ, so (number, text) is a
      campaign's message) and no number got more than ``info_cap`` partner messages;
    - no contact counter above its cap;
    - at most one window of unknowns per crash, and every unknown is counted against the cap;
    - every delivery final (or, when ``finished`` is false, final or resumable) and every
      number the SMSC got a submit for is recorded as sent, never as still to send;
    - every receipt and MO the SMSC had acknowledged is in the database.
    """
    if isinstance(sim, RecordingSimulator):
        submits = sim.taken()
    else:
        submits = [(sm.destination_addr, sm.short_message) for _, sm in sim.submits()]
    # Campaign messages only: program service messages (two grants' notices, say) may
    # rightly carry the same text to one number.
    texts = {
        r["t"].encode("latin-1", "replace")
        for r in await pool.fetch("SELECT texts->>'ru' AS t FROM campaigns WHERE kind = 'info'")
        if r["t"]
    }
    surveys = collections.Counter(d for d, t in set(submits) if t.startswith(b"Survey "))
    assert not surveys or max(surveys.values()) <= survey_cap, "a number got a 3rd survey"
    survey_submits = sum(surveys.values())
    submits = [(d, t) for d, t in submits if t in texts]
    per_message = collections.Counter(submits)
    per_number = collections.Counter(d for d, _ in set(submits))
    fig = Figures(submits=len(submits), recipients=len(per_message))
    fig.survey_submits = survey_submits
    fig.duplicates = sum(n - 1 for n in per_message.values())
    assert fig.duplicates == 0, f"sent twice: {[m for m, n in per_message.items() if n > 1][:5]}"
    assert not per_number or max(per_number.values()) <= info_cap, "a number passed the cap"
    over = await pool.fetchval(
        "SELECT count(*) FROM contact_counters WHERE info_count > info_cap "
        "OR survey_count > survey_cap OR info_cap > $1",
        info_cap,
    )
    assert over == 0
    rows = await pool.fetch(
        "SELECT coalesce(suppressed::text, state::text) AS s, count(*) FROM deliveries GROUP BY 1"
    )
    fig.states = {r["s"]: r["count"] for r in rows}
    states = await pool.fetch("SELECT state::text, count(*) FROM deliveries GROUP BY 1")
    by_state = {r["state"]: r["count"] for r in states}
    fig.unknown = by_state.get("unknown", 0)
    assert fig.unknown <= max(crashes, 0) * window, f"{fig.unknown} unknown > {crashes}x{window}"
    allowed = FINAL if finished else FINAL | {"queued", "claimed"}
    assert set(by_state) <= allowed, by_state
    uncounted = await pool.fetchval(
        "SELECT count(*) FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id "
        "WHERE d.state = 'unknown' AND c.apply_caps AND d.cap_month IS NULL"
    )
    assert uncounted == 0, "an unknown message does not hold its cap slot"
    # A number the SMSC received must never be recorded as still to send (it would go again).
    resend = await pool.fetchval(
        "SELECT count(*) FROM deliveries d JOIN campaigns c ON c.id = d.campaign_id "
        "WHERE d.state IN ('queued', 'claimed') "
        "AND (d.msisdn, c.texts->>'ru') IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [d for d, _ in per_message],
        [t.decode("latin-1") for _, t in per_message],
    )
    assert resend == 0, "a message the SMSC received is queued to be sent again"
    if not isinstance(sim, RecordingSimulator):
        return fig
    acked = sim.acked_receipt_ids()
    fig.receipts_acked = len(acked)
    if acked:
        stored = await pool.fetchval(
            "SELECT count(DISTINCT message_id) FROM receipts WHERE message_id = ANY($1)",
            list(acked),
        )
        assert stored == len(acked), f"{len(acked) - stored} acknowledged receipts lost"
    mo = sim.acked_mo()
    fig.mo_acked = len(mo)
    for source, text in mo:
        found = await pool.fetchval(
            "SELECT count(*) FROM mo_messages WHERE body = $1 AND $2 LIKE '%' || msisdn",
            text,
            source,
        )
        assert found, f"acknowledged MO {text!r} lost"
    return fig
