"""Campaign reports: counts by delivery state and suppression reason, progress, and survey
results — counts only, never a number (R11).

A report is a frozen :class:`CampaignReport` holding real datetimes, built from aggregate
rows (one query over the deliveries, one for a survey; never a row per recipient). The API
renders it with :func:`report_json`, the one place that knows the JSON shape of DESIGN.md's
``GET /api/v1/campaigns/{id}`` (fields may be added there, never renamed); the CLI and the
console read the dataclass itself. Survey results have their own query
(:func:`survey_report`), so the CSV export reads no delivery.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaigns.languages import pick_language
from campaigns.models import Campaign, DeliveryTally, Survey, SurveyCounts
from campaigns.repository import CampaignRepository
from campaigns.templates import preview
from dispatcher.kernel.states import DeliveryState, SuppressionReason, SurveySessionState

#: Throughput is measured over the submits of this last stretch of time.
THROUGHPUT_WINDOW = timedelta(minutes=5)
#: Delivery states still to be sent or waiting for the SMSC's answer.
PENDING = frozenset({DeliveryState.QUEUED, DeliveryState.CLAIMED, DeliveryState.IN_FLIGHT})


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    """A campaign's recipients by delivery state and by suppression reason; every state and
    every reason is a key (zero when none)."""

    states: Mapping[DeliveryState, int]
    suppressed: Mapping[SuppressionReason, int]

    @classmethod
    def of(
        cls, states: Mapping[str, int], suppressed: Mapping[str, int] | None = None
    ) -> DeliveryCounts:
        """From counts keyed by state (and reason) name; those missing count zero."""
        reasons = suppressed or {}
        return cls(
            {state: states.get(state, 0) for state in DeliveryState},
            {reason: reasons.get(reason, 0) for reason in SuppressionReason},
        )

    @property
    def total(self) -> int:
        return sum(self.states.values())

    @property
    def remaining(self) -> int:
        """Recipients queued, claimed or in flight."""
        return sum(self.states[state] for state in PENDING)

    @property
    def done(self) -> int:
        return self.total - self.remaining

    @property
    def percent(self) -> float:
        """The done share in percent, one decimal (0.0 without recipients)."""
        return round(100.0 * self.done / self.total, 1) if self.total else 0.0


@dataclass(frozen=True, slots=True)
class Progress:
    """Submits: their rate over the last :data:`THROUGHPUT_WINDOW` (per second, two
    decimals), when what remains is done at that rate, and the first and last submit."""

    throughput_per_s: float
    estimated_completion: datetime | None
    first_submitted_at: datetime | None
    last_submitted_at: datetime | None


@dataclass(frozen=True, slots=True)
class OptionResult:
    """A survey option: its number, its text per language and how often it was chosen."""

    no: int
    texts: Mapping[str, str]
    count: int


@dataclass(frozen=True, slots=True)
class QuestionResult:
    """A survey question: its number, its text per language and its options' counts."""

    no: int
    texts: Mapping[str, str]
    options: tuple[OptionResult, ...]

    @property
    def answers(self) -> int:
        return sum(option.count for option in self.options)


@dataclass(frozen=True, slots=True)
class SurveyResults:
    """Sessions per state (every state a key) and the answer counts of every option."""

    sessions: Mapping[SurveySessionState, int]
    questions: tuple[QuestionResult, ...]

    @classmethod
    def of(cls, survey: Survey, counts: SurveyCounts) -> SurveyResults:
        questions = tuple(
            QuestionResult(
                q_no,
                question["texts"],
                tuple(
                    OptionResult(o_no, option, counts.answers.get((q_no, o_no), 0))
                    for o_no, option in enumerate(question["options"], 1)
                ),
            )
            for q_no, question in enumerate(survey.questions, 1)
        )
        sessions = {state: counts.sessions.get(state, 0) for state in SurveySessionState}
        return cls(sessions, questions)


@dataclass(frozen=True, slots=True)
class CampaignReport:
    """``GET /api/v1/campaigns/{id}``: the campaign, its counts, progress and survey results
    (None for an info campaign)."""

    campaign: Campaign
    counts: DeliveryCounts
    progress: Progress
    survey: SurveyResults | None


async def campaign_report(
    repository: CampaignRepository, campaign: Campaign, now: datetime
) -> CampaignReport:
    """The report of ``campaign`` as of ``now`` (the end of the throughput window)."""
    tallies = await repository.delivery_counts(campaign.id, now - THROUGHPUT_WINDOW)
    counts, progress = delivery_summary(tallies, now)
    return CampaignReport(campaign, counts, progress, await survey_report(repository, campaign.id))


