"""``smartd demo``: the whole program on embedded defaults, in under a minute.

Embedded PostgreSQL (a fresh ``smartd_demo`` database), the built-in SMSC simulator on
127.0.0.1, 10,000 synthetic Kazakh numbers. Subscribers join through the real USSD endpoint;
a partner campaign and a two-question survey are created, given audiences and started
through the real HTTP API; the dispatch engine sends them over SMPP with a simulated clock
that starts at 20:58 Astana time, so the window closes at 21:00 mid-campaign and the rest
waits for 10:00 the next morning. Receipts come back, subscribers answer the survey (some
badly), one texts STOP and one texts 1204, some activate their bonus. A summary table ends it;
``--serve`` then leaves the API and console running on the configured port.

Served, the demo is a playground for the console: its clock moves on to the next opening of
the send window (10:00 Astana on December 1st) and from there runs in real time, and the
engine's loops run as under ``smartd serve``, so a campaign started in the console is sent at
once over the simulator (the bonus notices queued at 00:05 go first). The scripted part
cannot use a running clock (it jumps across nights), and a served clock left at 00:05 would
queue every new campaign until a morning that never comes. The demo prints a token per
operator role; they live in the demo's own database (``smartd_demo``, recreated each run),
where ``smartd token create --demo`` adds more (without ``--demo`` a token goes to the
service's database, which the demo does not read).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from rich.console import Console
from rich.table import Table

from dispatcher.db import Database, create_pool, recreate_database, with_database
from dispatcher.demo_data import NAMES, PARTNER, SURVEY
from dispatcher.embedded import EmbeddedPostgres
from dispatcher.engine.build import Engine, Program, build_engine
from dispatcher.engine.engine import EngineConfig
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from dispatcher.web.keys import BONUS, MEMBERSHIP, USSD
from smpp.config import SessionConfig
from smpp.simulator import SimulatorOptions, SmscSimulator

SUBSCRIBERS = 10_000  # joiners 70 %, partner audience 60 %, surveyed 15 %
START = datetime(2026, 11, 23, 15, 58, tzinfo=UTC)  # 20:58 in Astana (UTC+5)
SIMULATED_TPS = 40.0  # the pace of the simulated clock: messages per simulated second
PREFIXES = ("700", "701", "702", "705", "707", "708", "747", "771", "775", "776", "777", "778")
DB_NAME = "smartd_demo"
#: The tokens the served demo prints: the operator roles (the gateway's is the USSD gateway's).
PRINTED_ROLES = (Role.ADMIN, Role.MARKETER, Role.VIEWER)

console = Console()


class DemoClock:
    """Manual while the script runs (it jumps across the night), then, once :meth:`run` is
    called, real time from where it stands: the served demo's clock."""

    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)
        self._since: float | None = None  # time.monotonic() when it began to run

    def now(self) -> datetime:
        if self._since is None:
            return self._now
        return self._now + timedelta(seconds=time.monotonic() - self._since)

    def set(self, instant: datetime) -> None:
        self._now, self._since = instant.astimezone(UTC), None

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def run(self) -> None:
        self._now, self._since = self.now(), time.monotonic()


class DemoNotRun(LookupError):
    """There is no demo database to put a token in."""


@asynccontextmanager
async def open_demo_database(settings: Settings) -> AsyncIterator[Database]:
    """The database of the last ``smartd demo`` on the configured (or embedded) server, for
    ``smartd token --demo``; :class:`DemoNotRun` when the demo never ran there."""
    embedded = None
    admin_url = settings.database_url
    if admin_url is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        admin_url = await asyncio.to_thread(embedded.start, "postgres")
    url = with_database(admin_url, DB_NAME)
    try:
        try:
            pool = await create_pool(url, min_size=1, max_size=2)
        except asyncpg.InvalidCatalogNameError:
            raise DemoNotRun(
                f"no demo database ({DB_NAME}) on this server: run `smartd demo --serve` first"
            ) from None
        try:
            yield Database(pool=pool, url=url)
        finally:
            await pool.close()
    finally:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


