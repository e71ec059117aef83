"""Campaign endpoints of the HTTP contract (DESIGN.md).

Handlers are thin: parse the request, call the campaign domain (``campaigns/``), shape the
answer. Domain errors become the error shape: 400 invalid input, 404 unknown campaign,
409 a state change the campaign's state refuses, 413 an oversized audience.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import BodyPartReader, web

from campaigns.audience import (
    ColumnMapping,
    mapping_from_fields,
    rejected_csv,
    upload_audience,
)
from campaigns.csvstream import InputRefused, TooLarge
from campaigns.disclosure import sees_exact_counts
from campaigns.editing import duplicate, edit_draft
from campaigns.models import (
    SEGMENTS,
    ApprovalRefused,
    Campaign,
    CampaignNotFound,
    EditRefused,
    TransitionRefused,
)
from campaigns.reports import (
    campaign_report,
    campaign_view,
    report_json,
    results_csv,
    survey_report,
)
from campaigns.repository import CampaignRepository, CampaignSearch
from campaigns.spec import LANGUAGES, SpecError, parse_campaign
from campaigns.templates import preview
from campaigns.variant_report import variant_report, variant_report_json
from dispatcher.engine.forecast import campaign_forecast, forecast_json
from dispatcher.engine.status import status_of
from dispatcher.kernel.audit import Actor
from dispatcher.kernel.states import CampaignState, Role
from dispatcher.kernel.values import BIGINT_MAX
from dispatcher.policy.schedule import schedule_warnings
from dispatcher.program.optouts import campaign_opt_outs, opt_outs_json
from dispatcher.web.auth import requires
from dispatcher.web.bodies import json_value
from dispatcher.web.errors import ApiError
from dispatcher.web.keys import CALLER, CLOCK, DATABASE, SETTINGS, Handler
from dispatcher.web.params import path_id, query_int
from dispatcher.web.uploads import spooled_upload

BASE = "/api/v1/campaigns"
ITEM = BASE + r"/{id:[0-9]+}"  # a number past bigint is no campaign: 404 (path_id)
CHUNK = 1 << 16
ACTIONS = ("start", "pause", "resume", "cancel")


def setup_routes(app: web.Application) -> None:
    """Register the campaign routes."""
    router = app.router
    router.add_post(BASE, create_campaign)
    router.add_get(BASE, list_campaigns)
    router.add_post(BASE + "/preview", preview_texts)
    router.add_get(ITEM, get_campaign)
    router.add_patch(ITEM, edit_campaign)
    router.add_post(ITEM + "/duplicate", duplicate_campaign)
    router.add_post(ITEM + "/approve", approve_campaign)
    router.add_get(ITEM + "/results.csv", survey_results_csv)
    router.add_get(ITEM + "/forecast", campaign_forecast_view)
    router.add_get(ITEM + "/variants", campaign_variants_view)
    router.add_post(ITEM + "/audience", add_audience)
    router.add_get(ITEM + "/audience/rejected.csv", rejected_rows_csv)
    for action in ACTIONS:
        router.add_post(f"{ITEM}/{action}", _transition_handler(action))


def _repository(request: web.Request) -> CampaignRepository:
    return CampaignRepository(request.app[DATABASE].pool)


def caller_actor(request: web.Request) -> Actor:
    """Who calls: the token's name and role (recorded in the audit trail)."""
    caller = request[CALLER]
    return Actor(caller.name, caller.role.value)


def _campaign_id(request: web.Request) -> int:
    return path_id(request)


async def _campaign_or_404(request: web.Request, repository: CampaignRepository) -> Campaign:
    campaign = await repository.get(_campaign_id(request))
    if campaign is None:
        raise ApiError(404, "not_found", f"no campaign {_campaign_id(request)}")
    return campaign


