"""The bonus ledger (R3-R6, R12; invariant 5): grants, activation, sweeps, charging.

:class:`BonusLedger` is the only caller of ``bonus.sql``. Rules it keeps:

- **Once a month, per owner.** ``bonus_grants`` is UNIQUE (msisdn, owner_epoch, month) and
  (msisdn, owner_epoch, activated_month): a second grant or a second activation in a calendar
  month (Astana time) cannot commit, whatever races; the next owner of a recycled number
  (a new epoch, R12) starts afresh. Grants are inserted with ON CONFLICT DO NOTHING.
- **No promise that won't come.** Replies and notices are written from the owner's
  :class:`~dispatcher.program.bonus_models.Standing` (R3, R4, R6).
- **Credited once.** An activation commits the grant as active *and* its credit row, leased
  to the caller, before the charging call; the call carries the grant id as idempotency key;
  the outcome is committed after. A crash or timeout in between leaves a pending credit whose
  lease runs out; the retry job (or the subscriber dialling again) sends the same key again.
- **Forfeits reach charging.** A forfeit writes a removal to ``bonus_forfeits`` in the
  caller's transaction; :meth:`BonusLedger.run_charging_once` delivers it after commit and
  retries until the charging system confirms.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
from typing import TypeVar

import asyncpg
import structlog

from dispatcher.kernel.clock import Clock
from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import CreditState, GrantState, Language, ServiceKind
from dispatcher.policy.waiting import waits_for_window
from dispatcher.program import texts
from dispatcher.program.bonus_models import (
    Activation,
    ActivationResult,
    Balance,
    CallOutcome,
    ChargingRun,
    Forfeit,
    Grant,
    GrantSlice,
    OwedCredit,
    Removal,
    Standing,
    SweepResult,
    local_date,
)
from dispatcher.program.charging import (
    ChargingAdapter,
    ChargingBalance,
    ChargingError,
    ChargingRejected,
    CreditRequest,
    backoff_delay,
)
from dispatcher.program.outbox import ServiceMessage, enqueue
from dispatcher.settings import Settings

log = structlog.get_logger(__name__)

DEADLINE = timedelta(days=30)  # R4: activate within 30 days of the grant
VALIDITY = timedelta(days=7)  # R4: activated units last 7 days
GRANT_MONTH_JOB = "bonus_grant_month"
GRANT_MONTH_LOCK = 0x5D15_0002  # advisory lock key of the monthly grant (migrations: ..01)
SWEEP_BATCH = 10_000
CHARGING_BATCH = 200
CHARGING_CONCURRENCY = 16
RETRY_CAP = timedelta(hours=1)

T = TypeVar("T")


class BonusSQL(SqlFile, domain="bonus"):
    lock_msisdn: str
    lock_job: str
    share_job_lock: str
    grant_one: str
    standing: str
    share_subscriber: str
    forfeit: str
    activation_of_month: str
    lease_credit: str
    activate_oldest: str
    record_credit_results: str
    claim_due_credits: str
    claim_due_forfeits: str
    record_forfeit_results: str
    job_done: str
    record_job: str
    record_notice_texts: str
    grant_month: str
    cancel_overdue: str
    cancel_month_overdue: str
    expire_active: str


class BonusLedger:
    """Grants, activations, balances, sweeps and the charging outbox; see the module doc."""

    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, clock: Clock, charging: ChargingAdapter
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._calendar = settings.calendar
        self._clock = clock
        self._charging = charging
        # Nobody else sends a credit while its call may still be running.
        worst = settings.charging_timeout * settings.charging_attempts
        self._lease = timedelta(seconds=worst + 10 * settings.charging_backoff + 5)

    @property
    def clock(self) -> Clock:
        return self._clock

    async def close(self) -> None:
        """Release the charging adapter (its HTTP session)."""
        await self._charging.close()

    # ------------------------------------------------------------ inside a caller's transaction

    async def grant_on_join(
        self, conn: asyncpg.Connection, msisdn: str, now: datetime
    ) -> int | None:
        """R3: grant the current month's units to a new member at once; return the grant id,
        or None when this month already has a grant for ``msisdn`` (also a forfeited one).

        Runs in the caller's transaction (the join), holding the monthly grant's lock shared
        until commit: it waits while the monthly job runs. Queues no notice: the join reply
        says it.
        """
        units = self._settings.bonus_units
        month = self._calendar.month_of(now)
        await conn.execute(BonusSQL.share_job_lock, GRANT_MONTH_LOCK)
        grant_id: int | None = await conn.fetchval(
            BonusSQL.grant_one, msisdn, month, units, now, now + DEADLINE
        )
        return grant_id

    async def join_text(
        self,
        conn: asyncpg.Connection,
        msisdn: str,
        granted: bool,
        language: Language,
        now: datetime,
    ) -> str:
        """R1/R3: the join reply, true for this owner now: the present and how to activate it,
        or that this month's bonus was already received and when the next one comes."""
        standing = await self.standing(conn, msisdn, now)
        if not granted:
            nxt = local_date(standing.next_month, self._calendar.zone)
            units = self._settings.bonus_units
            return texts.text("joined_no_present", language, units=units, next=nxt)
        if standing.activated_this_month or not standing.active_number:
            return texts.text("joined_see_balance", language)
        return texts.text("joined", language, units=self._settings.bonus_units)

    async def grant_on_return(
        self, conn: asyncpg.Connection, msisdn: str, language: Language, now: datetime
    ) -> int | None:
        """R3: a member whose number is active again and who has no grant for this month
        receives it now, with its notice (sent in the window); returns the grant id, or None
        when the month's grant exists. Runs in the caller's transaction (the status change),
        which has checked the membership."""
        grant_id = await self.grant_on_join(conn, msisdn, now)
        if grant_id is None:
            return None
        standing = await self.standing(conn, msisdn, now)
        deadline = now + DEADLINE
        body = standing.notice_text(deadline, language, self._calendar.zone)
        notice = ServiceMessage(
            msisdn, ServiceKind.BONUS_NOTICE, body, dedupe_key=f"bonus_notice:{grant_id}"
        )
        await enqueue(conn, notice)
        return grant_id

    async def standing(
        self, db: asyncpg.Pool | asyncpg.Connection, msisdn: str, now: datetime
    ) -> Standing:
        """What is true of the bonus of the number's current owner at ``now``."""
        standing, _ = await self._usable(db, msisdn, now)
        return standing

    async def _usable(
        self, db: asyncpg.Pool | asyncpg.Connection, msisdn: str, now: datetime
    ) -> tuple[Standing, list[asyncpg.Record]]:
        """The owner's standing at ``now`` and the grants it can still use or activate
        (R6: the ``bonus_grants`` columns with the credit's state), oldest first, read in
        one statement."""
        month = self._calendar.month_of(now)
        rows = await db.fetch(BonusSQL.standing, msisdn, month, now)
        standing = Standing.from_row(
            rows[0] if rows else None, self._next_month(month), self._settings.bonus_units
        )
        return standing, [r for r in rows if r["id"] is not None]

    def _next_month(self, month: date) -> datetime:
        """When the calendar month after ``month`` begins (Astana time), as an instant."""
        first = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
        return datetime(first.year, first.month, 1, tzinfo=self._calendar.zone)

    async def forfeit(self, conn: asyncpg.Connection, msisdn: str, now: datetime) -> Forfeit:
        """R2/R12: pending and active grants of ``msisdn`` are forfeited; returns what was lost
        (the reply to a 1204 names it).

        Must run inside the caller's transaction (leave, 1204, recycling). Units that reached
        or may have reached the charging system get a removal queued in the same transaction;
        it is delivered after commit by :meth:`run_charging_once`. Repeats are no-ops.
        """
        if not conn.is_in_transaction():
            raise RuntimeError("forfeit must run inside the caller's transaction")
        await conn.execute(BonusSQL.lock_msisdn, msisdn)
        return Forfeit.from_row(await conn.fetchrow(BonusSQL.forfeit, msisdn, now))

    # ------------------------------------------------------------ subscriber requests

    async def activate(self, msisdn: str, now: datetime) -> ActivationResult:
        """R4 ``*555*00#``: activate the oldest pending grant within its deadline for 7 days and
        credit it (R5 scope), at most one activation per calendar month.

        Concurrent calls for one number serialise on a per-number lock; while one credit call
        is in flight, repeats answer "already activated". A charging failure answers
        ``TRY_AGAIN``: the activation stands, the credit is retried (same idempotency key) by
        the retry job or by the subscriber's next ``*555*00#``. Only an active number
        activates (R4, seed 000: ``NOT_ACTIVE`` otherwise); grants are the current owner's.
        """
        month = self._calendar.month_of(now)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(BonusSQL.share_subscriber, msisdn)
            if row is not None and row["status"] != "active":
                return ActivationResult(Activation.NOT_ACTIVE)
            epoch = 0 if row is None else row["owner_epoch"]
            await conn.execute(BonusSQL.lock_msisdn, msisdn)
            owed, answer = await self._claim_activation(conn, msisdn, now, month, epoch)
            if answer is not None:
                return await self._explained(conn, msisdn, answer, now)
        assert owed is not None
        [outcome] = await self._send(self._credit_call, [owed])
        states = await self._record_credits([owed], [outcome])
        if states.get(owed.grant_id) == CreditState.CREDITED:
            return ActivationResult(
                Activation.ACTIVATED, owed.grant_id, owed.units, owed.expires_at
            )
        return ActivationResult(Activation.TRY_AGAIN, owed.grant_id)

    async def activate_text(self, msisdn: str, language: Language, now: datetime) -> str:
        """:meth:`activate`, answered as the USSD screen text in ``language``."""
        result = await self.activate(msisdn, now)
        return result.text(language, self._calendar.zone)

    async def balance(self, msisdn: str, now: datetime) -> Balance:
        """R6: the active grant (units, expiry), the oldest pending one (deadline), and what
        the charging system reports (main balance) when it answers."""
        standing, rows = await self._usable(self._pool, msisdn, now)
        active = next((r for r in rows if r["state"] == GrantState.ACTIVE), None)
        pending = next((r for r in rows if r["state"] == GrantState.PENDING), None)
        return Balance(
            standing=standing,
            active=Grant.from_row(active) if active is not None else None,
            pending=Grant.from_row(pending) if pending is not None else None,
            charging=await self._charging_balance(msisdn),
            credit_state=CreditState(active["credit_state"])
            if active is not None and active["credit_state"]
            else None,
        )

    async def balance_text(self, msisdn: str, language: Language, now: datetime) -> str:
        """:meth:`balance`, answered as the USSD screen text in ``language``."""
        result = await self.balance(msisdn, now)
        return result.text(language, self._calendar.zone)

    # ------------------------------------------------------------ scheduled jobs

    async def grant_month(self, now: datetime, *, force: bool = False) -> int:
        """R3: the month's units to every current member in one set-based statement, each
        grant carrying its notice (migration 0023: the engine's service claim queues it, in
        the window, from the grant row); returns how many grants were made.

        The notices' texts are recorded first (committed on their own). Runs under a
        transaction-level advisory lock (which also holds off join grants) and records itself
        in ``job_runs`` with the range of its grant ids (where the notices' cursor walks): a
        second replica waits, then finds the month done and grants nothing (``force`` runs
        the statement anyway; its anti-join still grants nobody twice). With one slice (the
        default) the grants and the ``job_runs`` row commit together. Every connection is
        taken *before* the lock: joins waiting for the lock hold pool connections, and the job
        must never wait for one of those.
        """
        month = self._calendar.month_of(now)
        period = month.strftime("%Y-%m")
        slices = max(1, min(self._settings.bonus_grant_workers, self._pool.get_max_size()))
        await self._pool.execute(
            BonusSQL.record_notice_texts,
            GRANT_MONTH_JOB,
            period,
            now,
            self.notice_texts(month, now),
        )
        async with contextlib.AsyncExitStack() as stack:
            conns = [await stack.enter_async_context(self._pool.acquire()) for _ in range(slices)]
            async with conns[0].transaction():
                await conns[0].execute(BonusSQL.lock_job, GRANT_MONTH_LOCK)
                if not force and await conns[0].fetchval(
                    BonusSQL.job_done, GRANT_MONTH_JOB, period
                ):
                    return 0
                done = await self._grant_slices(conns, month, now)
                result = {
                    "granted": sum(s.granted for s in done),
                    "notices": sum(s.notices for s in done),
                    "slices": len(done),
                }
                ids = [i for s in done for i in (s.first_id, s.last_id) if i is not None]
                finished = self._clock.now()
                await conns[0].execute(
                    BonusSQL.record_job,
                    GRANT_MONTH_JOB,
                    period,
                    now,
                    finished,
                    result,
                    min(ids, default=None),
                    max(ids, default=None),
                )
        log.info("monthly bonus granted", period=period, **result)
        return int(result["granted"])

    async def _grant_slices(
        self, conns: Sequence[asyncpg.Connection], month: date, now: datetime
    ) -> list[GrantSlice]:
        """The grant statement over ``len(conns)`` disjoint msisdn slices in parallel: slice 0
        in the caller's transaction on ``conns[0]`` (which holds the lock), the others each in
        a transaction of its own. A slice that fails leaves the run unrecorded; the catch-up
        completes it (the anti-join skips what committed slices granted)."""
        slices = len(conns)

        async def grant(conn: asyncpg.Connection, k: int) -> GrantSlice:
            params = self.grant_month_params(month, now, slices, k)
            return GrantSlice.from_row(await conn.fetchrow(BonusSQL.grant_month, *params))

        async def one(k: int) -> GrantSlice:
            if k == 0:
                return await grant(conns[0], 0)
            async with conns[k].transaction():
                return await grant(conns[k], k)

        return list(await asyncio.gather(*(one(k) for k in range(slices))))

    def grant_month_params(
        self, month: date, now: datetime, slices: int = 1, part: int = 0
    ) -> tuple[object, ...]:
        """The parameters of ``grant_month`` in bonus.sql for slice ``part`` of ``slices``
        (the benchmark profiles it too, as one slice)."""
        return (month, self._settings.bonus_units, now, now + DEADLINE, slices, part)

    def notice_texts(self, month: date, now: datetime) -> dict[str, object]:
        """The texts of the notices of a monthly grant made ``now`` (migration 0023's
        ``job_runs.notice_texts``): whether they wait for the send window (R8), the default
        language, and under the deadline's epoch seconds, per variant and language, the
        text: "plain", "used" for an owner whose activation of the month is used (R3, R4:
        it must not say "dial *555*00#" now), "topup" for a member whose number is not
        active (R4: a top-up first). dispatch.sql queue_bonus_notices picks one per grant
        when it queues it."""
        units = self._settings.bonus_units
        zone = self._calendar.zone
        deadline = now + DEADLINE
        used = Standing(True, True, True, True, self._next_month(month), units)
        blocked = Standing(False, True, True, False, self._next_month(month), units)
        variants = {
            "plain": {
                str(lang): texts.text("bonus_notice", lang, units=units) for lang in Language
            },
            "used": {str(lang): used.notice_text(deadline, lang, zone) for lang in Language},
            "topup": {str(lang): blocked.notice_text(deadline, lang, zone) for lang in Language},
        }
        return {
            "in_window": waits_for_window(ServiceKind.BONUS_NOTICE),
            "default": str(self._settings.default_language),
            str(int(deadline.timestamp())): variants,  # the key queue_bonus_notices computes
        }

    async def month_granted(self, now: datetime) -> bool:
        """Whether the monthly grant of ``now``'s month has run (start-up catch-up asks)."""
        period = self._calendar.month_of(now).strftime("%Y-%m")
        return await self._pool.fetchval(BonusSQL.job_done, GRANT_MONTH_JOB, period) is not None

    async def sweep(self, now: datetime) -> SweepResult:
        """R4: cancel pending grants past their deadline, expire active ones past 7 days.

        Guarded batch updates (``WHERE state = ...``, SKIP LOCKED), repeated until a batch
        comes back short; safe to run on every replica at once. The monthly job's grants are
        not in the pending index (migration 0026): a cursor per month walks them.
        """
        cancelled = await self._drain(BonusSQL.cancel_overdue, now)
        cancelled += await self._walk_month_grants(now)
        expired = await self._drain(BonusSQL.expire_active, now)
        if cancelled or expired:
            log.info("bonus sweep", cancelled=cancelled, expired=expired)
        return SweepResult(cancelled=cancelled, expired=expired)

    async def _drain(self, query: str, now: datetime) -> int:
        total = 0
        while True:
            done: int = await self._pool.fetchval(query, now, SWEEP_BATCH)
            total += done
            if done < SWEEP_BATCH:
                return total

    async def _walk_month_grants(self, now: datetime) -> int:
        """``cancel_month_overdue`` until no cursor moves (every month's walk is at its end
        or at a grant still in its deadline): how many it cancelled."""
        total = 0
        while True:
            row = await self._pool.fetchrow(BonusSQL.cancel_month_overdue, now, SWEEP_BATCH)
            total += int(row["cancelled"])
            if row["passed"] == 0:
                return total

    async def run_charging_once(self, now: datetime) -> ChargingRun:
        """Send owed credits and forfeits whose retry time has come; one pass, no waiting.

        Each batch is claimed with a lease in one statement, sent concurrently, and its
        outcomes recorded in one statement.
        """
        credited = credit_failures = forfeited = forfeit_failures = 0
        while True:
            owed = await self._claim(BonusSQL.claim_due_credits, now, OwedCredit.from_row)
            outcomes = await self._send(self._credit_call, owed)
            await self._record_credits(owed, outcomes)
            credited += sum(o.ok for o in outcomes)
            credit_failures += sum(not o.ok for o in outcomes)
            if len(owed) < CHARGING_BATCH:
                break
        while True:
            removals = await self._claim(BonusSQL.claim_due_forfeits, now, Removal.from_row)
            outcomes = await self._send(self._forfeit_call, removals)
            await self._record_forfeits(removals, outcomes)
            forfeited += sum(o.ok for o in outcomes)
            forfeit_failures += sum(not o.ok for o in outcomes)
            if len(removals) < CHARGING_BATCH:
                break
        return ChargingRun(credited, credit_failures, forfeited, forfeit_failures)

    # ------------------------------------------------------------ internals

    async def _explained(
        self, conn: asyncpg.Connection, msisdn: str, answer: ActivationResult, now: datetime
    ) -> ActivationResult:
        """A refusal with what is true instead: the owner's standing and oldest pending grant
        (so "already activated" says when the pending units can be, R3/R4)."""
        if answer.outcome not in (Activation.ALREADY_ACTIVATED, Activation.NOTHING_TO_ACTIVATE):
            return answer
        standing, rows = await self._usable(conn, msisdn, now)
        pending = next((r for r in rows if r["state"] == GrantState.PENDING), None)
        return dataclasses.replace(
            answer,
            standing=standing,
            pending=Grant.from_row(pending) if pending is not None else None,
        )

    async def _claim_activation(
        self, conn: asyncpg.Connection, msisdn: str, now: datetime, month: date, epoch: int
    ) -> tuple[OwedCredit | None, ActivationResult | None]:
        """Under the number's lock: this month's activation resumed, or the oldest pending
        grant activated; either the credit to send (leased to us) or the final answer."""
        row = await conn.fetchrow(BonusSQL.activation_of_month, msisdn, month, epoch)
        if row is not None:
            grant = Grant.from_row(row)
            resumable = (
                grant.state is GrantState.ACTIVE
                and row["credit_state"] == CreditState.PENDING
                and grant.expires_at is not None
                and grant.expires_at > now
            )
            if resumable:
                attempts = await conn.fetchval(
                    BonusSQL.lease_credit, grant.id, now, now + self._lease
                )
                if attempts is not None:
                    return OwedCredit.of(grant, attempts), None
            return None, ActivationResult(Activation.ALREADY_ACTIVATED, grant.id)
        row = await conn.fetchrow(
            BonusSQL.activate_oldest, msisdn, now, month, now + VALIDITY, now + self._lease, epoch
        )
        if row is None:
            return None, ActivationResult(Activation.NOTHING_TO_ACTIVATE)
        return OwedCredit.of(Grant.from_row(row), 1), None

    async def _claim(
        self, query: str, now: datetime, build: Callable[[asyncpg.Record], T]
    ) -> list[T]:
        rows = await self._pool.fetch(query, now, CHARGING_BATCH, now + self._lease)
        return [build(r) for r in rows]

    async def _send(
        self, call: Callable[[T], Awaitable[CallOutcome]], items: Sequence[T]
    ) -> list[CallOutcome]:
        limit = asyncio.Semaphore(CHARGING_CONCURRENCY)

        async def one(item: T) -> CallOutcome:
            async with limit:
                return await call(item)

        return list(await asyncio.gather(*(one(item) for item in items)))

    async def _credit_call(self, owed: OwedCredit) -> CallOutcome:
        request = CreditRequest(str(owed.grant_id), owed.msisdn, owed.units, owed.expires_at)
        return await _guarded(
            owed.grant_id, lambda: self._charging.credit(request), lambda r: r.reference
        )

    async def _forfeit_call(self, removal: Removal) -> CallOutcome:
        return await _guarded(
            removal.grant_id,
            lambda: self._charging.forfeit(str(removal.grant_id), removal.msisdn),
            lambda _: None,
        )

    async def _record_credits(
        self, owed: Sequence[OwedCredit], outcomes: Sequence[CallOutcome]
    ) -> dict[int, CreditState]:
        if not owed:
            return {}
        now = self._clock.now()
        rows = await self._pool.fetch(
            BonusSQL.record_credit_results,
            [o.grant_id for o in outcomes],
            [o.ok for o in outcomes],
            [o.permanent for o in outcomes],
            [o.reference for o in outcomes],
            [o.error for o in outcomes],
            [self._next_attempt(o, w.attempts, now) for w, o in zip(owed, outcomes, strict=True)],
            now,
        )
        return {r["grant_id"]: CreditState(r["state"]) for r in rows}

    async def _record_forfeits(
        self, removals: Sequence[Removal], outcomes: Sequence[CallOutcome]
    ) -> None:
        if not removals:
            return
        now = self._clock.now()
        await self._pool.execute(
            BonusSQL.record_forfeit_results,
            [o.grant_id for o in outcomes],
            [o.ok for o in outcomes],
            [o.permanent for o in outcomes],
            [o.error for o in outcomes],
            [
                self._next_attempt(o, r.attempts, now)
                for r, o in zip(removals, outcomes, strict=True)
            ],
            now,
        )

    def _next_attempt(self, outcome: CallOutcome, attempts: int, now: datetime) -> datetime | None:
        """When a transient failure is retried: exponential from the retry interval, capped."""
        if outcome.ok or outcome.permanent:
            return None
        base = self._settings.charging_retry_interval
        delay = backoff_delay(attempts, base, RETRY_CAP.total_seconds(), random.random())
        return now + timedelta(seconds=delay)

    async def _charging_balance(self, msisdn: str) -> ChargingBalance | None:
        try:
            return await self._charging.balance(msisdn)
        except ChargingError as exc:
            log.warning("charging balance unavailable", error=str(exc))
            return None


async def _guarded(
    key: int, call: Callable[[], Awaitable[T]], reference: Callable[[T], str | None]
) -> CallOutcome:
    """Run one charging call and say what it came to; never raises but cancellation."""
    try:
        result = await call()
    except ChargingRejected as exc:
        log.error("charging refused", grant_id=key, error=str(exc))
        return CallOutcome(key, ok=False, permanent=True, error=str(exc)[:500])
    except ChargingError as exc:
        log.warning("charging unavailable", grant_id=key, error=str(exc))
        return CallOutcome(key, ok=False, error=str(exc)[:500])
    except Exception as exc:  # a bug or an unexpected library error: retry later, keep going
        log.exception("charging call failed", grant_id=key)
        return CallOutcome(key, ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
    return CallOutcome(key, ok=True, reference=reference(result))