@dataclass
class Demo:
    settings: Settings
    clock: DemoClock
    database: Database
    base: str
    http: aiohttp.ClientSession
    tokens: dict[Role, str]
    sim: SmscSimulator
    engine: Engine
    app: web.Application
    subscribers: int = SUBSCRIBERS
    partner_id: int = 0
    survey_id: int = 0

    def auth(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def post(self, path: str, role: Role, **kw: Any) -> Any:
        async with self.http.post(self.base + path, headers=self.auth(role), **kw) as resp:
            body = await resp.json()
            if resp.status >= 400:
                raise RuntimeError(f"POST {path}: {resp.status} {body}")
            return body

    async def get(self, path: str, role: Role = Role.VIEWER) -> Any:
        async with self.http.get(self.base + path, headers=self.auth(role)) as resp:
            return await resp.json()


def _numbers(rng: random.Random, count: int) -> list[str]:
    numbers: set[str] = set()
    while len(numbers) < count:
        numbers.add("7" + rng.choice(PREFIXES) + f"{rng.randrange(10**7):07d}")
    return sorted(numbers)


async def _database(settings: Settings) -> tuple[str, EmbeddedPostgres | None]:
    embedded = None
    admin_url = settings.database_url
    if admin_url is None:
        embedded = EmbeddedPostgres(settings.data_dir)
        admin_url = await asyncio.to_thread(embedded.start, "postgres")
    url = await recreate_database(admin_url, DB_NAME)
    return url, embedded


async def run_demo(
    settings: Settings, *, serve: bool = False, seed: int = 2026, subscribers: int = SUBSCRIBERS
) -> int:
    """Run the demo; returns the process exit status."""
    started = asyncio.get_running_loop().time()
    rng = random.Random(seed)
    url, embedded = await _database(settings)
    pool = await create_pool(url, min_size=4, max_size=16)
    sim = SmscSimulator(
        SimulatorOptions(
            credentials={"smartd": "demo"},
            seed=seed,
            receipt_mix={"DELIVRD": 0.9, "UNDELIV": 0.07, "EXPIRED": 0.03},
        )
    )
    sim_port = await sim.start()
    clock = DemoClock(START)
    database = Database(pool=pool, url=url)
    app = create_app(settings, clock=clock, database=database, scheduler=False, engine=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = settings.http_port if serve else 0
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    http_port = int(runner.addresses[0][1])
    repo = TokenRepository(pool)
    tokens = {role: (await repo.create(f"demo-{role}", role))[0] for role in Role}
    engine = _engine(app, settings, clock, database, sim_port)
    try:
        await engine.start()
        await engine.session.wait_bound()
        async with aiohttp.ClientSession() as http:
            demo = Demo(
                settings,
                clock,
                database,
                f"http://127.0.0.1:{http_port}",
                http,
                tokens,
                sim,
                engine,
                app,
                subscribers,
            )
            await _story(demo, rng)
            await _summary(demo, asyncio.get_running_loop().time() - started)
            if serve:
                await _serve(demo)
                await asyncio.Event().wait()
    finally:
        await engine.close()
        await runner.cleanup()
        await sim.stop()
        await pool.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
    return 0


def _engine(
    app: web.Application,
    settings: Settings,
    clock: DemoClock,
    database: Database,
    sim_port: int,
) -> Engine:
    config = SessionConfig(
        host="127.0.0.1", port=sim_port, system_id="smartd", password="demo", window=64
    )
    return build_engine(
        settings,
        clock,
        database.pool,
        Program(app[MEMBERSHIP], app[USSD]),
        session_config=config,
        engine_config=EngineConfig(window=64, batch_size=400),
        smsc="demo-smsc",
    )


async def _serve(demo: Demo) -> None:
    """After the script: the clock to the window's next opening, running in real time, the
    engine's loops started, and what a newcomer needs printed (where, when, which tokens)."""
    calendar = demo.settings.calendar
    opens = calendar.next_open(demo.clock.now())
    demo.clock.set(opens)
    demo.clock.run()
    demo.engine.run_loops()
    local = calendar.local(opens)
    closes = calendar.closes_at(opens)
    until = f" until {calendar.local(closes):%H:%M}" if closes else ""
    roles = "\n".join(f"  {role:<9} {demo.tokens[role]}" for role in PRINTED_ROLES)
    console.print(
        f"\nServing the demo: console {demo.base}/console, API {demo.base}/api/v1\n"
        f"demo clock: {local:%A} {local.day} {local:%B %Y}, {local:%H:%M} Astana time, running "
        f"in real time from now: the send window is open{until}, so a campaign you start is "
        "sent at once over the simulator (the bonus notices queued at 00:05 go first)\n"
        f"Tokens of this demo's database ({DB_NAME}, recreated by each demo run):\n{roles}\n"
        "More: smartd token create --demo --role ROLE --name NAME (without --demo a token "
        "goes to the service's database, which the demo does not read)\nCtrl-C to stop.",
        highlight=False,
        soft_wrap=True,
    )


def step(text: str) -> None:
    console.print(f"[bold cyan]›[/] {text}")


async def _story(demo: Demo, rng: random.Random) -> None:
    numbers = _numbers(rng, demo.subscribers)
    await _load_subscribers(demo, numbers, rng)
    members = await _joins(demo, rng, numbers)
    partner = await _partner_campaign(demo, numbers)
    survey = await _survey_campaign(demo, rng.sample(members, len(numbers) * 15 // 100))
    await _send_until_window_closes(demo)
    await _subscriber_actions(demo, rng, members)
    demo.clock.set(datetime(2026, 11, 24, 5, 0, tzinfo=UTC))  # 10:00 Astana
    step("10:00 next morning: the window opens, the engine resumes by itself")
    await _send_all(demo)
    await _survey_replies(demo, rng, survey)
    await _send_all(demo)
    await _survey_replies(demo, rng, survey)
    await _send_all(demo)
    await _survey_replies(demo, rng, survey)
    await _settle_receipts(demo)
    await _monthly_grant(demo)
    demo.partner_id, demo.survey_id = partner, survey


async def _load_subscribers(demo: Demo, numbers: list[str], rng: random.Random) -> None:
    step(f"{len(numbers):,} synthetic Kazakh subscribers loaded (kk / ru / en)")
    rows = [(n, rng.choice(("kk", "ru", "ru", "en"))) for n in numbers]
    async with demo.database.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "subscribers", records=rows, columns=["msisdn", "language"]
        )


async def _joins(demo: Demo, rng: random.Random, numbers: list[str]) -> list[str]:
    joiners = rng.sample(numbers, len(numbers) * 7 // 10)
    step(f"{len(joiners):,} subscribers join by USSD (*555*1# or the *555# menu) over HTTP")
    semaphore = asyncio.Semaphore(64)

    async def join(i: int, msisdn: str) -> None:
        async with semaphore:
            sid = f"demo-{i}"
            if i % 3 == 0:
                await demo.post(
                    "/gateway/ussd",
                    Role.GATEWAY,
                    json={"msisdn": msisdn, "session_id": sid, "input": "*555#"},
                )
                dialled = "1"
            else:
                dialled = "*555*1#"
            await demo.post(
                "/gateway/ussd",
                Role.GATEWAY,
                json={"msisdn": msisdn, "session_id": sid, "input": dialled},
            )

    await asyncio.gather(*(join(i, m) for i, m in enumerate(joiners)))
    return joiners


async def _partner_campaign(demo: Demo, numbers: list[str]) -> int:
    campaign = int((await demo.post("/api/v1/campaigns", Role.MARKETER, json=PARTNER))["id"])
    rows = "".join(
        f"{n},{NAMES[i % len(NAMES)]}\n" for i, n in enumerate(numbers[: len(numbers) * 6 // 10])
    )
    csv = f"msisdn,name\n{rows}not-a-number,Bob\n{numbers[0]},Again\n"
    result = await _upload(demo, campaign, csv)
    bad = result["rejected"][0]
    step(
        f"partner campaign {campaign}: audience CSV {result['accepted']:,} accepted, "
        f"{len(result['rejected'])} rejected (line {bad['line']}: {bad['reason']}), "
        f"{result['duplicates']} duplicate"
    )
    await demo.post(f"/api/v1/campaigns/{campaign}/start", Role.MARKETER)
    return campaign


async def _survey_campaign(demo: Demo, audience: list[str]) -> int:
    campaign = int((await demo.post("/api/v1/campaigns", Role.MARKETER, json=SURVEY))["id"])
    result = await _upload(demo, campaign, "msisdn\n" + "\n".join(audience) + "\n")
    step(f"survey campaign {campaign} (priority 1): {result['accepted']:,} recipients")
    await demo.post(f"/api/v1/campaigns/{campaign}/start", Role.MARKETER)
    return campaign


async def _upload(demo: Demo, campaign: int, csv: str) -> Any:
    async with demo.http.post(
        f"{demo.base}/api/v1/campaigns/{campaign}/audience",
        data=csv.encode(),
        headers={**demo.auth(Role.MARKETER), "Content-Type": "text/csv"},
    ) as resp:
        return await resp.json()


async def _pass(demo: Demo) -> int:
    """One dispatch pass, the simulated clock moved by its sending time, then what serve's
    background services would do by then (receipts, campaign housekeeping, recovery)."""
    done = await demo.engine.dispatcher.run_once()
    if done:
        demo.clock.advance(timedelta(seconds=done / SIMULATED_TPS))
    await demo.engine.run_services_once()
    return done


async def _send_until_window_closes(demo: Demo) -> None:
    step("20:58 Astana: the engine starts sending (simulated clock, 40 messages/s)")
    while await _pass(demo):
        pass
    waiting = await demo.database.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE state = 'queued'"
    )
    local = demo.settings.calendar.local(demo.clock.now())
    step(
        f"{local:%H:%M:%S}: past 21:00 the window is closed — nothing more is claimed; "
        f"{waiting:,} messages wait for the morning (validity of what went ends at 21:00)"
    )


async def _send_all(demo: Demo) -> None:
    while await _pass(demo):
        pass


async def _subscriber_actions(demo: Demo, rng: random.Random, members: list[str]) -> None:
    stop, dnc = members[10], members[11]
    await demo.sim.inject_mo(stop, demo.settings.short_code, "СТОП")
    await demo.sim.inject_mo(dnc, demo.settings.dnc_code, "1204")
    step(
        "overnight: one member texts СТОП to the short code, another texts 1204 — both are "
        "committed before deliver_sm_resp; their queued messages are suppressed"
    )
    activating = rng.sample(members[20:], len(members) // 9)
    for i, msisdn in enumerate(activating):
        code = "*555*00#" if i % 4 else "*111*3#"
        await demo.post(
            "/gateway/ussd",
            Role.GATEWAY,
            json={"msisdn": msisdn, "session_id": f"act-{i}", "input": code},
        )
    step(f"{len(activating)} members dial *555*00# (activation) or *111*3# (balance)")


async def _survey_replies(demo: Demo, rng: random.Random, campaign: int) -> None:
    rows = await demo.database.pool.fetch(
        "SELECT s.msisdn FROM survey_sessions s JOIN surveys v ON v.id = s.survey_id "
        "WHERE v.campaign_id = $1 AND s.state = 'open'",
        campaign,
    )
    answering = [r["msisdn"] for r in rows if rng.random() < 0.7]
    for msisdn in answering:
        reply = rng.choice(["1", "2", "3", "2", "1", "maybe"])
        await demo.sim.inject_mo(msisdn, demo.settings.short_code, reply)
    step(f"{len(answering):,} survey replies arrive by SMS (some invalid: one re-prompt each)")


async def _monthly_grant(demo: Demo) -> None:
    demo.clock.set(datetime(2026, 11, 30, 19, 5, tzinfo=UTC))  # December 1st, 00:05 Astana
    granted = await demo.app[BONUS].grant_month(demo.clock.now())
    queued = await demo.database.pool.fetchval(
        "SELECT count(*) FROM service_messages WHERE kind = 'bonus_notice' AND state = 'queued'"
    )
    step(
        f"December 1st 00:05: the monthly grant gives {granted:,} members 500 units each in "
        f"one statement; {queued:,} notices wait for the 10:00 window"
    )


async def _settle_receipts(demo: Demo) -> None:
    while await demo.engine.receipts.run_once():
        pass


async def _summary(demo: Demo, elapsed: float) -> None:
    table = Table(title="SMART demo summary")
    table.add_column("campaign")
    table.add_column("what")
    table.add_column("count", justify="right")
    for cid in (demo.partner_id, demo.survey_id):
        report = await demo.get(f"/api/v1/campaigns/{cid}", Role.ADMIN)  # exact counts (R11)
        name = report["name"]
        states = report["states"]
        sent = sum(states[s] for s in ("submitted", "delivered", "undelivered", "expired"))
        table.add_row(name, "recipients", f"{report['total']:,}")
        table.add_row("", f"status: {report['status']['message']}", report["state"])
        table.add_row("", "sent", f"{sent:,}")
        for state in ("delivered", "undelivered", "expired", "unknown", "failed"):
            if states.get(state):
                table.add_row("", state, f"{states[state]:,}")
        for reason, count in sorted(report["suppressed"].items()):
            if count:
                table.add_row("", f"suppressed: {reason}", f"{count:,}")
        survey = report.get("survey") or {}
        for state, count in survey.get("sessions", {}).items():
            if count:
                table.add_row("", f"survey sessions {state}", f"{count:,}")
        for question in survey.get("questions", []):
            table.add_row(
                "",
                f"Q{question['no']}: {question['texts'].get('en', '')}",
                f"{question['answers']:,}",
            )
            for option in question["options"]:
                table.add_row("", f"   {option['texts'].get('en', '')}", f"{option['count']:,}")
    await _bonus_rows(demo, table)
    console.print(table)
    console.print(f"finished in {elapsed:.1f} s of wall time")


async def _bonus_rows(demo: Demo, table: Table) -> None:
    rows = await demo.database.pool.fetch(
        "SELECT state::text, count(*) FROM bonus_grants GROUP BY 1 ORDER BY 1"
    )
    for row in rows:
        table.add_row("bonuses", f"grants {row['state']}", f"{row['count']:,}")
    events = Counter(
        {
            r["event"]: r["count"]
            for r in await demo.database.pool.fetch(
                "SELECT event::text, count(*) FROM consent_ledger GROUP BY 1"
            )
        }
    )
    for event, count in sorted(events.items()):
        table.add_row("consent ledger", event, f"{count:,}")
