"""The typed campaign report: counts, progress with real datetimes, survey results, the
DESIGN.md JSON shape rendered in one place, and the survey query that reads no delivery."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from campaigns.models import Campaign, DeliveryTally, Survey, SurveyCounts
from campaigns.reports import (
    CampaignReport,
    DeliveryCounts,
    SurveyResults,
    delivery_summary,
    report_json,
    results_csv,
    survey_report,
)
from campaigns.repository import CampaignRepository
from campaigns.spec import parse_campaign
from dispatcher.db import Database
from dispatcher.kernel.states import (
    CampaignScope,
    CampaignState,
    ContactKind,
    DeliveryState,
    SuppressionReason,
    SurveySessionState,
)
from tests.factories import survey_answer
from tests.test_campaign_support import survey_payload

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
#: The delivery states of DESIGN.md's HTTP contract, in its order.
CONTRACT_STATES = [
    "queued",
    "claimed",
    "in_flight",
    "submitted",
    "delivered",
    "undelivered",
    "expired",
    "failed",
    "unknown",
    "suppressed",
]
QUESTIONS = [
    {"texts": {"ru": "Довольны?", "en": "Happy?"}, "options": [{"ru": "Да", "en": "Yes"}]},
    {
        "texts": {"ru": "Ещё?", "en": "More?"},
        "options": [{"ru": "Да", "en": "Yes"}, {"ru": "Нет", "en": "No"}],
    },
]


def _campaign(kind: ContactKind = ContactKind.SURVEY) -> Campaign:
    return Campaign(
        id=7,
        name="Satisfaction",
        partner="",
        kind=kind,
        scope=CampaignScope.SMART,
        state=CampaignState.RUNNING,
        texts={"ru": "Привет", "en": "Hi"},
        variables=[],
        priority=0,
        apply_caps=True,
        start_at=None,
        end_at=None,
        segment=None,
        created_by="cli",
        created_at=NOW - timedelta(hours=1),
        started_at=NOW - timedelta(minutes=30),
        finished_at=None,
    )


def _tally(
    state: DeliveryState,
    n: int,
    suppressed: SuppressionReason | None = None,
    recent: int = 0,
    first: datetime | None = None,
    last: datetime | None = None,
) -> DeliveryTally:
    return DeliveryTally(state, suppressed, n, recent, first, last)


TALLIES = [
    _tally(DeliveryState.QUEUED, 6),
    _tally(
        DeliveryState.DELIVERED,
        3,
        recent=3,
        first=NOW - timedelta(minutes=2),
        last=NOW - timedelta(seconds=30),
    ),
    _tally(
        DeliveryState.SUBMITTED,
        1,
        first=NOW - timedelta(hours=1),
        last=NOW - timedelta(hours=1),
    ),
    _tally(DeliveryState.SUPPRESSED, 2, suppressed=SuppressionReason.DNC),
    _tally(DeliveryState.SUPPRESSED, 1, suppressed=SuppressionReason.CAP_INFO),
]
SURVEY = Survey(1, 7, QUESTIONS, {"ru": "Спасибо", "en": "Thanks"}, timedelta(hours=24))
COUNTS = SurveyCounts({(1, 1): 2, (2, 2): 1}, {SurveySessionState.COMPLETED: 1})


def test_delivery_summary_counts_every_state_and_reason() -> None:
    """Every state and reason is counted (zeros included); done, remaining and percent
    follow from the pending states."""
    counts, _ = delivery_summary(TALLIES, NOW)
    assert list(counts.states) == list(DeliveryState)
    assert list(counts.suppressed) == list(SuppressionReason)
    assert counts.states[DeliveryState.SUPPRESSED] == 3
    assert counts.suppressed[SuppressionReason.DNC] == 2
    assert (counts.total, counts.remaining, counts.done, counts.percent) == (13, 6, 7, 53.8)
    assert DeliveryCounts.of({}).percent == 0.0


def test_progress_holds_datetimes() -> None:
    """Throughput over the last five minutes, the completion it predicts, and the first and
    last submit are real datetimes."""
    _, progress = delivery_summary(TALLIES, NOW)
    assert progress.throughput_per_s == 0.01  # 3 submits in 300 s
    assert progress.estimated_completion == NOW + timedelta(seconds=600)  # 6 left at 0.01/s
    assert progress.first_submitted_at == NOW - timedelta(hours=1)
    assert progress.last_submitted_at == NOW - timedelta(seconds=30)
    _, idle = delivery_summary([_tally(DeliveryState.QUEUED, 4)], NOW)
    assert idle.throughput_per_s == 0.0 and idle.estimated_completion is None
    assert idle.first_submitted_at is None and idle.last_submitted_at is None


def test_survey_results_count_every_option_and_session_state() -> None:
    """Each question lists all its options (unchosen ones at zero), each state a count."""
    results = SurveyResults.of(SURVEY, COUNTS)
    assert [[o.count for o in q.options] for q in results.questions] == [[2], [0, 1]]
    assert [q.answers for q in results.questions] == [2, 1]
    assert results.sessions == {
        SurveySessionState.OPEN: 0,
        SurveySessionState.COMPLETED: 1,
        SurveySessionState.TIMED_OUT: 0,
        SurveySessionState.CLOSED: 0,
    }


def test_report_json_keeps_the_contract_shape() -> None:
    """The API's JSON has DESIGN.md's fields and names, times as ISO 8601 strings."""
    counts, progress = delivery_summary(TALLIES, NOW)
    report = CampaignReport(_campaign(), counts, progress, SurveyResults.of(SURVEY, COUNTS))
    body = json.loads(json.dumps(report_json(report)))
    assert {"id", "name", "state", "total", "states", "suppressed", "survey"} <= set(body)
    assert (body["id"], body["name"], body["state"], body["total"]) == (
        7,
        "Satisfaction",
        "running",
        13,
    )
    assert list(body["states"]) == CONTRACT_STATES
    assert body["suppressed"]["dnc"] == 2 and body["suppressed"]["cap_info"] == 1
    assert body["progress"] == {
        "done": 7,
        "remaining": 6,
        "percent": 53.8,
        "throughput_per_s": 0.01,
        "throughput_window_s": 300,
        "estimated_completion": (NOW + timedelta(seconds=600)).isoformat(),
        "first_submitted_at": (NOW - timedelta(hours=1)).isoformat(),
        "last_submitted_at": (NOW - timedelta(seconds=30)).isoformat(),
    }
    assert body["survey"]["sessions"]["completed"] == 1
    assert body["survey"]["questions"][1] == {
        "no": 2,
        "texts": {"ru": "Ещё?", "en": "More?"},
        "answers": 1,
        "options": [
            {"no": 1, "texts": {"ru": "Да", "en": "Yes"}, "count": 0, "percent": 0.0},
            {"no": 2, "texts": {"ru": "Нет", "en": "No"}, "count": 1, "percent": 100.0},
        ],
    }
    info = CampaignReport(_campaign(ContactKind.INFO), counts, progress, None)
    assert report_json(info)["survey"] is None


def test_results_csv_in_the_asked_language_else_the_first() -> None:
    """The CSV has one line per option, in the language asked for (else the survey's
    first language), and counts only."""
    results = SurveyResults.of(SURVEY, COUNTS)
    assert results_csv(results, "en").splitlines() == [
        "question_no,question,option_no,option,count,percent",
        "1,Happy?,1,Yes,2,100.0",
        "2,More?,1,Yes,0,0.0",
        "2,More?,2,No,1,100.0",
    ]
    assert results_csv(results, "kk").splitlines()[1] == "1,Довольны?,1,Да,2,100.0"


class _NoDeliveries(CampaignRepository):
    """A real repository that refuses the delivery aggregate."""

    async def delivery_counts(self, campaign_id: int, since: datetime) -> list[DeliveryTally]:
        raise AssertionError("survey results must not read deliveries")


async def test_survey_report_reads_no_delivery(database: Database) -> None:
    """Survey results (the CSV export) come from their own query: answers and sessions."""
    repository = _NoDeliveries(database.pool)
    survey_spec = parse_campaign(survey_payload(), NOW, 10)
    campaign = await repository.create(survey_spec, "test", NOW)
    survey = await repository.get_survey(campaign.id)
    assert survey is not None
    for n, state in enumerate(("completed", "completed", "open")):
        await survey_answer(database, survey.id, f"7701123456{n}", 1 + n % 2, at=NOW, state=state)
    results = await survey_report(repository, campaign.id)
    assert results is not None
    assert [[o.count for o in q.options] for q in results.questions] == [[2, 1], [0, 0, 0]]
    assert results.sessions[SurveySessionState.COMPLETED] == 2
    assert results.sessions[SurveySessionState.OPEN] == 1
    info_spec = parse_campaign({"name": "x", "kind": "info", "texts": {"kk": "Иә"}}, NOW, 10)
    info = await repository.create(info_spec, "test", NOW)
    assert await survey_report(repository, info.id) is None


def test_estimated_completion_walks_the_send_window() -> None:
    """Issue 14: the ETA accounts for the window and spans days. At 20:55 Astana (15:55 UTC)
    with 6 messages left at 0.01/s (600 s of sending), 300 s go before the 21:00 close and
    the other 300 s the next morning from 10:00: done at 10:05 local."""
    from zoneinfo import ZoneInfo

    from dispatcher.policy.calendar import ProgramCalendar
    from dispatcher.policy.window import SendWindow

    calendar = ProgramCalendar(ZoneInfo("Asia/Almaty"), SendWindow.parse("10:00-21:00"))
    late = datetime(2026, 11, 23, 15, 55, tzinfo=UTC)
    _, progress = delivery_summary(TALLIES, late, calendar.finish_at)
    assert progress.estimated_completion == datetime(2026, 11, 24, 5, 5, tzinfo=UTC)
    _, straight = delivery_summary(TALLIES, late)
    assert straight.estimated_completion == late + timedelta(seconds=600)
