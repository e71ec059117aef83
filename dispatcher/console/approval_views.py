"""Maker-checker and history on the campaign page (issue 15): the Approval block (who
approved which content version, or why this user may or may not approve it) with its
Approve button, and the campaign's History from the audit trail.

The approval goes through :meth:`campaigns.repository.CampaignRepository.approve`, as the
API's and the CLI's do: the same rules (an approver role, never the creator, the content
version the checker saw) and the same record.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from campaigns.models import Campaign
from campaigns.repository import CampaignRepository, approval_refusal
from dispatcher.console.guard import USER, console_actor
from dispatcher.kernel.audit import Actor, AuditEvent, AuditFilter, AuditLog
from dispatcher.kernel.states import Role
from dispatcher.kernel.values import parse_int
from dispatcher.web.keys import CLOCK, DATABASE, SETTINGS

#: Events shown in a campaign's History (the API pages through all of them).
HISTORY_SHOWN = 50


async def approve_as_user(request: web.Request, campaign_id: int) -> Campaign:
    """The signed-in user approves the campaign, of the content ``version`` the form showed.
    Raises CampaignNotFound or ApprovalRefused (the console's page says why)."""
    form = await request.post()
    raw = form.get("version")
    version = parse_int(raw if isinstance(raw, str) else None, 1, 2**31 - 1)
    return await CampaignRepository(request.app[DATABASE].pool).approve(
        campaign_id,
        console_actor(request),
        request.app[CLOCK].now(),
        approver_roles=request.app[SETTINGS].approver_roles,
        version=version,
    )


async def approval_context(request: web.Request, campaign: Campaign) -> dict[str, Any]:
    """The Approval block and the History of the campaign page, for ``campaign``."""
    user = request.get(USER)
    settings = request.app[SETTINGS]
    may_read = user is not None and user.role in (Role.ADMIN, Role.MARKETER)
    history: list[dict[str, Any]] = []
    if may_read:
        events = await AuditLog(request.app[DATABASE].pool).page(
            AuditFilter(campaign_id=campaign.id), limit=HISTORY_SHOWN
        )
        history = [{"event": e, "what": describe(e)} for e in events]
    blocked = None
    if user is not None:
        blocked = approval_blocked(campaign, user.name, user.role.value, settings.approver_roles)
    return {
        "approval": {
            "required": settings.approval_required,
            "current": campaign.approval,
            "version": campaign.content_version,
            "can_approve": user is not None and blocked is None,
            "blocked": blocked,
        },
        "history": history if may_read else None,
    }


def approval_blocked(
    campaign: Campaign, name: str, role: str, approver_roles: tuple[str, ...]
) -> str | None:
    """Why the person ``name`` (of ``role``) may not approve ``campaign`` now, in words for
    the page, or None (the repository's rule: :func:`approval_refusal`)."""
    refusal = approval_refusal(campaign, Actor(name, role), approver_roles)
    if refusal is None:
        return None
    code, reason = refusal
    if code == "self_approval":
        return "You created this campaign: another person must approve it."
    return reason[:1].upper() + reason[1:] + "."


def describe(event: AuditEvent) -> str:
    """An event's details in words for the History (counts and field names only)."""
    d = event.details
    words: list[str] = []
    if event.action == "create":
        words.append(f"“{d.get('name', '')}”")
        if "duplicated_from" in d:
            words.append(f"copy of #{d['duplicated_from']}")
    elif event.action == "edit":
        changed = d.get("changed") or []
        words.append("changed " + ", ".join(str(c).replace("_", " ") for c in changed))
    elif event.action == "upload":
        if "segment" in d:
            words.append(
                f"segment {str(d['segment']).replace('_', ' ')}: {d.get('accepted')} added"
            )
        else:
            words.append(
                f"upload {d.get('upload_no')}: {d.get('accepted')} accepted, "
                f"{d.get('duplicates')} duplicates, {d.get('rejected')} rejected"
            )
    elif event.action == "approve":
        words.append(f"content version {d.get('content_version')}")
    elif "state" in d:
        words.append(f"now {d['state']}")
        if d.get("suppressed"):
            words.append(f"{d['suppressed']} queued suppressed")
    if d.get("approval_cleared"):
        words.append("approval cleared")
    if event.action == "upload" and d.get("state") == "draft":
        words.append("back to draft")
    return " · ".join(w for w in words if w and w != "changed ")
