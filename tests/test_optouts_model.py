"""Opt-out attribution against a model (issue 15): over random sequences of campaign messages
(accepted, delivered, undelivered, expired), waits, joins and opt-outs of every kind, the
opt-outs written are exactly those a plain model of "the last message that reached the
number within the span, each message blamed once" gives. And the rate a partner sees is the
same whatever the counts it hides are (R11)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import hypothesis
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st

from campaigns.disclosure import suppress
from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Channel
from dispatcher.program.membership import Membership
from dispatcher.program.optouts import bounds, rate, shown_bounds, shown_rate
from dispatcher.settings import Settings
from tests.factories import campaign, members

_numbers = itertools.count(1)
DAY = 86_400
#: Waits around the span's edge (7 days) and well inside it.
WAITS = [0, 1, 3600, 3 * DAY, 7 * DAY - 1, 7 * DAY, 7 * DAY + 1]
#: What became of a campaign message: reached (accepted, delivered) or not.
FATES = ["submitted", "delivered", "undelivered", "expired"]
STEP = st.one_of(
    st.tuples(st.just("reach"), st.sampled_from(FATES)),
    st.tuples(st.just("wait"), st.sampled_from(WAITS)),
    st.tuples(st.just("join"), st.none()),
    st.tuples(st.just("stop"), st.none()),
    st.tuples(st.just("ussd"), st.none()),
    st.tuples(st.just("dnc"), st.sampled_from([Channel.SMS, Channel.IVR])),
)


@dataclass
class Model:
    """The number as the rule sees it: member, blocked, its messages, the ones blamed."""

    span: timedelta
    member: bool = True
    blocked: bool = False
    messages: list[tuple[datetime, int, int, bool]] = field(default_factory=list)  # t, seq, c
    blamed: set[int] = field(default_factory=set)
    expected: list[tuple[str, int | None]] = field(default_factory=list)

    def opt_out(self, kind: str, now: datetime) -> None:
        reached = [m for m in self.messages if m[3] and now - self.span <= m[0] <= now]
        last = max(reached, default=None, key=lambda m: (m[0], m[1]))
        if last is None or last[1] in self.blamed:
            self.expected.append((kind, None))
            return
        self.blamed.add(last[1])
        self.expected.append((kind, last[2]))


async def _reach(database: Database, msisdn: str, fate: str, at: datetime) -> int:
    campaign_id = await campaign(database, [msisdn])
    await database.pool.execute(
        "UPDATE deliveries SET state = $2::delivery_state, submitted_at = $3, attempts = 1, "
        "finished_at = CASE WHEN $2 = 'submitted' THEN NULL ELSE $3::timestamptz END "
        "WHERE campaign_id = $1",
        campaign_id,
        fate,
        at,
    )
    return campaign_id


@hypothesis.settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(STEP, min_size=1, max_size=12))
@example(steps=[("reach", "delivered"), ("stop", None), ("join", None), ("stop", None)])
@example(steps=[("reach", "submitted"), ("wait", 7 * DAY), ("dnc", Channel.IVR)])
@example(steps=[("reach", "delivered"), ("wait", 7 * DAY + 1), ("ussd", None)])
@example(steps=[("reach", "submitted"), ("reach", "undelivered"), ("stop", None)])
@example(steps=[("dnc", Channel.SMS), ("reach", "submitted"), ("dnc", Channel.SMS)])
async def test_attribution_follows_the_model(
    database: Database,
    settings: Settings,
    clock: ManualClock,
    membership: Membership,
    steps: list[tuple[str, object]],
) -> None:
    """Each opt-out that changed something is written, with the campaign of the latest
    message accepted and not reported undelivered within the span (boundary included), unless
    that message was blamed before; a STOP of a non-member or a repeated 1204 writes none."""
    msisdn = f"7705{next(_numbers):07d}"
    await members(database, [msisdn], joined_at=clock.now() - timedelta(days=1))
    model = Model(timedelta(days=settings.inbox_attribution_days))
    now = clock.now()
    for seq, (step, arg) in enumerate(steps):
        if step == "reach":
            campaign_id = await _reach(database, msisdn, str(arg), now)
            model.messages.append((now, seq, campaign_id, arg in ("submitted", "delivered")))
            continue
        if step == "wait":
            now += timedelta(seconds=int(str(arg)))
            continue
        async with database.pool.acquire() as conn, conn.transaction():
            if step == "join":
                await membership.join(conn, msisdn, Channel.USSD, {}, now)
                model.member = True
            elif step in ("stop", "ussd"):
                channel = Channel.SMS if step == "stop" else Channel.USSD
                await membership.leave(conn, msisdn, channel, {}, now, reason=step)
                if model.member:
                    model.opt_out("stop" if step == "stop" else "leave", now)
                model.member = False
            else:
                assert isinstance(arg, Channel)
                await membership.dnc_block(conn, msisdn, arg, {}, now)
                if model.member or not model.blocked:
                    model.opt_out("dnc", now)
                model.member, model.blocked = False, True
    rows = await database.pool.fetch(
        "SELECT kind::text, campaign_id FROM opt_outs WHERE msisdn = $1 ORDER BY id", msisdn
    )
    assert [(r["kind"], r["campaign_id"]) for r in rows] == model.expected


@given(
    opt_outs=st.integers(0, 60),
    submitted=st.integers(0, 3000),
    delivered=st.integers(0, 3000),
    min_cell=st.integers(2, 10),
)
def test_a_shown_rate_tells_nothing_of_a_hidden_count(
    opt_outs: int, submitted: int, delivered: int, min_cell: int
) -> None:
    """R11: where a partner sees a rate, every count the shown cells allow gives that same
    rate (so it reveals no hidden count), and it is the exact rate; the reached count shown
    is true."""
    cells = suppress({"o": opt_outs, "s": submitted, "d": delivered}, [], min_cell)
    o, s, d = (bounds(cells[key], min_cell) for key in ("o", "s", "d"))
    high = None if s[1] is None or d[1] is None else s[1] + d[1]
    reached = (s[0] + d[0], high)
    shown = shown_rate(o, reached)
    if shown is not None:
        assert shown == rate(opt_outs, submitted + delivered)
        assert o[1] is not None and high is not None
        for others in itertools.product(range(o[0], o[1] + 1), (reached[0], high)):
            assert rate(*others) == shown
    text = shown_bounds(reached, min_cell)
    if isinstance(text, int):
        assert text == submitted + delivered
    elif text.startswith(">="):
        assert submitted + delivered >= int(text.split()[1])
    else:
        assert submitted + delivered < int(text.split()[1])
