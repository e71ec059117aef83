"""The issue 11 edges as fixed runs of the model-based test: each is the short sequence of
rules that exposed one (as Hypothesis printed it, or its shape), replayed on the real engine
with every invariant of tests/model_invariants.py checked after each step. They failed on
the code the issue was filed against; each names the invariant that caught it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.model_invariants import ModelInvariants
from tests.model_rig import World
from tests.test_engine_model import EngineModel, model_settings

A, B, C = "77015550001", "77015550002", "77015550003"

#: name -> the steps (rule, arguments); the comment names the invariant that failed.
EDGES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    # nothing_written_outside_the_window: parts claimed at 20:59:59 written at 21:00
    "window-closes-mid-pass": [
        ("campaign_start", {"kind": "info_long", "audience": {A, B}}),
        ("window_closes_while_sending", {}),
    ],
    # delivered_only_when_every_part_is: one throttled part, the message still delivered
    "throttled-part-of-a-long-message": [
        ("campaign_start", {"kind": "info_long", "audience": {A}}),
        ("throttle_storm", {"k": 1}),
    ],
    # refused_part_retried: the throttled part is never sent again
    "throttled-part-retried": [
        ("campaign_start", {"kind": "info_long", "audience": {A}}),
        ("throttle_storm", {"k": 1}),
        ("retry_time_passes", {}),
    ],
    # validity_refusal_requeued: ESME_RINVEXPIRY made the message failed
    "validity-refused": [
        ("campaign_start", {"kind": "info", "audience": {A}}),
        ("validity_refused", {}),
    ],
    # no_acknowledged_mo_lost: the same words twice, the second taken for a resend
    "identical-mo-twice": [("identical_mo_twice", {"n": A, "umr": None})],
    # membership_as_the_model_says: STOP with a user_message_reference an earlier MO had
    "stop-with-a-reused-reference": [
        ("mo_help", {"n": A, "umr": 1}),
        ("mo_stop", {"n": A, "umr": 1}),
    ],
    # every_distinct_reply_applied_once: "1" then "1" again to a two-question survey
    "survey-answered-1-twice": [
        ("campaign_start", {"kind": "survey", "audience": {A}}),
        ("dispatch", {}),
        ("survey_reply", {"n": A, "answer": "1"}),
        ("dispatch", {}),
        ("survey_reply", {"n": A, "answer": "1"}),
    ],
    # reply_before_session_opened_applied
    "reply-before-the-session-opened": [("survey_reply_racing_the_record", {"n": A})],
    # receipt_in_another_id_format_matched: hex in the receipt, decimal in the response
    "receipt-in-another-id-format": [
        ("receipts_mode", {"mode": "other_format"}),
        ("campaign_start", {"kind": "info", "audience": {A}}),
        ("dispatch", {}),
    ],
    # receipt_after_id_reuse_applied_to_the_new_part: the SMSC restarts, ids from 1 again
    "smsc-restart-reuses-ids": [
        ("campaign_start", {"kind": "info", "audience": {A}}),
        ("dispatch", {}),
        ("smsc_restart", {}),
        ("campaign_start", {"kind": "info", "audience": {B}}),
        ("dispatch", {}),
    ],
    # holds on the code the issue was filed against (kept as a regression guard)
    "crash-mid-pass-and-recovery": [
        ("campaign_start", {"kind": "info_long", "audience": {A, B, C}}),
        ("engine_crash", {}),
        ("dispatch", {}),
        ("receipts_mode", {"mode": "twice"}),
        ("campaign_start", {"kind": "info", "audience": {A, B}}),
        ("dispatch", {}),
    ],
}

#: Edges whose checks would hold vacuously if the witness saw nothing: what must have
#: happened by the end (receipts in the other form, or for a reused id, acknowledged).
WITNESSES = {
    "receipt-in-another-id-format": lambda m: any(
        p.other_format and m.sim.acknowledged.count(p.body) for p in m.sim.plans
    ),
    "smsc-restart-reuses-ids": lambda m: any(
        p.reused and m.sim.acknowledged.count(p.body) for p in m.sim.plans
    ),
}

INVARIANTS = [
    name
    for name, value in vars(ModelInvariants).items()
    if getattr(value, "hypothesis_stateful_invariant", None) is not None
]


@pytest.mark.parametrize("edge", list(EDGES))
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_issue_11_edge(database_url: str, tmp_path: Path, edge: str) -> None:
    """One edge of issue 11, replayed on the engine: every invariant holds after each step."""
    with asyncio.Runner() as runner:
        world = runner.run(World.open(database_url))
        EngineModel.world = world
        EngineModel.runner = runner
        EngineModel.settings = model_settings(tmp_path, database_url)
        machine = EngineModel()
        try:
            for rule, arguments in EDGES[edge]:
                getattr(machine, rule)(**arguments)
                for name in INVARIANTS:
                    getattr(machine, name)()
            if edge in WITNESSES:
                assert WITNESSES[edge](machine), f"{edge}: the witness saw nothing to check"
        finally:
            machine.teardown()
            runner.run(world.close())
