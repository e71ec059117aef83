"""Campaign pages: the list with progress bars, a campaign's report with charts, its state
changes (pause / resume / cancel / start) and audience uploads.

Everything is read and changed through the campaign domain (``campaigns/``), exactly as
the HTTP API does: the same repository, report, transitions and audience loader.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import BodyPartReader, web

from campaigns.audience import (
    ColumnMapping,
    UnmappedColumns,
    header_key,
    mapping_from_fields,
    read_header,
    rejected_csv,
    resolve_columns,
    upload_audience,
)
from campaigns.csvstream import InputRefused
from campaigns.disclosure import sees_exact_counts
from campaigns.languages import pick_language
from campaigns.models import (
    AUDIENCE_OPEN,
    ApprovalRefused,
    Campaign,
    CampaignNotFound,
    TransitionRefused,
)
from campaigns.reports import (
    SENT,
    DeliveryCounts,
    SurveyResults,
    campaign_report,
    in_language,
    percent_of,
    results_csv,
    shown_answered_without_receipt,
    shown_counts,
    shown_percent,
    shown_survey,
    survey_report,
    triggered_json,
)
from campaigns.repository import TRANSITIONS, CampaignRepository, CampaignSearch
from campaigns.templates import preview
from campaigns.triggers import short_duration
from campaigns.variant_report import variant_report, variant_report_json
from dispatcher.console import approval_views, audience_stash
from dispatcher.console.charts import PROGRESS_GROUPS, Segment, option_bars, progress
from dispatcher.console.guard import (
    MULTIPART,
    USER,
    action,
    can_act,
    console_actor,
    error_page,
    read_field,
    render,
    secured,
    see_other,
    view,
)
from dispatcher.console.progress import ProgressQueries
from dispatcher.engine.forecast import campaign_forecast, eta_through_window, forecast_json
from dispatcher.engine.status import EngineFacts, needs_engine_facts, status_of
from dispatcher.kernel.states import CampaignState, DeliveryState, Role
from dispatcher.kernel.values import BIGINT_MAX, parse_int
from dispatcher.policy.schedule import schedule_warnings
from dispatcher.program.optouts import campaign_opt_outs, opt_outs_json
from dispatcher.web.errors import refused_status
from dispatcher.web.keys import CLOCK, DATABASE, SETTINGS
from dispatcher.web.params import path_id
from dispatcher.web.uploads import UPLOADS, UPLOADS_RETRY_AFTER, BodyTimeout, Busy, spooled_upload

PAGE_SIZE = 25
#: The progress bar's sums of states, shown beside the counts (R11 suppresses them together).
PROGRESS_SUMS = {css: members for css, _, members in PROGRESS_GROUPS} | {"sent": SENT}
CHUNK = 1 << 16
#: Which state changes each state offers as a button.
ACTIONS_IN: dict[CampaignState, tuple[str, ...]] = {
    state: tuple(name for name, (_, allowed) in TRANSITIONS.items() if state in allowed)
    for state in CampaignState
}
#: States whose page shows the forecast of the queued audience (running shows its ETA).
#: Pages that show the forecast: not a scheduled one, which refreshes itself every few seconds
#: (the forecast of a large audience takes seconds; its start confirmation shows it).
FORECAST_IN = frozenset({CampaignState.DRAFT, CampaignState.PAUSED})
#: Above this many queued recipients the page forecasts only when asked (``?forecast=1``):
#: a million takes seconds of the database on every view, and the Start confirmation always
#: shows it before anything is sent.
INLINE_FORECAST_MAX = 100_000
DONE_NOTICES = {
    "start": "Campaign started.",
    "pause": "Campaign paused: nothing more is sent until it is resumed.",
    "resume": "Campaign resumed.",
    "cancel": "Campaign cancelled: its queued messages are suppressed.",
    "created": "Campaign created as a draft. Add an audience, then start it.",
    "approved": "Campaign approved: its texts and audience as they are now may be started.",
    "edited": "Campaign saved. It is still a draft: add an audience (or more), then start it.",
    "duplicated": (
        "Draft created as a copy of campaign #{source}: its texts and settings, no audience, "
        "nothing scheduled in the past. Edit it, add an audience, then start it."
    ),
}
#: Outcomes shown on the error-coloured banner (a refusal is never shown as a success).
DONE_ERRORS = {
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
    """Campaigns, newest first, with state, schedule and progress; ``?state=`` filters,
    ``?q=`` searches names and partners, ``?before=<id>`` pages."""
    raw_state = request.query.get("state", "")
    state = CampaignState(raw_state) if raw_state in CampaignState.__members__.values() else None
    search = request.query.get("q", "")[:200].replace("\x00", "")
    campaigns = await _repository(request).page(
        before_id=_int_query(request, "before"),
        limit=PAGE_SIZE,
        state=state,
        search=CampaignSearch(text=search),
    )
    states = await ProgressQueries(request.app[DATABASE].pool).states_of([c.id for c in campaigns])
    user = request.get(USER)
    min_cell = 1
    if user is not None and not sees_exact_counts(user.role):
        min_cell = request.app[SETTINGS].report_min_cell
    rows = [_list_row(c, states.get(c.id, {}), min_cell) for c in campaigns]
    await _list_statuses(request, rows, exact=min_cell == 1)
    context = {
        "rows": rows,
        "state": state.value if state else "",
        "q": search,
        "zone": request.app[SETTINGS].calendar.zone.key,
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
    return {
        "campaign": campaign,
        "total": total,
        "segments": segments,
        "done_percent": percent,
        "counts": counts,
    }


async def _list_statuses(request: web.Request, rows: list[dict[str, Any]], exact: bool) -> None:
    """Each row's status in plain words (the engine's facts read once for the page)."""
    pool, calendar = request.app[DATABASE].pool, request.app[SETTINGS].calendar
    now = request.app[CLOCK].now()
    engine = None
    if any(needs_engine_facts(r["campaign"].state, r["counts"].states) for r in rows):
        engine = await EngineFacts.read(pool, calendar, now)
    for row in rows:
        campaign = row["campaign"]
        row["status"] = await status_of(
            pool, calendar, campaign, row["counts"].states, now, exact=exact, engine=engine
        )


@view(Role.VIEWER)
async def campaign_page(request: web.Request) -> web.StreamResponse:
    """A campaign's report: counts by state and suppression reason, throughput over time,
    survey results (counts only, R11), and the actions its state allows."""
    campaign = await _repository(request).get(path_id(request))
    if campaign is None:
        return error_page(request, 404, "No such campaign", "It may have been removed.")
    notice = DONE_NOTICES.get(request.query.get("done", ""))
    if notice is not None:
        notice = notice.format(source=_int_query(request, "from") or "?")
    error = DONE_ERRORS.get(request.query.get("done", ""))
    if "accepted" in request.query:
        notice = _upload_notice(request)
    mapping = None
    token = request.query.get("mapping", "")
    if token and can_act(request.get(USER)):  # the create form's file needs its columns
        path = audience_stash.kept(campaign.id, token)
        header = await read_header(audience_stash.chunks_of(path), 1 << 20) if path else None
        if header is not None:
            error = "The audience file was kept, not loaded: " + _unmapped(campaign, header)
            mapping = _mapping_step(campaign, token, header, ColumnMapping())
    context = await _campaign_context(request, campaign, notice, error, mapping=mapping)
    return render(request, "campaign.html", context)


def _unmapped(campaign: Campaign, header: list[str]) -> str:
    """Why the file's columns need mapping (or that they can be chosen)."""
    try:
        resolve_columns(header, campaign.variables, ColumnMapping(), campaign.variable_defaults)
    except UnmappedColumns as exc:
        return exc.message + "."
    return "choose its columns below."


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
    mapping: dict[str, Any] | None = None,
) -> dict[str, Any]:
    report = await campaign_report(
        _repository(request),
        campaign,
        request.app[CLOCK].now(),
        request.app[SETTINGS].calendar.finish_at,
    )
    uploads = await _repository(request).uploads(campaign.id) if can_act(request.get(USER)) else []
    chart = await ProgressQueries(request.app[DATABASE].pool).throughput(
        campaign.id, report.progress.first_submitted_at, report.progress.last_submitted_at
    )
    language = results_language(request, report.survey)
    total, segments = progress(report.counts.states)
    survey = _survey_charts(report.survey, language)
    counts: Any = report.counts
    user = request.get(USER)
    exact = user is None or sees_exact_counts(user.role)
    min_cell = _min_cell(request)
    if min_cell > 1:
        counts, total, segments = _partner_counts(report.counts, segments, min_cell)
        survey = _partner_survey(report.survey, survey, min_cell)
    triggered = None
    if campaign.trigger is not None:  # issue 15: its counts, shown as the page's (R11)
        triggered = triggered_json(shown_counts(report.counts, min_cell, PROGRESS_SUMS))
    status = await status_of(
        request.app[DATABASE].pool,
        request.app[SETTINGS].calendar,
        campaign,
        report.counts.states,
        request.app[CLOCK].now(),
        exact=exact,
    )
    forecast, forecast_deferred = None, None
    queued = report.counts.states[DeliveryState.QUEUED]
    if campaign.state in FORECAST_IN and queued:
        if queued <= INLINE_FORECAST_MAX or request.query.get("forecast") == "1":
            forecast = await _forecast_view(request, campaign)
        else:
            forecast_deferred = queued
    opted = await campaign_opt_outs(request.app[DATABASE].pool, campaign.id, report.counts)
    days = request.app[SETTINGS].inbox_attribution_days
    variants = None
    if campaign.variants or campaign.holdout_percent:  # issue 15: per arm, with uplift
        found = await variant_report(_repository(request), campaign, request.app[CLOCK].now())
        variants = variant_report_json(found, min_cell)
    eta = None
    if campaign.state is CampaignState.RUNNING:
        eta = eta_through_window(request.app[SETTINGS].calendar, report, request.app[CLOCK].now())
    return {
        "status": status,
        "answered_without_receipt": shown_answered_without_receipt(report, min_cell),
        "campaign": campaign,
        "report": report,
        "forecast": forecast,
        "forecast_deferred": forecast_deferred,
        "variants": variants,
        "eta": eta,
        "counts": counts,
        "preview": preview(campaign.texts, None, campaign.variable_defaults),
        "total": total,
        "segments": segments,
        "chart": chart,
        "survey": survey,
        "actions": ACTIONS_IN[campaign.state],
        "audience_open": campaign.state in AUDIENCE_OPEN and campaign.trigger is None,
        "triggered": triggered,
        "trigger_delay": short_duration(campaign.trigger.max_delay) if campaign.trigger else None,
        "notice": notice,
        "error": error,
        "upload": upload,
        "schedule_warnings": _schedule_warnings(request, campaign),
        "mapping": mapping,
        "uploads": uploads,
        "rejected_total": sum(u.rejected for u in uploads),
        "opt_outs": opt_outs_json(opted, report.counts, min_cell, days, PROGRESS_SUMS),
    } | await approval_views.approval_context(request, campaign)