@contextmanager
def _domain_errors() -> Iterator[None]:
    """Campaign domain exceptions → the API's error shape."""
    try:
        yield
    except CampaignNotFound as exc:
        raise ApiError(404, "not_found", f"no campaign {exc.args[0]}") from None
    except EditRefused as exc:
        message = f"campaign {exc.campaign_id} is {exc.state}: {exc.reason}"
        if exc.code == "not_a_draft":
            message += f"; POST {BASE}/{exc.campaign_id}/duplicate makes an editable copy"
        raise ApiError(409, exc.code, message, {"state": exc.state.value}) from None
    except SpecError as exc:
        raise ApiError(400, "invalid_campaign", "the campaign is invalid", exc.details) from None
    except ApprovalRefused as exc:
        details = {"state": exc.state.value, "action": exc.action, "reason": exc.reason}
        raise ApiError(exc.status, exc.code, str(exc), details) from None
    except TransitionRefused as exc:
        details = {"state": exc.state.value, "action": exc.action, "reason": exc.reason}
        raise ApiError(409, "invalid_transition", str(exc), details) from None


async def _json_body(request: web.Request) -> Any:
    return await json_value(request)


@requires(Role.MARKETER)
async def create_campaign(request: web.Request) -> web.Response:
    """Create a draft campaign → 201 with the campaign (and its text preview)."""
    settings, now = request.app[SETTINGS], request.app[CLOCK].now()
    try:
        spec = parse_campaign(
            await _json_body(request),
            now,
            settings.campaign_max_segments,
            settings.required_languages,
        )
    except SpecError as exc:
        raise ApiError(400, "invalid_campaign", "the campaign is invalid", exc.details) from None
    actor = caller_actor(request)
    campaign = await _repository(request).create(spec, actor.name, now, actor=actor)
    return web.json_response(_with_warnings(request, campaign), status=201)


@requires(Role.MARKETER)
async def edit_campaign(request: web.Request) -> web.Response:
    """PATCH a draft: the fields named (as in create) replace its own, validated as create
    validates → the campaign and its schedule warnings; 409 unless it is a draft."""
    settings, now = request.app[SETTINGS], request.app[CLOCK].now()
    body = await _json_body(request)
    with _domain_errors():
        campaign = await edit_draft(
            _repository(request),
            _campaign_id(request),
            body,
            now,
            settings.campaign_max_segments,
            settings.required_languages,
            actor=caller_actor(request),
        )
    return web.json_response(_with_warnings(request, campaign))


@requires(Role.MARKETER)
async def duplicate_campaign(request: web.Request) -> web.Response:
    """Copy any campaign into a new draft (texts and settings; no audience, nothing in the
    past) → 201 with the copy, ``duplicated_from`` and its schedule warnings."""
    settings, now = request.app[SETTINGS], request.app[CLOCK].now()
    with _domain_errors():
        campaign = await duplicate(
            _repository(request),
            _campaign_id(request),
            request[CALLER].name,
            now,
            settings.campaign_max_segments,
            settings.required_languages,
            actor=caller_actor(request),
        )
    body = _with_warnings(request, campaign) | {"duplicated_from": _campaign_id(request)}
    return web.json_response(body, status=201)


def _listed(request: web.Request, campaign: Campaign) -> dict[str, Any]:
    """The campaign's fields, with its start and end in the program's local time (to the
    second, with the offset)."""
    calendar = request.app[SETTINGS].calendar
    view = campaign_view(campaign)
    for key, instant in (("start_at_local", campaign.start_at), ("end_at_local", campaign.end_at)):
        view[key] = None if instant is None else calendar.local(instant).isoformat("T", "seconds")
    return view


def _with_warnings(request: web.Request, campaign: Campaign) -> dict[str, Any]:
    """:func:`_listed` and ``warnings``: what its schedule means against the send window."""
    calendar, now = request.app[SETTINGS].calendar, request.app[CLOCK].now()
    found = schedule_warnings(calendar, campaign.start_at, campaign.end_at, now)
    return _listed(request, campaign) | {"warnings": [w.as_dict(calendar) for w in found]}


