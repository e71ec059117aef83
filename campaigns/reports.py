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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaigns.csvsafe import csv_text
from campaigns.disclosure import Shown, suppress
from campaigns.languages import pick_language
from campaigns.models import Campaign, DeliveryTally, Survey, SurveyCounts
from campaigns.repository import CampaignRepository
from campaigns.templates import preview
from dispatcher.kernel.states import DeliveryState, SuppressionReason, SurveySessionState

#: Throughput is measured over the submits of this last stretch of time.
THROUGHPUT_WINDOW = timedelta(minutes=5)
#: Delivery states still to be sent or waiting for the SMSC's answer.
PENDING = frozenset({DeliveryState.QUEUED, DeliveryState.CLAIMED, DeliveryState.IN_FLIGHT})
#: A triggered campaign's "sent": the SMSC accepted the message (delivered or not yet known).
SENT = (
    DeliveryState.SUBMITTED,
    DeliveryState.DELIVERED,
    DeliveryState.UNDELIVERED,
    DeliveryState.EXPIRED,
)


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
        """The done share in percent, one decimal (0.0 without recipients), never rounded to
        100 while a recipient is left nor to 0 once one is done (issue 14: 99.96 read as
        100% beside a campaign still running)."""
        if not self.total or not self.done:
            return 0.0
        if not self.remaining:
            return 100.0
        return min(max(round(100.0 * self.done / self.total, 1), 0.1), 99.9)


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

    @property
    def sent(self) -> int:
        """Surveys sent: one session per first question the SMSC accepted (a delivery
        receipt is not needed: receipts can be lost, answers prove the arrival anyway)."""
        return sum(self.sessions.values())

    @property
    def respondents(self) -> int:
        """Recipients who answered at least once: the answers to question 1 (one per
        session; every later question follows an answer to it)."""
        return self.questions[0].answers if self.questions else 0

    @property
    def languages(self) -> tuple[str, ...]:
        """The survey's own languages, in the console's order (kk, ru, en)."""
        own = self.questions[0].texts if self.questions else {}
        return tuple(lang for lang in ("kk", "ru", "en") if lang in own)

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

    @property
    def answered_without_receipt(self) -> int | None:
        """At least this many recipients answered the survey although their message has no
        delivered receipt (receipts lost, e.g. by an SMSC restart without its store): the
        respondents beyond the delivered count; None for an info campaign."""
        if self.survey is None:
            return None
        return max(0, self.survey.respondents - self.counts.states[DeliveryState.DELIVERED])


#: When ``n`` messages written at ``rate`` per second from ``start`` are done: the service
#: passes its send calendar's (``ProgramCalendar.finish_at``, which walks the open window
#: across days); without one, straight on.
Finish = Callable[[datetime, int, float], datetime]


def straight_on(start: datetime, messages: int, rate_per_second: float) -> datetime:
    """``messages`` at ``rate_per_second`` from ``start``, with no hour closed."""
    return start + timedelta(seconds=messages / rate_per_second)


async def campaign_report(
    repository: CampaignRepository,
    campaign: Campaign,
    now: datetime,
    finish: Finish = straight_on,
) -> CampaignReport:
    """The report of ``campaign`` as of ``now`` (the end of the throughput window); its
    estimated completion by ``finish``."""
    tallies = await repository.delivery_counts(campaign.id, now - THROUGHPUT_WINDOW)
    counts, progress = delivery_summary(tallies, now, finish)
    return CampaignReport(campaign, counts, progress, await survey_report(repository, campaign.id))


async def survey_report(repository: CampaignRepository, campaign_id: int) -> SurveyResults | None:
    """The campaign's survey results, None when it has no survey; reads no delivery."""
    survey = await repository.get_survey(campaign_id)
    if survey is None:
        return None
    return SurveyResults.of(survey, await repository.survey_counts(survey.id))


def delivery_summary(
    tallies: Iterable[DeliveryTally], now: datetime, finish: Finish = straight_on
) -> tuple[DeliveryCounts, Progress]:
    """Counts by state and reason, and the progress of submits, from the grouped rows (the
    remaining messages at the recent rate finish by ``finish``)."""
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
    eta = finish(now, remaining, rate) if rate > 0 and remaining else None
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
        "variable_defaults": campaign.variable_defaults,
        "variants": campaign.variants,
        "holdout_percent": campaign.holdout_percent,
        "preview": preview(campaign.texts, None, campaign.variable_defaults),
        "segment": campaign.segment,
        "start_at": _iso(campaign.start_at),
        "end_at": _iso(campaign.end_at),
        "created_by": campaign.created_by,
        "created_at": _iso(campaign.created_at),
        "started_at": _iso(campaign.started_at),
        "finished_at": _iso(campaign.finished_at),
        "content_version": campaign.content_version,
        "approval": None
        if campaign.approval is None
        else {
            "by": campaign.approval.by,
            "role": campaign.approval.role,
            "at": _iso(campaign.approval.at),
            "version": campaign.approval.version,
        },
        "trigger": None if campaign.trigger is None else campaign.trigger.as_json(),
    }


