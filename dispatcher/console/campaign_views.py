"""Campaign pages: the list with progress bars, a campaign's report with charts, its state
changes (pause / resume / cancel / start) and audience uploads.

Everything is read and changed through the campaign domain (``campaigns/``), exactly as
the HTTP API does: the same repository, report, transitions and audience loader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import BodyPartReader, web

from campaigns.audience import upload_audience
from campaigns.csvstream import InputRefused
from campaigns.disclosure import sees_exact_counts
from campaigns.models import AUDIENCE_OPEN, Campaign, TransitionRefused
from campaigns.reports import (
    DeliveryCounts,
    SurveyResults,
    campaign_report,
    in_language,
    shown_counts,
    shown_survey,
)
from campaigns.repository import TRANSITIONS, CampaignRepository
from campaigns.templates import preview
from dispatcher.console.charts import PROGRESS_GROUPS, Segment, option_bars, progress
from dispatcher.console.guard import MULTIPART, USER, action, error_page, render, see_other, view
from dispatcher.console.progress import ProgressQueries
from dispatcher.engine.forecast import campaign_forecast, eta_through_window, forecast_json
from dispatcher.kernel.states import CampaignState, DeliveryState, Role
from dispatcher.kernel.values import BIGINT_MAX, parse_int
from dispatcher.web.errors import refused_status
from dispatcher.web.keys import CLOCK, DATABASE, SETTINGS
from dispatcher.web.params import path_id
from dispatcher.web.uploads import UPLOADS_RETRY_AFTER, BodyTimeout, Busy, spooled_upload

PAGE_SIZE = 25
CHUNK = 1 << 16
#: Which state changes each state offers as a button.
ACTIONS_IN: dict[CampaignState, tuple[str, ...]] = {
    state: tuple(name for name, (_, allowed) in TRANSITIONS.items() if state in allowed)
    for state in CampaignState
}
#: States whose page shows the forecast of the queued audience (running shows its ETA).
FORECAST_IN = frozenset({CampaignState.DRAFT, CampaignState.SCHEDULED, CampaignState.PAUSED})
DONE_NOTICES = {
    "start": "Campaign started.",
    "pause": "Campaign paused: nothing more is sent until it is resumed.",
    "resume": "Campaign resumed.",
    "cancel": "Campaign cancelled: its queued messages are suppressed.",
    "created": "Campaign created as a draft. Add an audience, then start it.",
    "upload_refused": (
        "Campaign created, but its audience file was refused and nothing of it was loaded. "
        "Upload it again below to see why."
    ),
}


def _repository(request: web.Request) -> CampaignRepository:
    return CampaignRepository(request.app[DATABASE].pool)


def _int_query(request: web.Request, name: str) -> int | None:
    """``?name=`` as a non-negative bigint; anything else (``٣``, ``²``, 20 digits) is
    ignored, as an absent value is."""
    return parse_int(request.query.get(name), 0, BIGINT_MAX)


@view(Role.VIEWER)
async def campaign_list(request: web.Request) -> web.StreamResponse:
    """Campaigns, newest first, with state and progress; ``?state=`` filters,
    ``?before=<id>`` pages."""
    raw_state = request.query.get("state", "")
    state = CampaignState(raw_state) if raw_state in CampaignState.__members__.values() else None
    campaigns = await _repository(request).page(
        before_id=_int_query(request, "before"), limit=PAGE_SIZE, state=state
    )
    states = await ProgressQueries(request.app[DATABASE].pool).states_of([c.id for c in campaigns])
    user = request.get(USER)
    min_cell = 1
    if user is not None and not sees_exact_counts(user.role):
        min_cell = request.app[SETTINGS].report_min_cell
    rows = [_list_row(c, states.get(c.id, {}), min_cell) for c in campaigns]
    context = {
        "rows": rows,
        "state": state.value if state else "",
        "states": [s.value for s in CampaignState],
        "next_before": campaigns[-1].id if len(campaigns) == PAGE_SIZE else None,
    }
    return render(request, "campaigns.html", context)


def _list_row(campaign: Campaign, states: dict[str, int], min_cell: int) -> dict[str, Any]:
    counts = DeliveryCounts.of(states)
    total, segments = progress(counts.states)
    percent: Any = counts.percent
    if min_cell > 1:  # R11: a partner-facing page
        view_counts, total, segments = _partner_counts(counts, segments, min_cell)
        percent = view_counts["percent"]
    return {"campaign": campaign, "total": total, "segments": segments, "done_percent": percent}


@view(Role.VIEWER)
async def campaign_page(request: web.Request) -> web.StreamResponse:
    """A campaign's report: counts by state and suppression reason, throughput over time,
    survey results (counts only, R11), and the actions its state allows."""
    campaign = await _repository(request).get(path_id(request))
    if campaign is None:
        return error_page(request, 404, "No such campaign", "It may have been removed.")
    notice = DONE_NOTICES.get(request.query.get("done", ""))
    if "accepted" in request.query:
        notice = _upload_notice(request)
    return render(request, "campaign.html", await _campaign_context(request, campaign, notice))


def _upload_notice(request: web.Request) -> str:
    counts = {key: _int_query(request, key) or 0 for key in ("accepted", "rejected", "duplicates")}
    return (
        f"Campaign created. Audience: {counts['accepted']} accepted, "
        f"{counts['rejected']} rejected, {counts['duplicates']} duplicates."
    )


async def _campaign_context(
    request: web.Request,
    campaign: Campaign,
    notice: str | None = None,
    error: str | None = None,
    upload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    report = await campaign_report(_repository(request), campaign, request.app[CLOCK].now())
    chart = await ProgressQueries(request.app[DATABASE].pool).throughput(
        campaign.id, report.progress.first_submitted_at, report.progress.last_submitted_at
    )
    language = request.app[SETTINGS].default_language
    total, segments = progress(report.counts.states)
    survey = _survey_charts(report.survey, language)
    counts: Any = report.counts
    user = request.get(USER)
    if user is not None and not sees_exact_counts(user.role):
        min_cell = request.app[SETTINGS].report_min_cell
        counts, total, segments = _partner_counts(report.counts, segments, min_cell)
        survey = _partner_survey(report.survey, survey, min_cell)
    forecast = None
    if campaign.state in FORECAST_IN and report.counts.states[DeliveryState.QUEUED]:
        forecast = await _forecast_view(request, campaign)
    eta = None
    if campaign.state is CampaignState.RUNNING:
        eta = eta_through_window(request.app[SETTINGS].calendar, report, request.app[CLOCK].now())
    return {
        "campaign": campaign,
        "report": report,
        "forecast": forecast,
        "eta": eta,
        "counts": counts,
        "preview": preview(campaign.texts),
        "total": total,
        "segments": segments,
        "chart": chart,
        "survey": survey,
        "actions": ACTIONS_IN[campaign.state],
        "audience_open": campaign.state in AUDIENCE_OPEN,
        "notice": notice,
        "error": error,
        "upload": upload,
    }


def _survey_charts(results: SurveyResults | None, language: str) -> dict[str, Any] | None:
    """Per question its text and option bars in ``language`` (else the first language)."""
    if results is None:
        return None
    questions = []
    for question in results.questions:
        labels = [(in_language(o.texts, language), o.count) for o in question.options]
        questions.append(
            {
                "no": question.no,
                "text": in_language(question.texts, language),
                "answers": question.answers,
                "bars": option_bars(labels),
            }
        )
    return {"sessions": results.sessions, "questions": questions}


def _partner_counts(
    counts: DeliveryCounts, segments: list[Segment], min_cell: int
) -> tuple[dict[str, Any], Any, list[Segment]]:
    """R11, a partner-facing page: the counts, total and progress bar as shown with minimum
    cell size ``min_cell`` (campaigns.disclosure); a hidden segment draws no bar."""
    sums = {css: members for css, _, members in PROGRESS_GROUPS}
    shown = shown_counts(counts, min_cell, sums)
    exact = isinstance(shown[("done",)], int) and isinstance(shown[("total",)], int)
    view_counts = {
        "states": {state.value: shown[("state", state)] for state in counts.states},
        "suppressed": {r.value: shown[("reason", r)] for r in counts.suppressed},
        "percent": counts.percent if exact else "–",
    }
    bars, x = [], 0.0
    for segment in segments:
        count = shown[("sum", segment.css)]
        width = segment.width if isinstance(count, int) else 0.0
        bars.append(dataclasses.replace(segment, count=count, x=round(x, 3), width=width))
        x += width
    return view_counts, shown[("total",)], bars


def _partner_survey(
    results: SurveyResults | None, charts: dict[str, Any] | None, min_cell: int
) -> dict[str, Any] | None:
    """The survey charts as shown with minimum cell size ``min_cell``: a hidden option draws
    no bar and shows no share; the others are scaled to the widest shown."""
    if results is None or charts is None:
        return charts
    shown = shown_survey(results, min_cell)
    questions = []
    for question, chart in zip(results.questions, charts["questions"], strict=True):
        counts = [shown[("option", question.no, o.no)] for o in question.options]
        widest = max((n for n in counts if isinstance(n, int)), default=0)
        answers = shown[("answers", question.no)]
        bars = [
            dataclasses.replace(
                bar,
                count=n,
                share=bar.share if isinstance(n, int) and isinstance(answers, int) else "–",
                width=round(100.0 * n / widest, 2) if isinstance(n, int) and widest else 0.0,
            )
            for bar, n in zip(chart["bars"], counts, strict=True)
        ]
        questions.append({**chart, "answers": answers, "bars": bars})
    sessions = {state: shown[("sessions", state)] for state in results.sessions}
    return {"sessions": sessions, "questions": questions}


#: State changes a person confirms on a page first (issue 14): a start sends to everyone,
#: a cancel ends the campaign for good. The API stays one call (its clients confirm).
CONFIRMED = ("start", "cancel")
CONFIRM_VERBS = {"start": "Start", "cancel": "Cancel"}


def _transition(name: str) -> Any:
    @action(Role.MARKETER)
    async def change_state(request: web.Request) -> web.StreamResponse:
        campaign_id = path_id(request)
        if name in CONFIRMED and (await request.post()).get("confirm") != "yes":
            # not confirmed (an old form, a script): nothing changes; the confirm page
            return see_other(f"/console/campaigns/{campaign_id}/{name}")
        repository = _repository(request)
        try:
            await repository.transition(campaign_id, name, request.app[CLOCK].now())
        except TransitionRefused as exc:
            campaign = await repository.get(campaign_id)
            assert campaign is not None
            context = await _campaign_context(
                request, campaign, error=f"Cannot {name}: {exc.reason}."
            )
            return render(request, "campaign.html", context, status=409)
        except LookupError:
            return error_page(request, 404, "No such campaign", "It may have been removed.")
        return see_other(f"/console/campaigns/{campaign_id}?done={name}")

    change_state.__name__ = change_state.__qualname__ = f"console_{name}_campaign"
    change_state.__doc__ = f"POST (form with CSRF): {name} the campaign; 409 page if refused." + (
        " Needs confirm=yes (else 303 to the confirm page)." if name in CONFIRMED else ""
    )
    return change_state


def _confirm(name: str) -> Any:
    @view(Role.MARKETER)
    async def confirm_page(request: web.Request) -> web.StreamResponse:
        campaign = await _repository(request).get(path_id(request))
        if campaign is None:
            return error_page(request, 404, "No such campaign", "It may have been removed.")
        error = None
        if name not in ACTIONS_IN[campaign.state]:
            error = f"Cannot {name}: the campaign is {campaign.state.value}."
        forecast = None
        if name == "start" and error is None:
            forecast = await _forecast_view(request, campaign)
        context = {
            "campaign": campaign,
            "name": name,
            "verb": CONFIRM_VERBS[name],
            "forecast": forecast,
            "error": error,
        }
        return render(request, "campaign_confirm.html", context, status=409 if error else 200)

    confirm_page.__name__ = confirm_page.__qualname__ = f"console_confirm_{name}"
    confirm_page.__doc__ = f"GET: the page that asks to confirm '{name}' (with the forecast)."
    return confirm_page


async def _forecast_view(request: web.Request, campaign: Campaign) -> dict[str, Any]:
    """The forecast as this user may see it (R11: partner-facing roles, small counts hidden)."""
    settings, now = request.app[SETTINGS], request.app[CLOCK].now()
    forecast = await campaign_forecast(request.app[DATABASE].pool, campaign, settings, now)
    user = request.get(USER)
    min_cell = 1
    if user is not None and not sees_exact_counts(user.role):
        min_cell = settings.report_min_cell
    return forecast_json(forecast, min_cell)


CONFIRM_VIEWS = {name: _confirm(name) for name in CONFIRMED}


TRANSITION_VIEWS = {name: _transition(name) for name in TRANSITIONS}


@action(Role.MARKETER, body="multipart")
async def audience_upload(request: web.Request) -> web.StreamResponse:
    """Upload an audience CSV (multipart: ``csrf`` first, then ``file``); the page shows
    the counts and the rejected lines. A refused file changes nothing (409/413/400)."""
    campaign_id = path_id(request)
    repository = _repository(request)
    campaign = await repository.get(campaign_id)
    if campaign is None:
        return error_page(request, 404, "No such campaign", "It may have been removed.")
    part = await file_part(request)
    if part is None:
        context = await _campaign_context(request, campaign, error="Choose a CSV file to upload.")
        return render(request, "campaign.html", context, status=400)
    result, error, status = await load_audience(request, campaign_id, part)
    campaign = await repository.get(campaign_id)
    assert campaign is not None
    context = await _campaign_context(request, campaign, error=error, upload=result)
    response = render(request, "campaign.html", context, status=status)
    if status == 503:  # too many uploads at once (dispatcher/web/uploads.py)
        response.headers["Retry-After"] = str(UPLOADS_RETRY_AFTER)
    return response


async def file_part(request: web.Request) -> BodyPartReader | None:
    """The next ``file`` part of an action's multipart body, if a file was chosen."""
    reader = request[MULTIPART]
    while (part := await reader.next()) is not None:
        if isinstance(part, BodyPartReader) and part.name == "file":
            return part if part.filename else None
    return None


async def load_audience(
    request: web.Request, campaign_id: int, part: BodyPartReader
) -> tuple[dict[str, Any] | None, str | None, int]:
    """(result, error, status) of loading ``part`` as the campaign's audience."""
    settings = request.app[SETTINGS]
    limit = settings.audience_max_bytes
    try:
        async with spooled_upload(request, _chunks(part), "audience", limit) as chunks:
            result = await upload_audience(
                _repository(request),
                campaign_id,
                chunks,
                region=settings.default_region,
                max_rows=settings.audience_max_rows,
                max_bytes=limit,
            )
    except Busy as exc:
        return None, f"The file was not loaded: {exc.message}.", 503
    except BodyTimeout as exc:
        return None, f"The file was not loaded: {exc.message}.", exc.status
    except InputRefused as exc:
        message = f"The file was refused, nothing was loaded: {exc.explained}"
        return None, message, refused_status(exc)
    except TransitionRefused as exc:
        return None, f"No audience can be added: {exc.reason}.", 409
    return result.as_dict(), None, 200


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK):
        yield chunk