@requires(Role.VIEWER)
async def list_campaigns(request: web.Request) -> web.Response:
    """A page of campaigns, newest first: ``?limit=50&before=<id>&state=running``; searched
    by ``?q=`` (name or partner), ``?name=``, ``?partner=`` (contains, any case)."""
    query = request.query
    asked = query_int(request, "limit", -BIGINT_MAX, BIGINT_MAX)
    limit = 50 if asked is None else min(max(asked, 1), 500)
    before = query_int(request, "before", 1, BIGINT_MAX)
    try:
        state = CampaignState(query["state"]) if "state" in query else None
    except ValueError:
        raise ApiError(400, "invalid_query", "state must be a campaign state") from None
    search = CampaignSearch(*(_search_words(request, key) for key in ("q", "name", "partner")))
    campaigns = await _repository(request).page(
        before_id=before, limit=limit, state=state, search=search
    )
    page = [_listed(request, c) for c in campaigns]
    next_before = campaigns[-1].id if len(campaigns) == limit else None
    return web.json_response({"campaigns": page, "next_before": next_before})


def _search_words(request: web.Request, key: str) -> str | None:
    """``?key=`` as search words (at most 200 characters, no NUL), else 400."""
    words = request.query.get(key)
    if words is not None and (len(words) > 200 or "\x00" in words):
        message = f"{key} must be at most 200 characters, without NUL"
        raise ApiError(400, "invalid_query", message, {"field": key})
    return words


@requires(Role.MARKETER)
async def preview_texts(request: web.Request) -> web.Response:
    """``{"texts": {lang: text}, "variables": {name: sample}, "variable_defaults": {…}}``
    → per language the encoding, SMS parts and characters (a blank or absent sample takes
    its default, as when sending)."""
    body = await _json_body(request)
    texts = body.get("texts") if isinstance(body, dict) else None
    sample = body.get("variables") or {} if isinstance(body, dict) else {}
    defaults = body.get("variable_defaults") or {} if isinstance(body, dict) else {}
    if (
        not isinstance(texts, dict)
        or not set(texts) <= LANGUAGES
        or not all(isinstance(t, str) for t in texts.values())
        or not isinstance(sample, dict)
        or not isinstance(defaults, dict)
    ):
        raise ApiError(400, "invalid_preview", 'expected {"texts": {"ru": "..."}}')
    values = {k: str(v) for k, v in sample.items()}
    return web.json_response(preview(texts, values, {k: str(v) for k, v in defaults.items()}))


@requires(Role.VIEWER)
async def get_campaign(request: web.Request) -> web.Response:
    """State, what it is doing in plain words (``status``), counts by delivery state and
    suppression reason, progress, survey results."""
    repository = _repository(request)
    campaign = await _campaign_or_404(request, repository)
    now = request.app[CLOCK].now()
    report = await campaign_report(
        repository, campaign, now, request.app[SETTINGS].calendar.finish_at
    )
    body = report_json(report, _min_cell(request))
    opted = await campaign_opt_outs(request.app[DATABASE].pool, campaign.id, report.counts)
    days = request.app[SETTINGS].inbox_attribution_days
    body["opt_outs"] = opt_outs_json(opted, report.counts, _min_cell(request), days)
    status = await status_of(
        request.app[DATABASE].pool,
        request.app[SETTINGS].calendar,
        campaign,
        report.counts.states,
        now,
        exact=sees_exact_counts(request[CALLER].role),
    )
    body["status"] = status.as_json()
    return web.json_response(body)


@requires(Role.VIEWER)
async def campaign_forecast_view(request: web.Request) -> web.Response:
    """What starting the campaign now would do with its queued audience: eligible,
    suppressed by reason, SMS parts per recipient (their values and language) and in total,
    and when sending would finish at the configured TPS through the send window. Counts
    for partner-facing callers as in the report (R11)."""
    repository = _repository(request)
    campaign = await _campaign_or_404(request, repository)
    settings, now = request.app[SETTINGS], request.app[CLOCK].now()
    forecast = await campaign_forecast(request.app[DATABASE].pool, campaign, settings, now)
    return web.json_response(forecast_json(forecast, _min_cell(request)))