def _schedule_warnings(request: web.Request, campaign: Campaign) -> list[str]:
    """For a campaign not started yet: what its schedule means against the send window."""
    if campaign.state not in (CampaignState.DRAFT, CampaignState.SCHEDULED):
        return []
    calendar, now = request.app[SETTINGS].calendar, request.app[CLOCK].now()
    found = schedule_warnings(calendar, campaign.start_at, campaign.end_at, now)
    return [w.message for w in found]


def _min_cell(request: web.Request) -> int:
    """R11: 1 for the operator's admins, the minimum cell size for partner-facing roles."""
    user = request.get(USER)
    if user is None or sees_exact_counts(user.role):
        return 1
    return int(request.app[SETTINGS].report_min_cell)


def results_language(request: web.Request, results: SurveyResults | None) -> str:
    """The language survey results are shown in: ``?lang=`` if the survey has it, else the
    default language if it has that, else its first."""
    own = results.languages if results is not None else ()
    for language in (request.query.get("lang", ""), request.app[SETTINGS].default_language):
        if language in own:
            return language
    return own[0] if own else request.app[SETTINGS].default_language


def _survey_charts(results: SurveyResults | None, language: str) -> dict[str, Any] | None:
    """Per question its text and option bars in ``language`` (bars in percent of the
    question's answers), the response rate (of the surveys sent) and the languages."""
    if results is None:
        return None
    questions = []
    for question in results.questions:
        labels = [(in_language(o.texts, language), o.count) for o in question.options]
        questions.append(
            {
                "no": question.no,
                "text": in_language(question.texts, language),
                "lang": pick_language(question.texts, language),
                "answers": question.answers,
                "bars": option_bars(labels),
            }
        )
    return {
        "sessions": results.sessions,
        "questions": questions,
        "language": language,
        "languages": results.languages,
        "sent": results.sent,
        "respondents": results.respondents,
        "response_rate": percent_of(results.respondents, results.sent),
    }