async def survey_report(repository: CampaignRepository, campaign_id: int) -> SurveyResults | None:
    """The campaign's survey results, None when it has no survey; reads no delivery."""
    survey = await repository.get_survey(campaign_id)
    if survey is None:
        return None
    return SurveyResults.of(survey, await repository.survey_counts(survey.id))


def delivery_summary(
    tallies: Iterable[DeliveryTally], now: datetime
) -> tuple[DeliveryCounts, Progress]:
    """Counts by state and reason, and the progress of submits, from the grouped rows."""
    states = dict.fromkeys(DeliveryState, 0)
    suppressed = dict.fromkeys(SuppressionReason, 0)
    recent = 0
    firsts: list[datetime] = []
    lasts: list[datetime] = []
    for tally in tallies:
        states[tally.state] += tally.n
        if tally.suppressed is not None:
            suppressed[tally.suppressed] += tally.n
        recent += tally.recent
        if tally.first_submitted is not None:
            firsts.append(tally.first_submitted)
        if tally.last_submitted is not None:
            lasts.append(tally.last_submitted)
    counts = DeliveryCounts(states, suppressed)
    rate = recent / THROUGHPUT_WINDOW.total_seconds()
    remaining = counts.remaining
    eta = now + timedelta(seconds=remaining / rate) if rate > 0 and remaining else None
    progress = Progress(round(rate, 2), eta, min(firsts, default=None), max(lasts, default=None))
    return counts, progress


# ---------------------------------------------------------------- rendering


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def campaign_view(campaign: Campaign) -> dict[str, Any]:
    """The campaign's own fields as JSON, with the encoding and part count of each text."""
    return {
        "id": campaign.id,
        "name": campaign.name,
        "partner": campaign.partner,
        "kind": campaign.kind.value,
        "scope": campaign.scope.value,
        "state": campaign.state.value,
        "priority": campaign.priority,
        "apply_caps": campaign.apply_caps,
        "texts": campaign.texts,
        "variables": campaign.variables,
        "preview": preview(campaign.texts),
        "segment": campaign.segment,
        "start_at": _iso(campaign.start_at),
        "end_at": _iso(campaign.end_at),
        "created_by": campaign.created_by,
        "created_at": _iso(campaign.created_at),
        "started_at": _iso(campaign.started_at),
        "finished_at": _iso(campaign.finished_at),
    }


def report_json(report: CampaignReport) -> dict[str, Any]:
    """The report as the API's JSON: the campaign's fields, then total, states, suppressed,
    progress and survey (DESIGN.md, HTTP contract)."""
    counts, progress = report.counts, report.progress
    return {
        **campaign_view(report.campaign),
        "total": counts.total,
        "states": {state.value: n for state, n in counts.states.items()},
        "suppressed": {reason.value: n for reason, n in counts.suppressed.items()},
        "progress": {
            "done": counts.done,
            "remaining": counts.remaining,
            "percent": counts.percent,
            "throughput_per_s": progress.throughput_per_s,
            "throughput_window_s": int(THROUGHPUT_WINDOW.total_seconds()),
            "estimated_completion": _iso(progress.estimated_completion),
            "first_submitted_at": _iso(progress.first_submitted_at),
            "last_submitted_at": _iso(progress.last_submitted_at),
        },
        "survey": None if report.survey is None else survey_json(report.survey),
    }


def survey_json(results: SurveyResults) -> dict[str, Any]:
    """Survey results as JSON: sessions per state, per question its options' counts."""
    return {
        "sessions": {state.value: n for state, n in results.sessions.items()},
        "questions": [
            {
                "no": question.no,
                "texts": dict(question.texts),
                "answers": question.answers,
                "options": [
                    {"no": option.no, "texts": dict(option.texts), "count": option.count}
                    for option in question.options
                ],
            }
            for question in results.questions
        ],
    }


def in_language(texts: Mapping[str, str], language: str | None) -> str:
    """A survey text in ``language``, else in its first language (R14, pick_language)."""
    return texts[pick_language(texts, language)]


def results_csv(results: SurveyResults, language: str) -> str:
    """The survey results as CSV: question, option and count per line (no numbers, R11)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["question_no", "question", "option_no", "option", "count"])
    for question in results.questions:
        q_text = in_language(question.texts, language)
        for option in question.options:
            writer.writerow(
                [question.no, q_text, option.no, in_language(option.texts, language), option.count]
            )
    return out.getvalue()