@requires(Role.VIEWER)
async def campaign_variants_view(request: web.Request) -> web.Response:
    """Per text variant and for the holdout: counts, rates and each variant's uplift over
    the holdout with its 95% interval (campaigns/variant_report.py); R11 as the report."""
    repository = _repository(request)
    campaign = await _campaign_or_404(request, repository)
    report = await variant_report(repository, campaign, request.app[CLOCK].now())
    return web.json_response(variant_report_json(report, _min_cell(request)))


def _min_cell(request: web.Request) -> int:
    """R11: partner-facing callers see counts below the threshold as "< N"."""
    if sees_exact_counts(request[CALLER].role):
        return 1
    return int(request.app[SETTINGS].report_min_cell)


@requires(Role.VIEWER)
async def survey_results_csv(request: web.Request) -> web.Response:
    """Survey results as CSV (``?lang=ru``): counts per question and option, no numbers."""
    repository = _repository(request)
    campaign = await _campaign_or_404(request, repository)
    results = await survey_report(repository, campaign.id)
    if results is None:
        raise ApiError(404, "not_a_survey", f"campaign {campaign.id} has no survey")
    language = request.query.get("lang", request.app[SETTINGS].default_language)
    return web.Response(
        text=results_csv(results, language, _min_cell(request)),
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="campaign-{campaign.id}.csv"'},
    )


@requires(Role.MARKETER)
async def approve_campaign(request: web.Request) -> web.Response:
    """Maker-checker: approve a draft's content (optionally ``{"version": n}``, the content
    version the approver saw) → the campaign. 403 ``not_an_approver`` for a role outside
    SMARTD_APPROVER_ROLES; 409 ``self_approval`` (its creator), ``already_approved``,
    ``content_changed`` (not the version seen), ``not_a_draft``."""
    version = None
    if request.can_read_body:
        body = await _json_body(request)
        raw = body.get("version") if isinstance(body, dict) else None
        if not isinstance(body, dict) or (
            raw is not None and (type(raw) is not int or not 1 <= raw <= 2**31 - 1)
        ):
            raise ApiError(400, "invalid_approval", 'expected {"version": <content version>}')
        version = raw
    settings = request.app[SETTINGS]
    with _domain_errors():
        campaign = await _repository(request).approve(
            _campaign_id(request),
            caller_actor(request),
            request.app[CLOCK].now(),
            approver_roles=settings.approver_roles,
            version=version,
        )
    return web.json_response(campaign_view(campaign))


def _transition_handler(action: str) -> Handler:
    @requires(Role.MARKETER)
    async def change_state(request: web.Request) -> web.Response:
        now = request.app[CLOCK].now()
        with _domain_errors():
            campaign = await _repository(request).transition(
                _campaign_id(request),
                action,
                now,
                actor=caller_actor(request),
                approval_required=request.app[SETTINGS].approval_required,
            )
        return web.json_response(campaign_view(campaign))

    change_state.__name__ = change_state.__qualname__ = f"{action}_campaign"
    change_state.__doc__ = f"POST …/{{id}}/{action}: a guarded state change; 409 if refused."
    return change_state