def _partner_counts(
    counts: DeliveryCounts, segments: list[Segment], min_cell: int
) -> tuple[dict[str, Any], Any, list[Segment]]:
    """R11, a partner-facing page: the counts, total and progress bar as shown with minimum
    cell size ``min_cell`` (campaigns.disclosure); a hidden segment draws no bar."""
    shown = shown_counts(counts, min_cell, PROGRESS_SUMS)
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
        answers = shown[("answers", question.no)]
        bars = []
        for bar, n in zip(chart["bars"], counts, strict=True):
            share = shown_percent(n, answers)
            bars.append(
                dataclasses.replace(
                    bar,
                    count=n,
                    share="–" if share is None else share,
                    width=0.0 if share is None else share,
                )
            )
        questions.append({**chart, "answers": answers, "bars": bars})
    sessions = {state: shown[("sessions", state)] for state in results.sessions}
    respondents = shown.get(("answers", 1), 0)
    rate = shown_percent(respondents, shown[("sent",)])
    return {
        **charts,
        "sessions": sessions,
        "questions": questions,
        "sent": shown[("sent",)],
        "respondents": respondents,
        "response_rate": rate,
    }


@view(Role.VIEWER)
async def results_download(request: web.Request) -> web.StreamResponse:
    """The survey results as CSV (``?lang=``), as the API's ``results.csv``: counts and
    percentages, never a number; small counts hidden for partner-facing roles (R11)."""
    campaign = await _repository(request).get(path_id(request))
    if campaign is None:
        return error_page(request, 404, "No such campaign", "It may have been removed.")
    results = await survey_report(_repository(request), campaign.id)
    if results is None:
        return error_page(request, 404, "No survey", "This campaign has no survey results.")
    language = results_language(request, results)
    return web.Response(
        text=results_csv(results, language, _min_cell(request)),
        content_type="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="campaign-{campaign.id}-{language}.csv"'
        },
    )


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
            await repository.transition(
                campaign_id,
                name,
                request.app[CLOCK].now(),
                actor=console_actor(request),
                approval_required=request.app[SETTINGS].approval_required,
            )
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


