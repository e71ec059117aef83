"""Creating a campaign: the form, its submission (with an optional audience file) and the
live preview of encoding and SMS parts that the form's script asks for as you type.

The form is multipart so the audience streams straight into the database: ``csrf`` comes
first (checked by the guard), then the fields, then ``file`` last. The campaign is created
when the file part is reached, then the file is loaded into it; a file that is refused
leaves the draft campaign without an audience and says why.
"""

from __future__ import annotations

from typing import Any

from aiohttp import BodyPartReader, web

from campaigns.repository import CampaignRepository
from campaigns.spec import LANGUAGES, SpecError, parse_campaign
from campaigns.templates import preview
from dispatcher.console.campaign_views import load_or_map
from dispatcher.console.forms import LANGUAGE_ORDER, campaign_payload, flatten_errors
from dispatcher.console.guard import (
    MULTIPART,
    USER,
    action,
    read_field,
    render,
    see_other,
    view,
)
from dispatcher.kernel.states import CampaignScope, ContactKind, Role
from dispatcher.web.bodies import json_value
from dispatcher.web.errors import ApiError
from dispatcher.web.keys import CLOCK, DATABASE, SETTINGS

MAX_FIELD_BYTES = 64 * 1024  # one text field; a campaign text is at most a few KB
MAX_FIELDS = 40


@view(Role.MARKETER)
async def new_campaign(request: web.Request) -> web.StreamResponse:
    """The empty create form."""
    return _form_page(request, {"kind": "info", "scope": "smart", "timeout_hours": "24"}, {})


def _form_page(
    request: web.Request, form: dict[str, str], errors: dict[str, str], status: int = 200
) -> web.Response:
    context = {
        "form": form,
        "errors": errors,
        "languages": LANGUAGE_ORDER,
        "required_languages": request.app[SETTINGS].required_languages,  # R15
        "kinds": [k.value for k in ContactKind],
        "scopes": [s.value for s in CampaignScope],
        "zone": request.app[SETTINGS].calendar.zone.key,
    }
    return render(request, "campaign_new.html", context, status=status)


@action(Role.MARKETER, body="multipart")
async def create_campaign(request: web.Request) -> web.StreamResponse:
    """Create a draft campaign from the form (and load its audience file if one was
    chosen) → 303 to its page; an invalid form comes back with the problems (400)."""
    form, file_part = await _read_form(request)
    settings, now = request.app[SETTINGS], request.app[CLOCK].now()
    payload, errors = campaign_payload(form, settings.calendar.zone)
    try:
        spec = parse_campaign(
            payload, now, settings.campaign_max_segments, settings.required_languages
        )
    except SpecError as exc:
        errors = flatten_errors(exc.details) | errors
    if errors:
        return _form_page(request, form, errors, status=400)
    repository = CampaignRepository(request.app[DATABASE].pool)
    campaign = await repository.create(spec, request[USER].name, now)
    location = f"/console/campaigns/{campaign.id}"
    if file_part is None:
        return see_other(location + "?done=created")
    outcome = await load_or_map(request, campaign, file_part)
    if outcome.mapping is not None:  # its columns need mapping: the campaign page asks
        return see_other(f"{location}?mapping={outcome.mapping['token']}")
    result = outcome.result
    if result is None:
        return see_other(location + "?done=upload_refused")
    counts = (result["accepted"], result["rejected_total"], result["duplicates"])
    return see_other("{}?accepted={}&rejected={}&duplicates={}".format(location, *counts))


async def _read_form(request: web.Request) -> tuple[dict[str, str], BodyPartReader | None]:
    """The text fields up to the ``file`` part, and that part if a file was chosen."""
    form: dict[str, str] = {}
    reader = request[MULTIPART]
    for _ in range(MAX_FIELDS):
        part = await reader.next()
        if not isinstance(part, BodyPartReader):
            break
        if part.name == "file":
            return form, part if part.filename else None
        text = await read_field(part, MAX_FIELD_BYTES)
        if part.name and text is not None:
            form[part.name] = text
    return form, None


@action(Role.MARKETER, body="json")
async def preview_texts(request: web.Request) -> web.StreamResponse:
    """``{"texts": {lang: text}}`` → per language encoding, parts and characters (the
    campaign domain's :func:`preview`, as the API's preview endpoint)."""
    body = await json_value(request)
    texts = body.get("texts") if isinstance(body, dict) else None
    if not isinstance(texts, dict) or not set(texts) <= LANGUAGES:
        raise ApiError(400, "invalid_preview", 'expected {"texts": {"ru": "..."}}')
    clean = {
        lang: text.replace("\r\n", "\n")
        for lang, text in texts.items()
        if isinstance(text, str) and text
    }
    result: dict[str, Any] = preview(clean)
    return web.json_response(result)
