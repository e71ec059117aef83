"""Editing a draft (the create form, filled with the draft and saving it) and duplicating any
campaign into a new draft, through the campaign domain's :mod:`campaigns.editing` as the API
and the CLI do: the same validation as create."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from campaigns.editing import duplicate, edit_draft, stored_payload
from campaigns.models import Campaign, CampaignNotFound, EditRefused
from campaigns.repository import CampaignRepository
from campaigns.spec import SpecError, flatten_errors
from dispatcher.console.create_views import form_page, read_form
from dispatcher.console.forms import campaign_form, campaign_payload
from dispatcher.console.guard import USER, action, console_actor, error_page, see_other, view
from dispatcher.kernel.states import CampaignState, ContactKind, Role
from dispatcher.web.keys import CLOCK, DATABASE, SETTINGS
from dispatcher.web.params import path_id


def _repository(request: web.Request) -> CampaignRepository:
    return CampaignRepository(request.app[DATABASE].pool)


def _not_found(request: web.Request) -> web.Response:
    return error_page(request, 404, "No such campaign", "It may have been removed.")


def _not_a_draft(request: web.Request, campaign_id: int, state: CampaignState) -> web.Response:
    return error_page(
        request,
        409,
        "Only a draft can be edited",
        f"Campaign {campaign_id} is {state}. Use Duplicate on its page to edit a copy.",
    )


@view(Role.MARKETER)
async def edit_form(request: web.Request) -> web.StreamResponse:
    """The create form filled with a draft's fields (409 page for any other state)."""
    repository = _repository(request)
    campaign = await repository.get(path_id(request))
    if campaign is None:
        return _not_found(request)
    if campaign.state is not CampaignState.DRAFT:
        return _not_a_draft(request, campaign.id, campaign.state)
    payload = stored_payload(campaign, await repository.get_survey(campaign.id))
    form = campaign_form(payload, request.app[SETTINGS].calendar.zone)
    return form_page(request, form, {}, editing=campaign)


@action(Role.MARKETER, body="multipart")
async def save_edit(request: web.Request) -> web.StreamResponse:
    """Save the edit form into the draft → 303 to its page (``?done=edited``); an invalid
    form comes back with the problems (400), a campaign no longer a draft is a 409 page."""
    campaign_id = path_id(request)
    repository = _repository(request)
    campaign = await repository.get(campaign_id)
    if campaign is None:
        return _not_found(request)
    form, _ = await read_form(request)
    settings = request.app[SETTINGS]
    changes, errors = _changes(form, settings.calendar.zone)
    if campaign.state is not CampaignState.DRAFT:
        return _not_a_draft(request, campaign_id, campaign.state)
    if errors:
        return form_page(request, form, errors, status=400, editing=campaign)
    try:
        await edit_draft(
            repository,
            campaign_id,
            changes,
            request.app[CLOCK].now(),
            settings.campaign_max_segments,
            settings.required_languages,
            actor=console_actor(request),
        )
    except CampaignNotFound:
        return _not_found(request)
    except EditRefused as exc:
        if exc.code == "not_a_draft":
            return _not_a_draft(request, campaign_id, exc.state)
        return form_page(request, form, {"variables": exc.reason}, status=409, editing=campaign)
    except SpecError as exc:
        return form_page(request, form, flatten_errors(exc.details), status=400, editing=campaign)
    return see_other(f"/console/campaigns/{campaign_id}?done=edited")


def _changes(form: dict[str, str], zone: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The form as the fields of an edit: every field the form has replaces the draft's, so
    an emptied start, end, defaults or survey intro clears it (the priority, not on the
    form, stays)."""
    payload, errors = campaign_payload(form, zone)
    for key in ("start_at", "end_at"):
        payload.setdefault(key, None)
    payload.setdefault("variable_defaults", {})
    payload.setdefault("variants", [])  # B–D emptied: one text again (issue 15)
    payload.setdefault("holdout_percent", 0)
    payload.setdefault("trigger", None)  # "Triggered by event" left empty: an audience's
    if payload["kind"] == ContactKind.SURVEY.value:
        payload.setdefault("texts", None)
    return payload, errors


@action(Role.MARKETER)
async def duplicate_campaign(request: web.Request) -> web.StreamResponse:
    """Copy the campaign (any state) into a new draft → 303 to the copy's page."""
    campaign_id = path_id(request)
    settings = request.app[SETTINGS]
    try:
        copy: Campaign = await duplicate(
            _repository(request),
            campaign_id,
            request[USER].name,
            request.app[CLOCK].now(),
            settings.campaign_max_segments,
            settings.required_languages,
            actor=console_actor(request),
        )
    except CampaignNotFound:
        return _not_found(request)
    except SpecError as exc:
        problems = "; ".join(f"{k}: {v}" for k, v in flatten_errors(exc.details).items())
        message = f"Today's rules refuse a copy of campaign {campaign_id}: {problems}."
        return error_page(request, 400, "Cannot duplicate", message)
    return see_other(f"/console/campaigns/{copy.id}?done=duplicated&from={campaign_id}")