@action(Role.MARKETER)
async def approve_campaign(request: web.Request) -> web.StreamResponse:
    """POST (form with CSRF and ``version``, the content version shown): approve the draft
    (maker-checker) → 303 to its page; a refusal is the page saying why (403/409)."""
    campaign_id = path_id(request)
    try:
        await approval_views.approve_as_user(request, campaign_id)
    except CampaignNotFound:
        return error_page(request, 404, "No such campaign", "It may have been removed.")
    except ApprovalRefused as exc:
        campaign = await _repository(request).get(campaign_id)
        assert campaign is not None
        context = await _campaign_context(request, campaign, error=f"Cannot approve: {exc.reason}.")
        return render(request, "campaign.html", context, status=exc.status)
    return see_other(f"/console/campaigns/{campaign_id}?done=approved")


def _confirm(name: str) -> Any:
    @view(Role.MARKETER)
    async def confirm_page(request: web.Request) -> web.StreamResponse:
        campaign = await _repository(request).get(path_id(request))
        if campaign is None:
            return error_page(request, 404, "No such campaign", "It may have been removed.")
        error = None
        if name not in ACTIONS_IN[campaign.state]:
            error = f"Cannot {name}: the campaign is {campaign.state.value}."
        elif name == "start" and request.app[SETTINGS].approval_required and not campaign.approval:
            error = "Cannot start: it needs an approval by someone other than its creator first."
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


