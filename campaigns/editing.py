"""Editing a draft and duplicating any campaign, through the create payload.

A campaign is turned back into the payload of ``POST /api/v1/campaigns`` that would create it
(:func:`stored_payload`); an edit lays the fields it names over that payload, a copy adjusts
it, and either goes through :func:`campaigns.spec.parse_campaign` again: the same validation
as create (R7, R15, variables, parts), for the API, the console and the CLI alike.

A survey's stored text is its first message (intro + question 1, composed at creation): the
payload carries the intro alone again (:func:`campaigns.templates.intro_of`), so an edit of
the questions keeps the intro and an edit of the intro keeps the questions.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from campaigns.models import Campaign, CampaignNotFound, EditRefused, Survey
from campaigns.repository import CampaignRepository
from campaigns.spec import SpecError, parse_campaign
from campaigns.templates import intro_of
from dispatcher.kernel.audit import SYSTEM, Actor
from dispatcher.kernel.states import CampaignState, ContactKind

COPY_SUFFIX = " (copy)"
MAX_NAME = 200


def stored_payload(campaign: Campaign, survey: Survey | None) -> dict[str, Any]:
    """The create payload that makes ``campaign`` as it is (its state and audience aside)."""
    payload: dict[str, Any] = {
        "name": campaign.name,
        "partner": campaign.partner,
        "kind": campaign.kind.value,
        "scope": campaign.scope.value,
        "variables": list(campaign.variables),
        "variable_defaults": dict(campaign.variable_defaults),
        "priority": campaign.priority,
        "start_at": campaign.start_at.isoformat() if campaign.start_at else None,
        "end_at": campaign.end_at.isoformat() if campaign.end_at else None,
        "texts": dict(campaign.texts),
        "holdout_percent": campaign.holdout_percent,
    }
    if campaign.variants:
        payload["variants"] = [dict(variant) for variant in campaign.variants]
    if campaign.trigger is not None:
        payload["trigger"] = campaign.trigger.as_json()
    if campaign.kind is ContactKind.SURVEY and survey is not None:
        first = survey.questions[0]
        intros = {lang: intro_of(text, first, lang) for lang, text in campaign.texts.items()}
        payload.pop("texts")
        if any(intros.values()):
            payload["texts"] = {lang: intro for lang, intro in intros.items() if intro}
        payload["survey"] = {
            "questions": survey.questions,
            "thanks": survey.thanks,
            "timeout_hours": survey.timeout.total_seconds() / 3600,
        }
    return payload


def edited_payload(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` with the fields ``changes`` names replaced (``null`` clears ``start_at``
    or ``end_at``); an info campaign made a survey loses its info text unless one is given
    (a survey's ``texts`` are its intro), and a survey made an info campaign its survey (a
    ``survey`` given with an info kind is kept, for the validation to refuse, as create does).
    New ``variants`` without ``texts`` replace the texts too, and new ``texts`` without
    ``variants`` are variant A's new texts (``texts`` is variant A's)."""
    payload = {**current, **changes}
    if "variants" in changes and "texts" not in changes and changes["variants"]:
        payload.pop("texts", None)  # the new variants' A is the text (campaigns/variants.py)
    elif "texts" in changes and "variants" not in changes and current.get("variants"):
        variants = [dict(variant) for variant in current["variants"]]
        variants[0]["texts"] = changes["texts"]  # texts is variant A's
        payload["variants"] = variants
    if payload.get("kind") != ContactKind.SURVEY.value and "survey" not in changes:
        payload.pop("survey", None)
    elif current.get("kind") != ContactKind.SURVEY.value and "texts" not in changes:
        payload.pop("texts", None)
    return payload


def copy_name(name: str) -> str:
    """``name (copy)``, the name shortened to fit 200 characters."""
    return name[: MAX_NAME - len(COPY_SUFFIX)].rstrip() + COPY_SUFFIX


async def edit_draft(
    repository: CampaignRepository,
    campaign_id: int,
    changes: Any,
    now: datetime,
    max_segments: int,
    required_languages: Collection[str],
    actor: Actor = SYSTEM,
) -> Campaign:
    """Apply ``changes`` (fields of the create payload) to a draft and store it, recorded in
    the audit trail as ``actor``'s (an edit clears an approval: the content changed).

    Raises :class:`CampaignNotFound`, :class:`EditRefused` (not a draft, or the columns of
    its audience would change) or :class:`SpecError` (the edited campaign is invalid)."""
    if not isinstance(changes, Mapping):
        raise SpecError({"body": "expected a JSON object of the fields to change"})
    campaign = await repository.get(campaign_id)
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    if campaign.state is not CampaignState.DRAFT:
        raise EditRefused(campaign_id, campaign.state, "not_a_draft", "only a draft can be edited")
    current = stored_payload(campaign, await repository.get_survey(campaign_id))
    spec = parse_campaign(edited_payload(current, changes), now, max_segments, required_languages)
    return await repository.update_draft(campaign_id, spec, now, actor=actor)


async def duplicate(
    repository: CampaignRepository,
    campaign_id: int,
    created_by: str | None,
    now: datetime,
    max_segments: int,
    required_languages: Collection[str],
    actor: Actor | None = None,
) -> Campaign:
    """A new draft with the texts and settings of campaign ``campaign_id`` (any state):
    named "… (copy)", no audience, and no time already past (a past start or end is
    dropped). Raises :class:`CampaignNotFound`, or :class:`SpecError` when the campaign
    would not be accepted today (e.g. a language made required since)."""
    campaign = await repository.get(campaign_id)
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    payload = stored_payload(campaign, await repository.get_survey(campaign_id))
    payload["name"] = copy_name(campaign.name)
    for key, instant in (("start_at", campaign.start_at), ("end_at", campaign.end_at)):
        if instant is not None and instant <= now:
            payload[key] = None
    spec = parse_campaign(payload, now, max_segments, required_languages)
    return await repository.create(
        spec, created_by, now, actor=actor, details={"duplicated_from": campaign_id}
    )