# ---------------------------------------------------------------- minimum cell size (R11)

#: A count's place in a report: ("total",), ("state", s), ("reason", r), ("done",),
#: ("remaining",); in survey results ("sessions", s), ("answers", q), ("option", q, o).
CellKey = tuple[Any, ...]


def shown_counts(
    counts: DeliveryCounts,
    min_cell: int,
    sums: Mapping[str, Iterable[DeliveryState]] | None = None,
) -> dict[CellKey, Shown]:
    """The delivery counts as shown to a caller with minimum cell size ``min_cell``
    (campaigns.disclosure: 1 shows them all). Groups: the total of the states, of done and
    remaining; done and remaining of their states; the suppressed state of its reasons.
    ``sums``: further counts a page shows, each the sum of some states (the console's
    progress bar), as ("sum", name) — each with its states, and all of them with the states
    they leave out, as groups of the total."""
    cells: dict[CellKey, int] = {("total",): counts.total}
    cells |= {("state", state): n for state, n in counts.states.items()}
    cells |= {("reason", reason): n for reason, n in counts.suppressed.items()}
    cells |= {("done",): counts.done, ("remaining",): counts.remaining}
    pending = [("state", state) for state in DeliveryState if state in PENDING]
    finished = [("state", state) for state in DeliveryState if state not in PENDING]
    groups: list[tuple[CellKey, list[CellKey]]] = [
        (("total",), [("state", state) for state in DeliveryState]),
        (("total",), [("done",), ("remaining",)]),
        (("remaining",), pending),
        (("done",), finished),
        (("state", DeliveryState.SUPPRESSED), [("reason", r) for r in SuppressionReason]),
    ]
    if sums:
        covered: set[DeliveryState] = set()
        for name, members in sums.items():
            states = list(members)
            covered.update(states)
            cells[("sum", name)] = sum(counts.states[state] for state in states)
            groups.append((("sum", name), [("state", state) for state in states]))
        rest = [("state", state) for state in DeliveryState if state not in covered]
        groups.append((("total",), [("sum", name) for name in sums] + rest))
    return suppress(cells, groups, min_cell)


def shown_survey(results: SurveyResults, min_cell: int) -> dict[CellKey, Shown]:
    """Survey counts as shown with minimum cell size ``min_cell``: sessions per state, and
    per question its answers (the group's total) and its options' counts."""
    cells: dict[CellKey, int] = {("sessions", s): n for s, n in results.sessions.items()}
    cells[("sent",)] = results.sent
    groups: list[tuple[CellKey, list[CellKey]]] = [
        (("sent",), [("sessions", s) for s in results.sessions])
    ]
    for question in results.questions:
        cells[("answers", question.no)] = question.answers
        parts: list[CellKey] = []
        for option in question.options:
            cells[("option", question.no, option.no)] = option.count
            parts.append(("option", question.no, option.no))
        groups.append((("answers", question.no), parts))
    return suppress(cells, groups, min_cell)


def report_json(report: CampaignReport, min_cell: int = 1) -> dict[str, Any]:
    """The report as the API's JSON: the campaign's fields, then total, states, suppressed,
    progress and survey (DESIGN.md, HTTP contract). ``min_cell`` > 1 (a partner-facing
    caller, R11): counts below it are ``"< N"``, and those hidden so a total minus the
    shown parts cannot give one back are ``">= N"``; the percentage then shows only where
    done and total both do."""
    counts, progress = report.counts, report.progress
    triggered = report.campaign.trigger is not None
    shown = shown_counts(counts, min_cell, {"sent": SENT} if triggered else None)
    exact = isinstance(shown[("done",)], int) and isinstance(shown[("total",)], int)
    return {
        **campaign_view(report.campaign),
        "total": shown[("total",)],
        "states": {state.value: shown[("state", state)] for state in counts.states},
        "suppressed": {reason.value: shown[("reason", reason)] for reason in counts.suppressed},
        "progress": {
            "done": shown[("done",)],
            "remaining": shown[("remaining",)],
            "percent": counts.percent if exact else None,
            "throughput_per_s": progress.throughput_per_s,
            "throughput_window_s": int(THROUGHPUT_WINDOW.total_seconds()),
            "estimated_completion": _iso(progress.estimated_completion),
            "first_submitted_at": _iso(progress.first_submitted_at),
            "last_submitted_at": _iso(progress.last_submitted_at),
        },
        "survey": None if report.survey is None else survey_json(report.survey, min_cell),
        "answered_without_receipt": shown_answered_without_receipt(report, min_cell, shown),
        "triggered": triggered_json(shown) if triggered else None,
    }