MAPPING_FIELD_BYTES = 1024  # one field of the upload or mapping form
MAX_UPLOAD_FIELDS = 40


@action(Role.MARKETER, body="multipart")
async def audience_upload(request: web.Request) -> web.StreamResponse:
    """Upload an audience CSV (multipart: ``csrf`` first, then ``choose_columns``, then
    ``file``), or load a kept file with the columns chosen in the mapping step (``stash``,
    ``number_column``, ``column.<variable>``). The page shows the counts, the first rejected
    lines and the link to all of them; a file whose columns need mapping comes back as the
    mapping step. A refused file changes nothing (409/413/400)."""
    campaign_id = path_id(request)
    repository = _repository(request)
    campaign = await repository.get(campaign_id)
    if campaign is None:
        return error_page(request, 404, "No such campaign", "It may have been removed.")
    fields, part = await _upload_form(request)
    token = fields.get("stash", "")
    if part is None and not token:
        context = await _campaign_context(request, campaign, error="Choose a CSV file to upload.")
        return render(request, "campaign.html", context, status=400)
    outcome = await load_or_map(
        request,
        campaign,
        part,
        token=token,
        mapping=mapping_from_fields(fields),
        choose=fields.get("choose_columns") == "1",
    )
    campaign = await repository.get(campaign_id)
    assert campaign is not None
    context = await _campaign_context(
        request, campaign, error=outcome.error, upload=outcome.result, mapping=outcome.mapping
    )
    response = render(request, "campaign.html", context, status=outcome.status)
    if outcome.status == 503:  # too many uploads at once (dispatcher/web/uploads.py)
        response.headers["Retry-After"] = str(UPLOADS_RETRY_AFTER)
    return response


async def _upload_form(request: web.Request) -> tuple[dict[str, str], BodyPartReader | None]:
    """The form's text fields up to ``file``, and that part if a file was chosen."""
    fields: dict[str, str] = {}
    reader = request[MULTIPART]
    for _ in range(MAX_UPLOAD_FIELDS):
        part = await reader.next()
        if not isinstance(part, BodyPartReader):
            break
        if part.name == "file":
            return fields, part if part.filename else None
        text = await read_field(part, MAPPING_FIELD_BYTES)
        if part.name and text is not None:
            fields[part.name] = text
    return fields, None


@dataclasses.dataclass
class AudienceOutcome:
    """What the console did with an audience file: loaded it (``result``), refused it
    (``error`` and ``status``), or kept it for the mapping step (``mapping``)."""

    result: dict[str, Any] | None = None
    error: str | None = None
    status: int = 200
    mapping: dict[str, Any] | None = None


async def load_audience(
    request: web.Request, campaign_id: int, part: BodyPartReader
) -> tuple[dict[str, Any] | None, str | None, int]:
    """(result, error, status) of loading ``part`` as the campaign's audience (a file
    whose columns need mapping is refused here; :func:`load_or_map` keeps it)."""
    campaign = await _repository(request).get(campaign_id)
    if campaign is None:
        return None, "No such campaign.", 404
    outcome = await load_or_map(request, campaign, part, keep=False)
    return outcome.result, outcome.error, outcome.status


