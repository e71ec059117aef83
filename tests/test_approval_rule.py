"""The maker-checker rule as a pure function (``campaigns.repository.approval_refusal``),
searched by hypothesis: whoever, whatever state, approval, role and version seen, an approval
is allowed exactly when an approver role approves a not yet approved draft it did not create,
of the version it saw; the console's words come from the same rule."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from campaigns.models import Approval, Campaign
from campaigns.repository import approval_refusal
from dispatcher.console.approval_views import approval_blocked
from dispatcher.kernel.audit import Actor
from dispatcher.kernel.states import CampaignScope, CampaignState, ContactKind

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PEOPLE = st.sampled_from(["aida", "bolat", "cli:root", "Aida"])
ROLES = st.sampled_from(["admin", "marketer", "viewer", None])
APPROVERS = st.sampled_from([("admin",), ("marketer",), ("admin", "marketer")])


def campaign(state: CampaignState, creator: str | None, version: int, approver: str | None):
    approval = None if approver is None else Approval(approver, "admin", NOW, version)
    return Campaign(
        id=1,
        name="Coffee",
        partner="",
        kind=ContactKind.INFO,
        scope=CampaignScope.SMART,
        state=state,
        texts={"kk": "Кофе"},
        variables=[],
        priority=0,
        apply_caps=True,
        start_at=None,
        end_at=None,
        segment=None,
        created_by=creator,
        created_at=NOW,
        started_at=None,
        finished_at=None,
        content_version=version,
        approval=approval,
    )


@given(
    state=st.sampled_from(CampaignState),
    creator=st.none() | PEOPLE,
    approver=st.none() | PEOPLE,
    version=st.integers(1, 5),
    seen=st.none() | st.integers(1, 5),
    name=PEOPLE,
    role=ROLES,
    roles=APPROVERS,
)
def test_an_approval_is_allowed_exactly_when_the_rule_says(
    state, creator, approver, version, seen, name, role, roles
) -> None:
    """None (allowed) iff every condition holds; otherwise the first that fails is named."""
    subject = campaign(state, creator, version, approver)
    refusal = approval_refusal(subject, Actor(name, role), roles, seen)
    checks = [
        ("not_an_approver", role in roles),
        ("not_a_draft", state is CampaignState.DRAFT),
        ("self_approval", name != creator),
        ("already_approved", approver is None),
        ("content_changed", seen is None or seen == version),
    ]
    failing = [code for code, ok in checks if not ok]
    if not failing:
        assert refusal is None
    else:
        assert refusal is not None and refusal[0] == failing[0]
    shown = approval_blocked(subject, name, role or "viewer", roles)
    assert (shown is None) == (refusal is None or refusal[0] == "content_changed")
