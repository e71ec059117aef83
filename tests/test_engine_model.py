"""The engine and the inbound path against a small reference model (issue 11, STYLE.md 13).

A Hypothesis state machine drives the real engine (``build_engine`` over the SMSC simulator
on 127.0.0.1, a ManualClock, ``run_once``) with subscribers joining and leaving, 1204,
STOP and identical MOs, survey replies, campaigns started, paused and cancelled, the clock
crossing 21:00, 10:00 and a month end, throttle storms, disconnects, an SMSC restart that
reuses ids, receipts early, twice or in another id format, and an engine crash with
recovery. After every step it checks the DESIGN.md invariants against the model and the
SMSC's own record of what it took (see RELIABILITY.md, "The model-based test").

``SMARTD_MODEL_EXAMPLES`` / ``SMARTD_MODEL_STEPS`` set the depth (default: a short run for
the suite); ``SMARTD_MODEL_SEED`` replays a run.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from campaigns.repository import CampaignRepository
from dispatcher.db import Database
from dispatcher.engine.build import Engine, Program
from dispatcher.kernel.clock import ManualClock
from dispatcher.settings import Settings, load_settings
from smpp.constants import Status, Tag
from smpp.simulator import SimulatorOptions, SmscSimulator
from smpp.text import encode_message
from tests.factories import campaign, campaign_from_spec, members, subscribers
from tests.model_invariants import SKIP, ModelInvariants
from tests.model_rig import (
    SMPP_PASSWORD,
    WAIT,
    ModelSimulator,
    World,
    new_ledger,
    start_engine,
    wait_until,
)

EXAMPLES = int(os.environ.get("SMARTD_MODEL_EXAMPLES", "8"))
STEPS = int(os.environ.get("SMARTD_MODEL_STEPS", "20"))
SEED = os.environ.get("SMARTD_MODEL_SEED")
#: Shrinking a failure to its minimal example can take minutes: on request only.
SHRINK = os.environ.get("SMARTD_MODEL_SHRINK", "0") == "1"

NUMBERS = ("77015550001", "77015550002", "77015550003")
FIRST_MEMBERS = NUMBERS[:2]  # the third is a subscriber who has not joined
START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # 17:00 Astana, the last day of November
INFO_CAP, SURVEY_CAP = 3, 1  # small, so a short run reaches them
LONG = "Предложение партнёра: скидка двадцать процентов на кофе и выпечку. " * 2  # 3 parts
SURVEY_OPTIONS = [{"ru": "Да", "kk": "Иә"}, {"ru": "Нет", "kk": "Жоқ"}]

#: ADAPTER (receipt id format): the engine settings that make it match receipts whose ids
#: come in another form than the submit_sm_resp's (issue 11, "Receipts and message ids").
#: When that setting lands, put it here, e.g. {"SMARTD_SMPP_RECEIPT_ID_FORMAT": "auto"}.
ID_FORMAT_SETTINGS: dict[str, str] = {"SMARTD_SMPP_ID_FORMAT": "auto"}

CLOCK_MOVES = (
    "minutes",  # +7 min
    "to_close_edge",  # 20:59:58 today
    "to_close",  # 21:00:00 today
    "to_open_edge",  # 09:59:59 next morning
    "to_open",  # 10:00:00 next morning
    "hours",  # +3 h
    "day",  # +25 h: a survey's timeout passes
    "month_end",  # 20:59:58 on the month's last day (the next moves cross into a new month)
)


class EngineModel(ModelInvariants, RuleBasedStateMachine):
    """One example: fresh tables, a simulator, an engine, and the reference model."""

    world: World
    runner: asyncio.Runner
    settings: Settings

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock(START)
        self.member = {n: n in FIRST_MEMBERS for n in NUMBERS}
        self.crashes = 0
        self.campaigns: dict[int, tuple[str, str]] = {}  # id -> (tag, kind)
        self.tag_kind: dict[str, str] = {}
        self.checked = 0  # simulator writes already checked against eligibility
        self.ussd_sessions = 0
        self.retried_by: datetime | None = None  # when retry_time_passes last ran
        self.engine: Engine | None = None
        self.sim = ModelSimulator(
            SimulatorOptions(credentials={"smartd": SMPP_PASSWORD}, seed=1), self.clock
        )
        self.loop_errors: list[str] = []
        self.runner.get_loop().set_exception_handler(self._loop_error)
        self.run(self._open())

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """An exception no task awaited (a simulator callback, a stray task): kept for the
        ``no_error_in_a_background_callback`` invariant, so a broken witness (receipts that
        never leave the simulator) fails the run instead of making the receipt checks vacuous."""
        error = context.get("exception")
        self.loop_errors.append(repr(error) if error is not None else str(context.get("message")))

    # -- plumbing -------------------------------------------------------------------------

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)

    @property
    def pool(self) -> Any:
        return self.world.pool

    @property
    def db(self) -> Database:
        return Database(pool=self.world.pool, url=self.world.url)

    async def _open(self) -> None:
        await self.world.reset()
        await subscribers(self.db, list(NUMBERS))
        await members(self.db, list(FIRST_MEMBERS), joined_at=START - timedelta(days=3))
        self.ledger = new_ledger(self.pool, self.settings, self.clock)
        self.program = Program.over(self.pool, self.settings, self.ledger)
        port = await self.sim.start()
        self.engine = await start_engine(self.pool, self.settings, self.clock, self.program, port)

    #: What the examples of one run did, printed at its end (RELIABILITY.md's figures).
    totals: ClassVar[collections.Counter[str]] = collections.Counter()

    @invariant()
    def count_step(self) -> None:
        """Not a check: counts the steps (invariants run once per step, and once at start)."""
        self.totals["steps"] += 1

    def teardown(self) -> None:
        sim, totals = self.sim, self.totals
        totals["examples"] += 1
        totals["steps"] -= 1  # the check before the first rule
        totals["submit_sm"] += len(sim.written)
        totals["refused"] += len(sim.refused)
        totals["deliver_sm acknowledged"] += len(sim.acknowledged)
        totals["crashes"] += self.crashes
        totals["campaigns"] += len(self.campaigns)
        totals["smsc connections"] += sim._numbers
        self.run(self._close())

    async def _close(self) -> None:
        if self.engine is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(WAIT):
                    await self.engine.close()
        await self.ledger.close()
        await self.sim.stop()

    @property
    def eng(self) -> Engine:
        assert self.engine is not None
        return self.engine

    def _pass_in_background(self) -> asyncio.Task[int]:
        """One dispatcher pass as a task; its end wakes the simulator's waiters too."""
        task = asyncio.create_task(self.eng.dispatcher.run_once())
        task.add_done_callback(lambda _: self.sim._wake())
        return task

    async def _settle(self) -> None:
        """Until nothing is on its way from the SMSC (receipts answered), then the
        receipts service and housekeeping until a pass finds nothing."""
        await wait_until(self.sim, self.sim.quiet)
        async with asyncio.timeout(WAIT):
            await self.eng.run_services_once()

    async def _drain(self) -> None:
        for _ in range(20):
            async with asyncio.timeout(WAIT):
                if not await self.eng.dispatcher.run_once():
                    break
        await self._settle()

    # -- subscribers ----------------------------------------------------------------------

    @rule(n=st.sampled_from(NUMBERS), dialled=st.sampled_from(["*555*1#", "*555*2#"]))
    def ussd_join_or_leave(self, n: str, dialled: str) -> None:
        """R1 / R2 by USSD: committed before the answer."""
        self.ussd_sessions += 1
        session = f"s{self.ussd_sessions}"
        self.run(self.program.ussd.handle(n, session, dialled, self.clock.now()))
        self.member[n] = dialled == "*555*1#"

    def _mo(self, n: str, destination: str, text: str, reference: int | None = None) -> None:
        self.run(self._mo_async(n, destination, text, reference))

    async def _mo_async(
        self, n: str, destination: str, text: str, reference: int | None = None
    ) -> None:
        part = encode_message(text)[0]
        sm = SmscSimulator._mo_pdu(n, destination, part)
        if reference is not None:
            sm.tlvs[Tag.USER_MESSAGE_REFERENCE] = reference.to_bytes(2, "big")
        status = await self.sim.deliver(sm)
        assert status == 0, f"MO {text!r} refused with {status:#x}"

    @rule(n=st.sampled_from(NUMBERS), umr=st.sampled_from([None, 1, 2]))
    def mo_stop(self, n: str, umr: int | None) -> None:
        """R2: STOP to the short code leaves, whatever the handset's message reference."""
        self._mo(n, self.settings.short_code, "STOP", umr)
        self.member[n] = False

    @rule(n=st.sampled_from(NUMBERS), umr=st.sampled_from([None, 1, 2]))
    def mo_help(self, n: str, umr: int | None) -> None:
        """HELP to the short code (answered with the codes; any time of day)."""
        self._mo(n, self.settings.short_code, "HELP", umr)

    @rule(n=st.sampled_from(NUMBERS))
    def mo_1204(self, n: str) -> None:
        """R9: anything to 1204 blocks telemarketing and leaves SMART."""
        self._mo(n, self.settings.dnc_code, "stop calling")
        self.member[n] = False

    @rule(n=st.sampled_from(NUMBERS), umr=st.sampled_from([None, 1]))
    def identical_mo_twice(self, n: str, umr: int | None) -> None:
        """Invariant 4: the same words twice are two messages (both acknowledged)."""
        self._mo(n, self.settings.short_code, "hello", umr)
        self._mo(n, self.settings.short_code, "hello", umr)

    @rule(n=st.sampled_from(NUMBERS), answer=st.sampled_from(["1", "2", "1", "maybe"]))
    def survey_reply(self, n: str, answer: str) -> None:
        """R13: every distinct reply to an open survey is applied once."""
        before = self.run(self._survey_position(n))
        self._mo(n, self.settings.short_code, answer)
        checked = "every_distinct_reply_applied_once" not in SKIP
        if checked and before is not None and answer in ("1", "2"):
            survey, answered = before
            # by survey: a session's answers are unlinked from it once it closes (R11)
            after = self.run(
                self.pool.fetchval(
                    "SELECT count(*) FROM survey_answers WHERE survey_id = $1", survey
                )
            )
            assert after == answered + 1, (
                "every_distinct_reply_applied_once: "
                f"reply {answer!r} to an open survey left {after} answers (was {answered})"
            )

    async def _survey_position(self, n: str) -> tuple[int, int] | None:
        row = await self.pool.fetchrow(
            "SELECT s.survey_id, "
            "(SELECT count(*) FROM survey_answers a WHERE a.survey_id = s.survey_id) AS c "
            "FROM survey_sessions s WHERE s.msisdn = $1 AND s.state = 'open' "
            "AND (s.expires_at IS NULL OR s.expires_at > $2)",
            n,
            self.clock.now(),
        )
        return None if row is None else (row["survey_id"], row["c"])

    @rule(n=st.sampled_from(NUMBERS))
    def survey_reply_racing_the_record(self, n: str) -> None:
        """R13: a survey's first question reaches the subscriber, who answers before the
        engine has read the SMSC's submit_sm_resp (so before the session opened)."""
        if self.run(self._survey_position(n)) is not None:
            return  # the reply would answer the survey already open
        self.run(self._drain())  # what is already due goes first: the next pass is the survey
        tag = self._start_survey([n])
        self.run(self._reply_before_record(n, tag))

    async def _reply_before_record(self, n: str, tag: str) -> None:
        await wait_until(self.sim, self.sim.quiet)
        self.sim.options.hold_responses = True
        written = len(self.sim.written)

        def question_written() -> bool:
            return any(
                w.sm.destination_addr == n and w.text.startswith(tag)
                for w in self.sim.written[written:]
            )

        task = self._pass_in_background()
        try:
            await wait_until(self.sim, lambda: task.done() or question_written())
            sent = question_written()
            if sent:
                await self._mo_async(n, self.settings.short_code, "1")
        finally:
            self.sim.options.hold_responses = False
            self.sim.release_held()
        async with asyncio.timeout(WAIT):
            await task
        await self._drain()
        if not sent or "reply_before_session_opened_applied" in SKIP:
            return
        answers = await self.pool.fetchval(
            "SELECT count(a.*) FROM survey_sessions s JOIN surveys v ON v.id = s.survey_id "
            "JOIN campaigns c ON c.id = v.campaign_id LEFT JOIN survey_answers a "
            "ON a.session_id = s.id WHERE s.msisdn = $1 AND c.name = $2",
            n,
            tag,
        )
        taken = {(w.connection, w.sequence) for w in self.sim.taken()}
        accepted = any(
            (w.connection, w.sequence) in taken
            for w in self.sim.written[written:]
            if w.sm.destination_addr == n and w.text.startswith(tag)
        )
        assert not accepted or answers == 1, (
            f"reply_before_session_opened_applied: {answers} answers to {tag} from {n}"
        )

    # -- campaigns ------------------------------------------------------------------------

    @rule(
        kind=st.sampled_from(["info", "info_long", "survey"]),
        audience=st.sets(st.sampled_from(NUMBERS), min_size=1),
    )
    def campaign_start(self, kind: str, audience: set[str]) -> None:
        """A running campaign to some numbers (members or not)."""
        numbers = sorted(audience)
        if kind == "survey":
            self._start_survey(numbers)
            return
        tag = self._next_tag()
        text = f"{tag} Partner offer" if kind == "info" else f"{tag} {LONG}"
        cid = self.run(campaign(self.db, numbers, texts={"ru": text}))
        self.campaigns[cid] = (tag, kind)
        self.tag_kind[tag] = "info"

    def _next_tag(self) -> str:
        return f"C{len(self.campaigns) + 1}:"

    def _start_survey(self, numbers: list[str]) -> str:
        """A running two-question survey to ``numbers``; its tag (also its name)."""
        tag = self._next_tag()
        spec = {
            "name": tag,
            "kind": "survey",
            "scope": "smart",
            "survey": {
                "questions": [
                    {
                        "texts": {"ru": f"{tag} Любите кофе?", "kk": f"{tag} Кофе ұнай ма?"},
                        "options": SURVEY_OPTIONS,
                    },
                    {"texts": {"ru": "А чай?", "kk": "Ал шай ше?"}, "options": SURVEY_OPTIONS},
                ],
                "thanks": {"ru": "Спасибо!", "kk": "Рақмет!"},
                "timeout_hours": 24,
            },
        }
        cid = self.run(campaign_from_spec(self.db, spec, numbers, self.clock.now()))
        self.campaigns[cid] = (tag, "survey")
        self.tag_kind[tag] = "survey"
        return tag

    @precondition(lambda self: bool(self.campaigns))
    @rule(data=st.data(), action=st.sampled_from(["pause", "resume", "cancel"]))
    def campaign_change(self, data: st.DataObject, action: str) -> None:
        """Pause, resume or cancel one (refused transitions change nothing)."""
        cid = data.draw(st.sampled_from(sorted(self.campaigns)))
        with contextlib.suppress(Exception):
            self.run(CampaignRepository(self.pool).transition(cid, action, self.clock.now()))

    # -- the engine and the clock ---------------------------------------------------------

    @rule()
    def dispatch(self) -> None:
        """The dispatcher until a pass claims nothing; receipts and housekeeping after."""
        self.run(self._drain())

    @rule(move=st.sampled_from(CLOCK_MOVES))
    def advance_clock(self, move: str) -> None:
        """Time passes: across 21:00, 10:00, a month's end, a survey's timeout."""
        now = self.clock.now()
        local = self._local(now)
        target = {
            "minutes": now + timedelta(minutes=7),
            "hours": now + timedelta(hours=3),
            "day": now + timedelta(hours=25),
            "to_close_edge": self._at_local(local, 20, 59, 58),
            "to_close": self._at_local(local, 21, 0, 0),
            "to_open_edge": self._at_local(local + timedelta(days=1), 9, 59, 59),
            "to_open": self._at_local(local + timedelta(days=1), 10, 0, 0),
            "month_end": self._at_local(_last_day(local), 20, 59, 58),
        }[move]
        if target > now:
            self.clock.set(target)

    @rule(k=st.integers(1, 4))
    def throttle_storm(self, k: int) -> None:
        """The SMSC throttles the next ``k`` submit_sm (single parts or parts of a long
        message), then the dispatcher runs."""
        self.sim.throttle_next = k
        self.run(self._drain())
        self.sim.throttle_next = 0

    @rule()
    def retry_time_passes(self) -> None:
        """Ten minutes pass inside the window and the engine runs: every part refused for a
        temporary reason (throttled) is retried within the message's validity."""
        now = self.clock.now()
        closes = self.settings.calendar.closes_at(now)
        if closes is None or now + timedelta(minutes=10) >= closes:
            return
        for _ in range(3):
            self.clock.advance(timedelta(minutes=3))
            self.run(self._drain())
        self.retried_by = self.clock.now()

    @rule()
    def validity_refused(self) -> None:
        """The SMSC refuses a pass's submits for their validity (ESME_RINVEXPIRY)."""
        self.sim.options.submit_status = Status.ESME_RINVEXPIRY
        try:
            self.run(self._drain())
        finally:
            self.sim.options.submit_status = Status.ESME_ROK

    @rule()
    def window_closes_while_sending(self) -> None:
        """R8: the clock reaches 21:00 between two submits of one pass (claimed at
        20:59:59): nothing may be written at or after the close."""
        now = self.clock.now()
        closes = self.settings.calendar.closes_at(now)
        if closes is None:
            return
        self.clock.set(max(now, closes - timedelta(seconds=1)))
        self.run(self._close_mid_pass(closes))

    async def _close_mid_pass(self, closes: datetime) -> None:
        written = len(self.sim.written)
        task = self._pass_in_background()
        await wait_until(self.sim, lambda: task.done() or len(self.sim.written) > written)
        self.clock.set(closes)
        async with asyncio.timeout(WAIT):
            await task
        await self._settle()

    @rule()
    def disconnect(self) -> None:
        """The connection drops between passes; the session binds again."""
        self.run(self._reconnect(renumber=False))

    @rule()
    def smsc_restart(self) -> None:
        """The SMSC restarts and numbers its message ids from 1 again."""
        self.run(self._reconnect(renumber=True))

    async def _reconnect(self, *, renumber: bool) -> None:
        await wait_until(self.sim, self.sim.quiet)
        known = self.sim._numbers
        self.sim.drop_all()
        if renumber:
            self.sim.restart_numbering()
        await wait_until(
            self.sim, lambda: any(c.number > known and c.bind_command for c in self.sim.bound)
        )
        async with asyncio.timeout(WAIT):
            await self.eng.session.wait_bound()

    @rule(mode=st.sampled_from(["normal", "early", "twice", "other_format"]))
    def receipts_mode(self, mode: str) -> None:
        """How the SMSC sends receipts from now on: after the response, before it, twice,
        or naming the id in another form (hex in the receipt, decimal in the response)."""
        options = self.sim.options
        options.receipt_before_response = mode == "early"
        options.duplicate_receipts = mode == "twice"
        options.receipt_id_style = "hex" if mode == "other_format" else "dec"

    @rule()
    def engine_crash(self) -> None:
        """kill -9 of the engine mid-pass (submits written, responses never read), then a
        new engine over the same database recovers."""
        self.run(self._crash())

    async def _crash(self) -> None:
        await wait_until(self.sim, self.sim.quiet)
        self.sim.options.hold_responses = True
        written = len(self.sim.written)
        task = self._pass_in_background()
        await wait_until(self.sim, lambda: task.done() or len(self.sim.written) > written)
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        old = self.eng
        self.sim.drop_all()
        await old.dispatcher.close()  # its node lock goes, as with the process
        self.sim._held.clear()
        self.sim.options.hold_responses = False
        self.sim.epoch += 1
        self.crashes += 1
        async with asyncio.timeout(WAIT):
            await old.session.close()
        self.engine = await start_engine(
            self.pool, self.settings, self.clock, self.program, self.sim.port
        )