async def load_or_map(
    request: web.Request,
    campaign: Campaign,
    part: BodyPartReader | None,
    *,
    token: str = "",
    mapping: ColumnMapping | None = None,
    choose: bool = False,
    keep: bool = True,
) -> AudienceOutcome:
    """Receive ``part`` (or take the kept file ``token``) and load it with ``mapping``;
    when its columns need mapping, or ``choose`` asks for the step, the file is kept and
    the outcome holds the mapping step (unless ``keep`` is False: then it is refused)."""
    settings = request.app[SETTINGS]
    limit = settings.audience_max_bytes
    mapping = mapping or ColumnMapping()
    header: list[str] | None = None
    try:
        if part is not None:
            async with spooled_upload(request, _chunks(part), "audience", limit) as chunks:
                token = await audience_stash.keep(campaign.id, chunks)
        path = audience_stash.kept(campaign.id, token)
        if path is None:
            return AudienceOutcome(error="The file is no longer kept: choose it again.", status=400)
        header = await read_header(audience_stash.chunks_of(path), limit)
        if choose and keep and header is not None and not mapping:
            return AudienceOutcome(mapping=_mapping_step(campaign, token, header, mapping))
        async with request.app[UPLOADS].admit():
            result = await upload_audience(
                _repository(request),
                campaign.id,
                audience_stash.chunks_of(path),
                region=settings.default_region,
                max_rows=settings.audience_max_rows,
                max_bytes=limit,
                now=request.app[CLOCK].now(),
                uploaded_by=request[USER].name,
                policy=settings.mobile_policy,
                mapping=mapping,
                actor=console_actor(request),
                approval_required=settings.approval_required,
            )
    except Busy as exc:
        return _refused(campaign, token, f"The file was not loaded: {exc.message}.", 503)
    except BodyTimeout as exc:
        return _refused(campaign, token, f"The file was not loaded: {exc.message}.", exc.status)
    except InputRefused as exc:
        message = f"The file was refused, nothing was loaded: {exc.explained}"
        if keep and header is not None and (mapping or isinstance(exc, UnmappedColumns)):
            step = _mapping_step(campaign, token, header, mapping)
            return AudienceOutcome(error=message, status=refused_status(exc), mapping=step)
        return _refused(campaign, token, message, refused_status(exc))
    except TransitionRefused as exc:
        return _refused(campaign, token, f"No audience can be added: {exc.reason}.", 409)
    audience_stash.discard(campaign.id, token)
    return AudienceOutcome(result=result.as_dict())


def _refused(campaign: Campaign, token: str, error: str, status: int) -> AudienceOutcome:
    if token:
        audience_stash.discard(campaign.id, token)
    return AudienceOutcome(error=error, status=status)


_NUMBER_HEADERS = frozenset(
    header_key(name)
    for name in ("msisdn", "phone", "number", "mobile", "телефон", "номер", "тел", "нөмір")
)


def _mapping_step(
    campaign: Campaign, token: str, header: Sequence[str], mapping: ColumnMapping
) -> dict[str, Any]:
    """The mapping step's context: the file's header, and per select the column chosen
    (as a 1-based position: header cells may be blank or repeated), from ``mapping``, else
    guessed from the names."""
    keys = [header_key(cell) for cell in header]

    def position(wanted: str | None) -> str:
        if wanted is None or not wanted.strip():
            return ""
        text = wanted.strip()
        if text.isdecimal() and 1 <= int(text) <= len(header):
            return text
        return str(keys.index(header_key(text)) + 1) if header_key(text) in keys else ""

    number = position(mapping.number) or next(
        (str(i + 1) for i, key in enumerate(keys) if key in _NUMBER_HEADERS), "1"
    )
    columns = {}
    for name in campaign.variables:
        chosen = position(mapping.variables.get(name))
        if not chosen and not mapping and header_key(name) in keys:
            chosen = str(keys.index(header_key(name)) + 1)
        columns[name] = chosen
    return {
        "token": token,
        "header": [(str(i + 1), cell or f"column {i + 1}") for i, cell in enumerate(header)],
        "number": number,
        "columns": columns,
        "defaults": campaign.variable_defaults,
    }


@view(Role.MARKETER)
async def rejected_rows_csv(request: web.Request) -> web.StreamResponse:
    """Every rejected row of the campaign's audience uploads as CSV (``?upload=N``: of one),
    as the API's ``GET …/audience/rejected.csv``."""
    repository = _repository(request)
    campaign = await repository.get(path_id(request))
    if campaign is None:
        return error_page(request, 404, "No such campaign", "It may have been removed.")
    upload_no = _int_query(request, "upload")
    name = f"campaign-{campaign.id}-rejected" + (f"-{upload_no}" if upload_no else "") + ".csv"
    response = secured(
        web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{name}"',
            }
        )
    )
    await response.prepare(request)
    async for text in rejected_csv(repository, campaign.id, upload_no or None):
        await response.write(text.encode())
    await response.write_eof()
    return response


async def _chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK):
        yield chunk
