"""The invariants of the model-based engine test (tests/test_engine_model.py), checked after
every step: DESIGN.md invariants 1-4 and 7 and the issue 11 edges, each a named check.

Each compares the SMSC simulator's own record (what it took, when by the service's clock,
which receipts and MO the service acknowledged) or the database with the reference model.
``SMARTD_MODEL_SKIP`` (comma-separated names) turns named checks off, e.g. to see what else
a run finds while the fix for one is not yet merged; it is empty in the suite.
"""

from __future__ import annotations

import collections
import functools
import os
from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Any, TypeVar

from hypothesis.stateful import invariant

from dispatcher.settings import Settings
from smpp.constants import Status
from tests.model_rig import ENGINE_WINDOW, ModelSimulator, ReceiptPlan, Written

SKIP = frozenset(filter(None, os.environ.get("SMARTD_MODEL_SKIP", "").split(",")))

M = TypeVar("M", bound="ModelInvariants")


def unless_skipped(check: Callable[[M], None]) -> Callable[[M], None]:
    """The invariant ``check``, a no-op when its name is in SMARTD_MODEL_SKIP."""

    @functools.wraps(check)
    def run(machine: M) -> None:
        if check.__name__ not in SKIP:
            check(machine)

    return run


class ModelInvariants:
    """The checks, mixed into the state machine, which provides what is declared here."""

    sim: ModelSimulator
    settings: Settings
    member: dict[str, bool]
    tag_kind: dict[str, str]
    checked: int
    crashes: int
    retried_by: datetime | None
    clock: Any
    loop_errors: list[str]

    @property
    def pool(self) -> Any:
        raise NotImplementedError

    def run(self, coro: Any) -> Any:
        raise NotImplementedError

    def _local(self, at: datetime) -> datetime:
        return at.astimezone(self.settings.calendar.zone)

    def _at_local(self, day: datetime, hour: int, minute: int, second: int) -> datetime:
        """``hour:minute:second`` Astana time on ``day``'s local date, in UTC."""
        zone = self.settings.calendar.zone
        local = datetime.combine(day.date(), time(hour, minute, second), tzinfo=zone)
        return local.astimezone(UTC)

    def _partner(self, start: int = 0) -> list[tuple[Written, str]]:
        """Every partner submit the SMSC received (from the ``start``-th submit on), with
        its campaign's tag: a part of a long message is known by its concatenation
        reference (the tag is in its first part)."""
        tags: dict[tuple[str, int], str] = {}
        out = []
        for index, w in enumerate(self.sim.written):
            tag = w.text.split(" ", 1)[0]
            udh = w.udh
            if udh is not None and udh[2] == 1 and tag in self.tag_kind:
                tags[(w.sm.destination_addr, udh[0])] = tag
            elif udh is not None:
                tag = tags.get((w.sm.destination_addr, udh[0]), "")
            if tag in self.tag_kind and index >= start:
                out.append((w, tag))
        return out

    @invariant()
    @unless_skipped
    def nothing_written_outside_the_window(self) -> None:
        """Invariant 3 / R8: no partner part written at or after the close or before 10:00
        (by the service's clock)."""
        calendar = self.settings.calendar
        late = [
            (w.sm.destination_addr, w.at) for w, _ in self._partner() if not calendar.is_open(w.at)
        ]
        assert not late, f"nothing_written_outside_the_window: {late[:3]}"

    @invariant()
    @unless_skipped
    def nothing_sent_to_a_number_that_left(self) -> None:
        """Invariant 3 / R2 / R9: partner writes only to members (as the model says)."""
        fresh = [w for w, _ in self._partner(start=self.checked)]
        self.checked = len(self.sim.written)
        wrong = [w.sm.destination_addr for w in fresh if not self.member[w.sm.destination_addr]]
        assert not wrong, f"nothing_sent_to_a_number_that_left: {wrong}"

    @invariant()
    @unless_skipped
    def no_recipient_gets_a_campaign_twice(self) -> None:
        """Invariant 2: one copy of a campaign per number (a refused part retried is the same
        copy; a second reference or a part taken twice is a second copy)."""
        taken = {(w.connection, w.sequence) for w in self.sim.taken()}
        copies: dict[tuple[str, str], set[object]] = collections.defaultdict(set)
        parts: collections.Counter[tuple[str, str, object, int]] = collections.Counter()
        for w, tag in self._partner():
            if (w.connection, w.sequence) not in taken:
                continue
            udh = w.udh
            copy = udh[0] if udh else (w.connection, w.sequence)
            copies[(w.sm.destination_addr, tag)].add(copy)
            parts[(w.sm.destination_addr, tag, copy, udh[2] if udh else 1)] += 1
        twice = [k for k, v in copies.items() if len(v) > 1] + [
            k for k, n in parts.items() if n > 1
        ]
        assert not twice, f"no_recipient_gets_a_campaign_twice: {twice[:3]}"

    @invariant()
    @unless_skipped
    def caps_never_passed(self) -> None:
        """Invariant 1: per number and month, at most INFO_CAP partner messages and
        SURVEY_CAP surveys taken by the SMSC."""
        taken = {(w.connection, w.sequence) for w in self.sim.taken()}
        caps = self.settings
        month: dict[tuple[str, str, str], set[str]] = collections.defaultdict(set)
        for w, tag in self._partner():
            if (w.connection, w.sequence) in taken:
                key = (
                    w.sm.destination_addr,
                    self._local(w.at).strftime("%Y-%m"),
                    self.tag_kind[tag],
                )
                month[key].add(tag)
        over = [
            k
            for k, tags in month.items()
            if len(tags) > (caps.info_cap if k[2] == "info" else caps.survey_cap)
        ]
        assert not over, f"caps_never_passed: {over}"

    @invariant()
    @unless_skipped
    def unknowns_within_one_window_per_crash(self) -> None:
        """Invariant 2: at most one SMPP window of messages of unknown fate per crash."""
        unknown = self.run(
            self.pool.fetchval("SELECT count(*) FROM deliveries WHERE state = 'unknown'")
        )
        assert unknown <= self.crashes * ENGINE_WINDOW, (
            f"unknowns_within_one_window_per_crash: {unknown} after {self.crashes} crash(es)"
        )

    @invariant()
    @unless_skipped
    def membership_as_the_model_says(self) -> None:
        """R1 / R2 / R9: every join, leave, STOP and 1204 applied (none taken for a repeat)."""
        rows = self.run(self.pool.fetch("SELECT msisdn FROM memberships WHERE left_at IS NULL"))
        actual = {r["msisdn"] for r in rows}
        expected = {n for n, m in self.member.items() if m}
        assert actual == expected, f"membership_as_the_model_says: {actual} != {expected}"

    @invariant()
    @unless_skipped
    def no_acknowledged_mo_lost(self) -> None:
        """Invariant 4: every MO the service acknowledged is recorded and handled, as a
        message of its own (identical texts and reused references included)."""
        acked = len(self.sim.acked_mo())
        recorded, handled = self.run(
            self.pool.fetchrow("SELECT count(*), count(handled_at) FROM mo_messages")
        )
        assert (recorded, handled) == (acked, acked), (
            f"no_acknowledged_mo_lost: {acked} acknowledged, {recorded} recorded, {handled} handled"
        )

    def _receipts_not_applied(self) -> list[ReceiptPlan]:
        """Acknowledged delivered receipts (since the last crash) that did not reach the part
        they name: the submit the SMSC answered with that id, for that number."""
        acked = collections.Counter(self.sim.acknowledged)
        plans = [
            p
            for p in self.sim.plans
            if p.epoch == self.sim.epoch and acked[p.body] and p.stat == "DELIVRD"
        ]
        if not plans:
            return []
        rows = self.run(
            self.pool.fetch(
                "SELECT msisdn, message_id, count(*) AS c FROM submits "
                "WHERE receipt = 'delivered' GROUP BY 1, 2"
            )
        )
        applied = collections.Counter({(r["msisdn"], r["message_id"]): r["c"] for r in rows})
        missing = []
        for p in plans:
            key = (p.destination, p.response_id)
            if applied[key] > 0:
                applied[key] -= 1
            else:
                missing.append(p)
        return missing

    @invariant()
    @unless_skipped
    def no_error_in_a_background_callback(self) -> None:
        """The rig itself: no exception went unobserved on the event loop (a simulator that
        cannot build its receipts would otherwise leave every receipt check vacuous)."""
        assert not self.loop_errors, f"no_error_in_a_background_callback: {self.loop_errors[:3]}"

    @invariant()
    @unless_skipped
    def no_acknowledged_receipt_lost(self) -> None:
        """Invariant 4: every receipt acknowledged is stored and reaches its part."""
        acked = self.sim.acked_receipt_ids()
        stored = self.run(self.pool.fetchval("SELECT count(DISTINCT message_id) FROM receipts"))
        assert stored >= len(acked), f"no_acknowledged_receipt_lost: {len(acked)} > {stored}"
        missing = [p for p in self._receipts_not_applied() if not (p.other_format or p.reused)]
        assert not missing, (
            "no_acknowledged_receipt_lost: not applied to its part: "
            f"{[(p.destination, p.response_id) for p in missing[:3]]}"
        )

    @invariant()
    @unless_skipped
    def receipt_in_another_id_format_matched(self) -> None:
        """Issue 11: a receipt naming the id in another form (hex for decimal) is matched."""
        missing = [p for p in self._receipts_not_applied() if p.other_format and not p.reused]
        assert not missing, (
            "receipt_in_another_id_format_matched: "
            f"{[(p.destination, p.response_id) for p in missing[:3]]}"
        )

    @invariant()
    @unless_skipped
    def receipt_after_id_reuse_applied_to_the_new_part(self) -> None:
        """Issue 11: after an SMSC restart that reuses ids, a new submit is recorded and its
        receipt reaches it (not the finished message that held the id before)."""
        missing = [p for p in self._receipts_not_applied() if p.reused]
        assert not missing, (
            "receipt_after_id_reuse_applied_to_the_new_part: "
            f"{[(p.destination, p.response_id) for p in missing[:3]]}"
        )

    @invariant()
    @unless_skipped
    def refused_part_retried(self) -> None:
        """Invariant 7 / R14: once retry time has passed (retry_time_passes), no message sent
        today is left with a part the SMSC never accepted."""
        if self.retried_by is None or self.retried_by != self.clock.now():
            return
        local = self._local(self.clock.now())
        day_start = self._at_local(local, 0, 0, 0)
        rows = self.run(
            self.pool.fetch(
                "SELECT d.id, max(s.parts) AS parts, count(DISTINCT s.part_no) AS accepted "
                "FROM deliveries d JOIN submits s ON s.delivery_id = d.id "
                "WHERE d.state IN ('submitted', 'delivered') AND d.submitted_at >= $1 "
                "GROUP BY d.id HAVING count(DISTINCT s.part_no) < max(s.parts)",
                day_start,
            )
        )
        assert not rows, f"refused_part_retried: {[tuple(r) for r in rows[:3]]}"

    @invariant()
    @unless_skipped
    def validity_refusal_requeued(self) -> None:
        """R8: an SMSC refusal of the validity re-queues the message, never fails it."""
        failed = self.run(
            self.pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE state = 'failed' AND last_status = $1",
                int(Status.ESME_RINVEXPIRY),
            )
        )
        assert failed == 0, f"validity_refusal_requeued: {failed} failed on ESME_RINVEXPIRY"

    @invariant()
    @unless_skipped
    def delivered_only_when_every_part_is(self) -> None:
        """Invariant 7 / R14: a message is `delivered` only with a delivered receipt for
        every one of its parts."""
        bad = self.run(
            self.pool.fetch(
                "SELECT 'delivery' AS t, d.id, max(s.parts) AS parts, count(DISTINCT s.part_no) "
                "FILTER (WHERE s.receipt = 'delivered') AS done FROM deliveries d "
                "JOIN submits s ON s.delivery_id = d.id WHERE d.state = 'delivered' "
                "GROUP BY d.id HAVING count(DISTINCT s.part_no) "
                "FILTER (WHERE s.receipt = 'delivered') < max(s.parts) "
                "UNION ALL "
                "SELECT 'service', m.id, max(s.parts), count(DISTINCT s.part_no) "
                "FILTER (WHERE s.receipt = 'delivered') FROM service_messages m "
                "JOIN submits s ON s.service_message_id = m.id WHERE m.state = 'delivered' "
                "GROUP BY m.id HAVING count(DISTINCT s.part_no) "
                "FILTER (WHERE s.receipt = 'delivered') < max(s.parts)"
            )
        )
        assert not bad, f"delivered_only_when_every_part_is: {[tuple(r) for r in bad[:3]]}"