@requires(Role.MARKETER)
async def add_audience(request: web.Request) -> web.Response:
    """A CSV body (``text/csv``), a multipart field ``file``, or ``{"segment": name}``.
    Columns: ``?number_column=<header>&column.<variable>=<header>`` (or the same as
    multipart fields before ``file``); without them the number is first and headers are
    matched to the variables by name."""
    settings = request.app[SETTINGS]
    repository, campaign_id = _repository(request), _campaign_id(request)
    if request.content_type == "application/json":
        return await _add_segment(request, repository, campaign_id)
    if request.content_length is not None and request.content_length > settings.audience_max_bytes:
        raise TooLarge("audience", settings.audience_max_bytes)
    limit = settings.audience_max_bytes
    fields: dict[str, str] = dict(request.query)
    body = _upload_chunks(request, fields)
    async with spooled_upload(request, body, "audience", limit) as chunks:
        with _domain_errors():
            result = await upload_audience(
                repository,
                campaign_id,
                chunks,
                region=settings.default_region,
                max_rows=settings.audience_max_rows,
                max_bytes=limit,
                now=request.app[CLOCK].now(),
                uploaded_by=request[CALLER].name,
                policy=settings.mobile_policy,
                mapping=_mapping(fields),
                actor=caller_actor(request),
                approval_required=settings.approval_required,
            )
    return web.json_response(result.as_dict())


def _mapping(fields: dict[str, str]) -> ColumnMapping:
    return mapping_from_fields(fields)


MAX_MAPPING_FIELD = 1024  # bytes of one multipart mapping field


async def _upload_chunks(request: web.Request, fields: dict[str, str]) -> AsyncIterator[bytes]:
    """The CSV bytes as they arrive: the raw body, or the multipart field ``file``; mapping
    fields of a multipart body before ``file`` are added to ``fields``."""
    if not request.content_type.startswith("multipart/"):
        async for chunk in request.content.iter_chunked(CHUNK):
            yield chunk
        return
    reader = await request.multipart()
    async for part in reader:
        if isinstance(part, BodyPartReader) and part.name == "file":
            while chunk := await part.read_chunk(CHUNK):
                yield chunk
            return
        name = part.name or "" if isinstance(part, BodyPartReader) else ""
        if isinstance(part, BodyPartReader) and (
            name == "number_column" or name.startswith("column.")
        ):
            raw = await part.read(decode=False)
            if len(raw) > MAX_MAPPING_FIELD:
                raise InputRefused(f"the field {name} is too long", code="invalid_mapping")
            fields[name] = raw.decode("utf-8", "replace")
    raise InputRefused("the multipart body has no field named 'file'", code="no_file")


@requires(Role.MARKETER)
async def rejected_rows_csv(request: web.Request) -> web.StreamResponse:
    """Every rejected row of the campaign's audience uploads as CSV (``upload, line, value,
    reason``), or of one upload: ``?upload=N``. Streamed from a cursor."""
    repository = _repository(request)
    campaign = await _campaign_or_404(request, repository)
    upload_no = query_int(request, "upload", 1, 2**31 - 1)
    uploads = {u.upload_no for u in await repository.uploads(campaign.id)}
    if upload_no is not None and upload_no not in uploads:
        raise ApiError(404, "not_found", f"campaign {campaign.id} has no upload {upload_no}")
    name = f"campaign-{campaign.id}-rejected" + (f"-{upload_no}" if upload_no else "") + ".csv"
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="{name}"',
        }
    )
    await response.prepare(request)
    async for text in rejected_csv(repository, campaign.id, upload_no):
        await response.write(text.encode())
    await response.write_eof()
    return response


async def _add_segment(
    request: web.Request, repository: CampaignRepository, campaign_id: int
) -> web.Response:
    body = await _json_body(request)
    segment = body.get("segment") if isinstance(body, dict) else None
    if segment not in SEGMENTS:
        raise ApiError(400, "invalid_segment", 'expected {"segment": ' + " | ".join(SEGMENTS) + "}")
    with _domain_errors():
        accepted = await repository.add_segment(
            campaign_id,
            segment,
            request.app[CLOCK].now(),
            actor=caller_actor(request),
            approval_required=request.app[SETTINGS].approval_required,
        )
    return web.json_response(
        {"accepted": accepted, "rejected": [], "duplicates": 0, "segment": segment}
    )
