"""Campaign reports: counts by delivery state and suppression reason, progress, and survey
results — counts only, never a number (R11). Built from aggregate rows (one or two queries
per report, never a row per recipient)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from campaigns.models import Campaign, Survey
from campaigns.repository import CampaignRepository
from campaigns.templates import preview
from dispatcher.states import DeliveryState, SuppressionReason, SurveySessionState

#: Throughput is measured over the submits of this last stretch of time.
THROUGHPUT_WINDOW = timedelta(minutes=5)
_PENDING = (DeliveryState.QUEUED, DeliveryState.CLAIMED, DeliveryState.IN_FLIGHT)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def campaign_view(campaign: Campaign) -> dict[str, Any]:
    """The campaign's own fields, with the encoding and part count of each text."""
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


async def campaign_report(
    repository: CampaignRepository, campaign: Campaign, now: datetime
) -> dict[str, Any]:
    """``GET /api/v1/campaigns/{id}``: the DESIGN.md shape plus progress and the campaign."""
    rows = await repository.delivery_counts(campaign.id, now - THROUGHPUT_WINDOW)
    report = campaign_view(campaign)
    report.update(delivery_summary(rows, now))
    report["survey"] = None
    if (survey := await repository.get_survey(campaign.id)) is not None:
        answers, sessions = await repository.survey_counts(survey.id)
        report["survey"] = survey_results(survey, answers, sessions)
    return report


def delivery_summary(rows: Iterable[Mapping[str, Any]], now: datetime) -> dict[str, Any]:
    """total, states (every delivery state), suppressed (every reason), progress."""
    states = dict.fromkeys((s.value for s in DeliveryState), 0)
    suppressed = dict.fromkeys((r.value for r in SuppressionReason), 0)
    recent, first, last = 0, None, None
    for row in rows:
        states[row["state"]] += row["n"]
        if row["suppressed"] is not None:
            suppressed[row["suppressed"]] += row["n"]
        recent += row["recent"]
        first = _earliest(first, row["first_submitted"])
        last = _latest(last, row["last_submitted"])
    total = sum(states.values())
    remaining = sum(states[s.value] for s in _PENDING)
    rate = recent / THROUGHPUT_WINDOW.total_seconds()
    eta = now + timedelta(seconds=remaining / rate) if rate > 0 and remaining else None
    progress = {
        "done": total - remaining,
        "remaining": remaining,
        "percent": round(100.0 * (total - remaining) / total, 1) if total else 0.0,
        "throughput_per_s": round(rate, 2),
        "throughput_window_s": int(THROUGHPUT_WINDOW.total_seconds()),
        "estimated_completion": _iso(eta),
        "first_submitted_at": _iso(first),
        "last_submitted_at": _iso(last),
    }
    return {"total": total, "states": states, "suppressed": suppressed, "progress": progress}


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


def survey_results(
    survey: Survey, answers: Iterable[Mapping[str, Any]], sessions: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """Sessions per state, and per question the answer count of every option."""
    counts = {(row["question_no"], row["option_no"]): row["n"] for row in answers}
    by_state = dict.fromkeys((s.value for s in SurveySessionState), 0)
    for row in sessions:
        by_state[row["state"]] = row["n"]
    questions = []
    for q_no, question in enumerate(survey.questions, 1):
        options = [
            {"no": o_no, "texts": option, "count": counts.get((q_no, o_no), 0)}
            for o_no, option in enumerate(question["options"], 1)
        ]
        questions.append(
            {
                "no": q_no,
                "texts": question["texts"],
                "answers": sum(o["count"] for o in options),
                "options": options,
            }
        )
    return {"sessions": by_state, "questions": questions}


def results_csv(results: Mapping[str, Any], language: str) -> str:
    """The survey results as CSV: question, option and count per line (no numbers, R11)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["question_no", "question", "option_no", "option", "count"])
    for question in results["questions"]:
        q_text = _in(question["texts"], language)
        for option in question["options"]:
            writer.writerow(
                [
                    question["no"],
                    q_text,
                    option["no"],
                    _in(option["texts"], language),
                    option["count"],
                ]
            )
    return out.getvalue()


def _in(texts: Mapping[str, str], language: str) -> str:
    return texts.get(language) or next(iter(texts.values()), "")
