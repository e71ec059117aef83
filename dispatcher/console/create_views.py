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

from campaigns.messages import campaign_messages, messages_preview
from campaigns.models import Campaign
from campaigns.repository import CampaignRepository
from campaigns.spec import LANGUAGES, SpecError, parse_campaign
from campaigns.templates import preview
from campaigns.triggers import describe_fields
from dispatcher.console.campaign_views import load_or_map
from dispatcher.console.forms import (
    LANGUAGE_ORDER,
    campaign_payload,
    form_errors,
    merge_languages,
    parse_script,
)
from dispatcher.console.guard import (
    MULTIPART,
    action,
    console_actor,
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
#: The create form's "Triggered by event" choices (issue 15): event type, label.
TRIGGER_EVENT_LABELS = (
    ("top_up", "Top-up (top_up)"),
    ("subscriber_status", "Status change (status)"),
    ("tariff_change", "Tariff change (tariff_change)"),
)


@view(Role.MARKETER)
async def new_campaign(request: web.Request) -> web.StreamResponse:
    """The empty create form."""
    return form_page(request, {"kind": "info", "scope": "smart", "timeout_hours": "24"}, {})


def form_page(
    request: web.Request,
    form: dict[str, str],
    errors: dict[str, str],
    status: int = 200,
    editing: Campaign | None = None,
    chosen_file: str | None = None,
) -> web.Response:
    """The create form, or with ``editing`` the same form saving that draft."""
    context = {
        "editing": editing,
        "chosen_file": chosen_file,
        "form": form,
        "errors": errors,
        "languages": LANGUAGE_ORDER,
        "required_languages": request.app[SETTINGS].required_languages,  # R15
        "kinds": [k.value for k in ContactKind],
        "scopes": [s.value for s in CampaignScope],
        "zone": request.app[SETTINGS].calendar.zone.key,
        "max_parts": request.app[SETTINGS].campaign_max_segments,
        "trigger_events": TRIGGER_EVENT_LABELS,
        "trigger_fields": "; ".join(describe_fields()),
    }
    return render(request, "campaign_new.html", context, status=status)


@action(Role.MARKETER, body="multipart")
async def create_campaign(request: web.Request) -> web.StreamResponse:
    """Create a draft campaign from the form (and load its audience file if one was
    chosen) → 303 to its page; an invalid form comes back with the problems (400)."""
    form, file_part = await read_form(request)
    settings, now = request.app[SETTINGS], request.app[CLOCK].now()
    payload, errors = campaign_payload(form, settings.calendar.zone)
    try:
        spec = parse_campaign(
            payload, now, settings.campaign_max_segments, settings.required_languages
        )
    except SpecError as exc:
        errors = form_errors(exc.details, errors)
    if errors:
        # The browser cannot be given a chosen file back: name it, to be chosen again
        # (with the console's script the page is not reloaded and the file stays chosen).
        chosen = file_part.filename if file_part is not None else None
        return form_page(request, form, errors, status=400, chosen_file=chosen)
    repository = CampaignRepository(request.app[DATABASE].pool)
    actor = console_actor(request)
    campaign = await repository.create(spec, actor.name, now, actor=actor)
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


async def read_form(request: web.Request) -> tuple[dict[str, str], BodyPartReader | None]:
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
    """``{"texts": {lang: text}}`` → per language the encoding, parts and characters of the
    campaign's (first) message; with ``"kind": "survey"``, the form's ``survey`` scripts and
    ``thanks`` per language, that first message is intro + question 1 as sent. Beside them,
    ``messages``: every message composed as sent (campaigns.messages), each language's cost
    and whether it is past the part limit, the ``limit`` and the ``warnings`` to show."""
    body = await json_value(request)
    texts = body.get("texts") if isinstance(body, dict) else None
    if not isinstance(texts, dict) or not set(texts) <= LANGUAGES:
        raise ApiError(400, "invalid_preview", 'expected {"texts": {"ru": "..."}}')
    clean = _language_texts(texts)
    kind = "survey" if body.get("kind") == "survey" else "info"
    questions: list[dict[str, Any]] = []
    problem = None
    scripts = _language_texts(body.get("survey")) if kind == "survey" else {}
    if scripts:
        questions, problem = merge_languages({k: parse_script(v) for k, v in scripts.items()})
    messages = campaign_messages(kind, clean, questions, _language_texts(body.get("thanks")))
    limit = request.app[SETTINGS].campaign_max_segments
    detail = messages_preview(messages, limit)
    if problem:
        detail["warnings"].insert(0, f"Survey: {problem}")
    first = detail["messages"][0]["costs"] if detail["messages"] else preview(clean)
    result: dict[str, Any] = {**first, **detail, "kind": kind}
    return web.json_response(result)


def _language_texts(value: Any) -> dict[str, str]:
    """``{lang: text}`` of the known languages with text, browser line endings made LF."""
    if not isinstance(value, dict):
        return {}
    return {
        lang: text.replace("\r\n", "\n")
        for lang, text in value.items()
        if lang in LANGUAGES and isinstance(text, str) and text.strip()
    }
