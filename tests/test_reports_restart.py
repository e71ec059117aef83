"""Reports stay truthful across an SMSC restart (issue 14: "DELIVERED 0" beside 242 answers).

An SMSC that restarts numbers its message ids from 1 again, so a campaign sent after the
restart to the same list in the same order gets the very ids the earlier campaign's
messages had — each subscriber the same id as before. A receipt that beats its
submit_sm_resp (a fast SMSC; the applier runs on its own) then found only the subscriber's
finished message under that id and was settled as its repeat: the new campaign's messages
never got their receipts. Real PostgreSQL, real SMPP over 127.0.0.1 against the simulator,
the report read over real HTTP.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from zoneinfo import ZoneInfo

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings
from tests.dispatch_helpers import Rig, add_campaign, dispatch_rig
from tests.factories import campaign_from_spec, members
from tests.test_console import sign_in
from tests.test_dispatch_survey import SURVEY
from tests.test_receipt_matching import restart_smsc
from tests.web_helpers import running_api

NUMBERS = [f"7702{n:07d}" for n in range(1, 13)]


async def _send_with_receipts_first(rig: Rig, count: int, receipts_before: int) -> None:
    """One dispatch pass whose submit_sm_resp are held until every receipt of the pass was
    committed and the applier has run: the receipts beat their responses."""
    rig.sim.options.hold_responses = True
    sending = asyncio.create_task(rig.dispatcher.run_once())
    await rig.sim.wait_for(lambda: len(rig.sim._held) == count)
    await rig.receipts_settled(receipts_before + count)
    rig.sim.options.hold_responses = False
    rig.sim.release_held()
    await sending
    await rig.drain()


async def test_receipts_that_beat_their_response_after_a_restart_reach_the_new_campaign(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """A survey after an SMSC restart that gives every subscriber the id their earlier
    message had: receipts arriving before the responses are not taken for repeats of the
    finished messages; the report shows every message delivered beside the answers."""
    await members(database, NUMBERS)
    earlier = await add_campaign(database, NUMBERS)
    async with dispatch_rig(database, settings, clock) as rig:
        await rig.drain()
        await rig.receipts_settled(len(NUMBERS))
        assert await rig.states(earlier) == {"delivered": len(NUMBERS)}
        await restart_smsc(rig)
        clock.advance(timedelta(minutes=1))
        survey = await campaign_from_spec(database, SURVEY, NUMBERS, clock.now())
        await _send_with_receipts_first(rig, len(NUMBERS), len(NUMBERS))
        reused = await database.pool.fetchval(
            "SELECT count(*) FROM submits a JOIN submits b ON a.message_id = b.message_id "
            "AND a.msisdn = b.msisdn AND a.id < b.id"
        )
        assert reused == len(NUMBERS)  # the scenario: each number's id given again
        for number in NUMBERS:
            await rig.sim.inject_mo(number, settings.short_code, "1")
        clock.advance(timedelta(seconds=settings.receipts_recheck))
        await rig.apply_receipts()
        assert await rig.states(survey) == {"delivered": len(NUMBERS)}
        assert await rig.states(earlier) == {"delivered": len(NUMBERS)}
    async with running_api(settings, clock, database) as api:
        response = await api.client.get(f"/api/v1/campaigns/{survey}", headers=api.auth(Role.ADMIN))
        report = await response.json()
    assert report["states"]["delivered"] == len(NUMBERS)
    assert report["survey"]["respondents"] == len(NUMBERS)
    assert report["answered_without_receipt"] == 0


async def test_a_true_repeat_of_a_finished_receipt_still_settles(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """The SMSC's repeat of a receipt already applied (no new message under its id) settles
    as that repeat at the next look and changes nothing."""
    await members(database, NUMBERS[:3])
    campaign = await add_campaign(database, NUMBERS[:3])
    async with dispatch_rig(
        database, settings, clock, sim_options={"duplicate_receipts": True}
    ) as rig:
        await rig.drain()
        await rig.receipts_settled(6)
        clock.advance(timedelta(seconds=settings.receipts_recheck))
        await rig.apply_receipts()
        assert await rig.states(campaign) == {"delivered": 3}
    waiting = await database.pool.fetchval("SELECT count(*) FROM receipts WHERE applied_at IS NULL")
    assert waiting == 0
    assert await database.pool.fetchval("SELECT sum(parts_done) FROM deliveries") == 3


async def test_answers_beyond_the_delivered_count_are_explained(
    database: Database, settings: Settings, clock: ManualClock
) -> None:
    """Receipts lost (an SMSC that restarted without its store): the subscribers' answers
    prove more messages arrived than receipts say; the report and the console page say so
    instead of showing "delivered 0" alone."""
    await members(database, NUMBERS[:6])
    survey = await campaign_from_spec(database, SURVEY, NUMBERS[:6], clock.now())
    async with dispatch_rig(database, settings, clock, sim_options={"receipts": False}) as rig:
        await rig.drain()
        for number in NUMBERS[:6]:
            await rig.sim.inject_mo(number, settings.short_code, "1")
    async with running_api(settings, clock, database) as api:
        response = await api.client.get(f"/api/v1/campaigns/{survey}", headers=api.auth(Role.ADMIN))
        report = await response.json()
        await sign_in(api, Role.ADMIN)
        page = await (await api.client.get(f"/console/campaigns/{survey}")).text()
    assert report["states"]["delivered"] == 0
    assert report["survey"]["respondents"] == 6
    assert report["answered_without_receipt"] == 6
    assert 'id="receipts-missing"' in page
    assert "6 recipients answered the survey although their message has no delivered" in page


def test_cli_status_says_answers_outnumber_receipts() -> None:
    """`smartd campaign status`: three answered, none with a delivered receipt — the answer
    rate and the missing receipts are printed beside the counts."""
    from rich.console import Console

    from campaigns.models import SurveyCounts
    from campaigns.reports import CampaignReport, SurveyResults, delivery_summary
    from dispatcher.cli_campaign import _render
    from dispatcher.kernel.states import DeliveryState, SurveySessionState
    from dispatcher.policy.status import CampaignStatus, Phrase, Reason
    from tests.test_reports import NOW, SURVEY, _campaign, _tally

    counts, progress = delivery_summary([_tally(DeliveryState.SUBMITTED, 3)], NOW)
    answers = SurveyCounts({(1, 1): 3}, {SurveySessionState.COMPLETED: 3})
    report = CampaignReport(_campaign(), counts, progress, SurveyResults.of(SURVEY, answers))
    status = CampaignStatus(Phrase.SENT, Reason.WAITING_FOR_RECEIPTS, "Sent — waiting")
    console = Console(record=True, width=200)
    console.print(_render(report, status, ZoneInfo("Asia/Almaty")))
    text = console.export_text()
    assert "answered: 3 of 3 surveys sent (100.0%)" in text
    assert "at least 3 answered without a delivered receipt" in text