def _last_day(local: datetime) -> datetime:
    first_next = (local.replace(day=1) + timedelta(days=32)).replace(day=1)
    return first_next - timedelta(days=1)


def model_settings(tmp_path: Path, database_url: str) -> Settings:
    env = {
        "SMARTD_INFO_CAP": str(INFO_CAP),
        "SMARTD_SURVEY_CAP": str(SURVEY_CAP),
        "SMARTD_RECEIPTS_RECHECK": "0.001",
        **ID_FORMAT_SETTINGS,
    }
    return load_settings(env, data_dir=tmp_path, database_url=database_url)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_engine_against_the_model(database_url: str, tmp_path: Path) -> None:
    """The engine holds DESIGN.md's invariants (and the issue 11 edges) after every step of
    random runs against the reference model."""
    with asyncio.Runner() as runner:
        world = runner.run(World.open(database_url))
        EngineModel.world = world
        EngineModel.runner = runner
        EngineModel.settings = model_settings(tmp_path, database_url)
        config = settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=SEED is None and EXAMPLES <= 20,
            print_blob=True,
            phases=list(Phase) if SHRINK else [p for p in Phase if p is not Phase.shrink],
        )
        machine = EngineModel
        if SEED is not None:
            machine = seed(int(SEED))(EngineModel)
        EngineModel.totals.clear()
        try:
            run_state_machine_as_test(machine, settings=config)
        finally:
            runner.run(world.close())
            print(f"\nmodel run: {dict(EngineModel.totals)}")