def triggered_json(shown: Mapping[CellKey, Shown]) -> dict[str, Shown]:
    """A triggered campaign's counts (issue 15) from the report's shown cells: numbers whose
    event matched (one message each: a later matching event of the number is not counted
    again), waiting (queued or being sent: also for the send window), sent (the SMSC
    accepted it) and stale (dropped after the max delay)."""
    return {
        "matched": shown[("total",)],
        "waiting": shown[("remaining",)],
        "sent": shown[("sum", "sent")],
        "stale": shown[("reason", SuppressionReason.STALE)],
    }


def shown_answered_without_receipt(
    report: CampaignReport, min_cell: int, shown: Mapping[CellKey, Shown] | None = None
) -> int | None:
    """:attr:`CampaignReport.answered_without_receipt`, for a partner (R11) only where the
    respondents and the delivered count are both shown (it is their difference). ``shown``:
    the delivery counts as shown, if already at hand."""
    if report.survey is None:
        return None
    if shown is None:
        shown = shown_counts(report.counts, min_cell)
    answers = shown_survey(report.survey, min_cell).get(("answers", 1), 0)
    delivered = shown[("state", DeliveryState.DELIVERED)]
    if isinstance(answers, int) and isinstance(delivered, int):
        return report.answered_without_receipt
    return None


def survey_json(results: SurveyResults, min_cell: int = 1) -> dict[str, Any]:
    """Survey results as JSON: sessions per state, per question its options' counts
    (``min_cell`` as in :func:`report_json`)."""
    shown = shown_survey(results, min_cell)
    respondents = shown.get(("answers", 1), 0)
    return {
        "sessions": {state.value: shown[("sessions", state)] for state in results.sessions},
        "languages": list(results.languages),
        "sent": shown[("sent",)],
        "respondents": respondents,
        # Of the surveys sent (first questions the SMSC accepted), not of those delivered:
        # receipts can be lost (an SMSC restart), answers cannot be undone.
        "response_rate": shown_percent(respondents, shown[("sent",)]),
        "response_rate_of": "sent",
        "questions": [_question_json(question, shown) for question in results.questions],
    }


def _question_json(question: QuestionResult, shown: Mapping[CellKey, Shown]) -> dict[str, Any]:
    """A question's counts, each option's with its percent of the question's answers."""
    answers = shown[("answers", question.no)]
    options = []
    for option in question.options:
        count = shown[("option", question.no, option.no)]
        options.append(
            {
                "no": option.no,
                "texts": dict(option.texts),
                "count": count,
                "percent": shown_percent(count, answers),
            }
        )
    return {
        "no": question.no,
        "texts": dict(question.texts),
        "answers": answers,
        "options": options,
    }


def percent_of(part: int, whole: int) -> float | None:
    """``part`` in percent of ``whole``, one decimal; None when ``whole`` is 0."""
    return round(100.0 * part / whole, 1) if whole else None


def shown_percent(part: Shown, whole: Shown) -> float | None:
    """A percentage as shown to a partner (R11): only where both counts are shown."""
    if isinstance(part, int) and isinstance(whole, int):
        return percent_of(part, whole)
    return None


def in_language(texts: Mapping[str, str], language: str | None) -> str:
    """A survey text in ``language``, else in its first language (R14, pick_language)."""
    return texts[pick_language(texts, language)]


def results_csv(results: SurveyResults, language: str, min_cell: int = 1) -> str:
    """The survey results as CSV: question, option, count and its percent of the question's
    answers per line (no numbers, R11; ``min_cell`` as in :func:`report_json`: a percent only
    where both counts are shown; texts made safe for spreadsheets)."""
    shown = shown_survey(results, min_cell)
    header: list[object] = ["question_no", "question", "option_no", "option", "count", "percent"]
    rows: list[list[object]] = [header]
    for question in results.questions:
        q_text = in_language(question.texts, language)
        answers = shown[("answers", question.no)]
        for option in question.options:
            count = shown[("option", question.no, option.no)]
            share = shown_percent(count, answers)
            rows.append(
                [
                    question.no,
                    q_text,
                    option.no,
                    in_language(option.texts, language),
                    count,
                    "" if share is None else share,
                ]
            )
    return csv_text(rows)
