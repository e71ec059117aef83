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

from campaigns.audience import upload_audience
from campaigns.csvstream import InputRefused, TooLarge
from campaigns.disclosure import sees_exact_counts
from campaigns.models import SEGMENTS, Campaign, CampaignNotFound, TransitionRefused
from campaigns.reports import (
    campaign_report,
    campaign_view,
    report_json,
    results_csv,
    survey_report,
)
from campaigns.repository import CampaignRepository
from campaigns.spec import LANGUAGES, SpecError, parse_campaign
from campaigns.templates import preview
from dispatcher.engine.forecast import campaign_forecast, forecast_json
from dispatcher.kernel.states import CampaignState, Role
from dispatcher.kernel.values import BIGINT_MAX
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
    router.add_get(ITEM + "/results.csv", survey_results_csv)
    router.add_get(ITEM + "/forecast", campaign_forecast_view)
    router.add_post(ITEM + "/audience", add_audience)
    for action in ACTIONS:
        router.add_post(f"{ITEM}/{action}", _transition_handler(action))


def _repository(request: web.Request) -> CampaignRepository:
    return CampaignRepository(request.app[DATABASE].pool)


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
    campaign = await _repository(request).create(spec, request[CALLER].name, now)
    return web.json_response(campaign_view(campaign), status=201)


@requires(Role.VIEWER)
async def list_campaigns(request: web.Request) -> web.Response:
    """A page of campaigns, newest first: ``?limit=50&before=<id>&state=running``."""
    query = request.query
    asked = query_int(request, "limit", -BIGINT_MAX, BIGINT_MAX)
    limit = 50 if asked is None else min(max(asked, 1), 500)
    before = query_int(request, "before", 1, BIGINT_MAX)
    try:
        state = CampaignState(query["state"]) if "state" in query else None
    except ValueError:
        raise ApiError(400, "invalid_query", "state must be a campaign state") from None
    campaigns = await _repository(request).page(before_id=before, limit=limit, state=state)
    page = [campaign_view(c) for c in campaigns]
    next_before = campaigns[-1].id if len(campaigns) == limit else None
    return web.json_response({"campaigns": page, "next_before": next_before})


@requires(Role.MARKETER)
async def preview_texts(request: web.Request) -> web.Response:
    """``{"texts": {lang: text}, "variables": {name: sample}}`` → per language the
    encoding, SMS parts and characters."""
    body = await _json_body(request)
    texts = body.get("texts") if isinstance(body, dict) else None
    sample = body.get("variables") or {} if isinstance(body, dict) else {}
    if (
        not isinstance(texts, dict)
        or not set(texts) <= LANGUAGES
        or not all(isinstance(t, str) for t in texts.values())
        or not isinstance(sample, dict)
    ):
        raise ApiError(400, "invalid_preview", 'expected {"texts": {"ru": "..."}}')
    return web.json_response(preview(texts, {k: str(v) for k, v in sample.items()}))


@requires(Role.VIEWER)
async def get_campaign(request: web.Request) -> web.Response:
    """State, counts by delivery state and suppression reason, progress, survey results."""
    repository = _repository(request)
    campaign = await _campaign_or_404(request, repository)
    now = request.app[CLOCK].now()
    report = await campaign_report(repository, campaign, now)
    return web.json_response(report_json(report, _min_cell(request)))


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


def _transition_handler(action: str) -> Handler:
    @requires(Role.MARKETER)
    async def change_state(request: web.Request) -> web.Response:
        now = request.app[CLOCK].now()
        with _domain_errors():
            campaign = await _repository(request).transition(_campaign_id(request), action, now)
        return web.json_response(campaign_view(campaign))

    change_state.__name__ = change_state.__qualname__ = f"{action}_campaign"
    change_state.__doc__ = f"POST …/{{id}}/{action}: a guarded state change; 409 if refused."
    return change_state


@requires(Role.MARKETER)
async def add_audience(request: web.Request) -> web.Response:
    """A CSV body (``text/csv``), a multipart field ``file``, or ``{"segment": name}``."""
    settings = request.app[SETTINGS]
    repository, campaign_id = _repository(request), _campaign_id(request)
    if request.content_type == "application/json":
        return await _add_segment(request, repository, campaign_id)
    if request.content_length is not None and request.content_length > settings.audience_max_bytes:
        raise TooLarge("audience", settings.audience_max_bytes)
    limit = settings.audience_max_bytes
    async with spooled_upload(request, _upload_chunks(request), "audience", limit) as chunks:
        with _domain_errors():
            result = await upload_audience(
                repository,
                campaign_id,
                chunks,
                region=settings.default_region,
                max_rows=settings.audience_max_rows,
                max_bytes=limit,
            )
    return web.json_response(result.as_dict())


async def _upload_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The CSV bytes as they arrive: the raw body, or the multipart field ``file``."""
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
    raise InputRefused("the multipart body has no field named 'file'", code="no_file")


async def _add_segment(
    request: web.Request, repository: CampaignRepository, campaign_id: int
) -> web.Response:
    body = await _json_body(request)
    segment = body.get("segment") if isinstance(body, dict) else None
    if segment not in SEGMENTS:
        raise ApiError(400, "invalid_segment", 'expected {"segment": ' + " | ".join(SEGMENTS) + "}")
    with _domain_errors():
        accepted = await repository.add_segment(campaign_id, segment, request.app[CLOCK].now())
    return web.json_response(
        {"accepted": accepted, "rejected": [], "duplicates": 0, "segment": segment}
    )
