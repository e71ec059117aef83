"""Campaign domain records: frozen dataclasses built from database rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from campaigns.triggers import Trigger
from dispatcher.kernel.states import (
    CampaignScope,
    CampaignState,
    ContactKind,
    DeliveryState,
    SuppressionReason,
    SurveySessionState,
)

#: States in which an audience may still be added.
AUDIENCE_OPEN = frozenset({CampaignState.DRAFT, CampaignState.SCHEDULED, CampaignState.PAUSED})
#: Segments an audience can be taken from instead of a file.
SEGMENTS = ("smart_members", "active_subscribers")


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    name: str
    partner: str
    kind: ContactKind
    scope: CampaignScope
    state: CampaignState
    texts: dict[str, str]
    variables: list[str]
    priority: int
    apply_caps: bool
    start_at: datetime | None
    end_at: datetime | None
    segment: str | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    #: variable → the value a blank cell takes ("" : optional, renders empty); migration 0031
    variable_defaults: dict[str, str] = field(default_factory=dict)
    #: Maker-checker (migration 0038): the content's version (texts, schedule, survey,
    #: audience), its current approval (None: unapproved), and whether it was started
    #: while approval was required.
    content_version: int = 1
    approval: Approval | None = None
    approval_required: bool = False
    #: text variants [{"name", "texts", "percent"}], [] for one text (migration 0039)
    variants: list[dict[str, Any]] = field(default_factory=list)
    holdout_percent: int = 0
    #: the operator event that queues its message (migration 0041); None: an audience's
    trigger: Trigger | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Campaign:
        return cls(
            id=row["id"],
            name=row["name"],
            partner=row["partner"],
            kind=ContactKind(row["kind"]),
            scope=CampaignScope(row["scope"]),
            state=CampaignState(row["state"]),
            texts=row["texts"],
            variables=list(row["variables"]),
            priority=row["priority"],
            apply_caps=row["apply_caps"],
            start_at=row["start_at"],
            end_at=row["end_at"],
            segment=row["segment"],
            created_by=row["created_by"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            variable_defaults=dict(row.get("variable_defaults") or {}),
            variants=list(row.get("variants") or []),
            holdout_percent=row.get("holdout_percent") or 0,
            content_version=row.get("content_version") or 1,
            approval=Approval.from_row(row),
            approval_required=bool(row.get("approval_required")),
            trigger=Trigger.from_row(row),
        )


@dataclass(frozen=True, slots=True)
class Approval:
    """Who approved a campaign's content (a person other than its creator), when, as what
    role, and which content version."""

    by: str
    role: str | None
    at: datetime
    version: int

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Approval | None:
        if row.get("approved_by") is None:
            return None
        return cls(
            row["approved_by"], row["approved_role"], row["approved_at"], row["approved_version"]
        )


@dataclass(frozen=True, slots=True)
class Survey:
    """A survey's questions ``[{"texts": {lang: q}, "options": [{lang: o}]}]`` and thanks."""

    id: int
    campaign_id: int
    questions: list[dict[str, Any]]
    thanks: dict[str, str]
    timeout: timedelta

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Survey:
        return cls(
            id=row["id"],
            campaign_id=row["campaign_id"],
            questions=row["questions"],
            thanks=row["thanks"],
            timeout=row["timeout"],
        )

    def options(self, question_no: int, language: str) -> list[str]:
        """Option texts of question ``question_no`` (1-based) in ``language``."""
        return [option[language] for option in self.questions[question_no - 1]["options"]]


@dataclass(frozen=True, slots=True)
class DeliveryTally:
    """One group of a campaign's deliveries (same state and suppression reason): how many,
    how many were submitted since the throughput window began, first and last submit."""

    state: DeliveryState
    suppressed: SuppressionReason | None
    n: int
    recent: int
    first_submitted: datetime | None
    last_submitted: datetime | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> DeliveryTally:
        reason = row["suppressed"]
        return cls(
            state=DeliveryState(row["state"]),
            suppressed=None if reason is None else SuppressionReason(reason),
            n=row["n"],
            recent=row["recent"],
            first_submitted=row["first_submitted"],
            last_submitted=row["last_submitted"],
        )


@dataclass(frozen=True, slots=True)
class SurveyCounts:
    """A survey's answers per (question, option) and sessions per state (absent: none)."""

    answers: Mapping[tuple[int, int], int]
    sessions: Mapping[SurveySessionState, int]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> SurveyCounts:
        """From ``survey_counts`` rows: a state counts sessions, else a question's option."""
        answers: dict[tuple[int, int], int] = {}
        sessions: dict[SurveySessionState, int] = {}
        for row in rows:
            if row["state"] is None:
                answers[(row["question_no"], row["option_no"])] = row["n"]
            else:
                sessions[SurveySessionState(row["state"])] = row["n"]
        return cls(answers, sessions)


@dataclass(frozen=True, slots=True)
class Rejected:
    """An audience row that was not queued: its line number, first cell and why."""

    line: int
    value: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "value": self.value, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class AudienceResult:
    """What an audience upload did; ``rejected`` holds at most the first rows of
    ``rejected_total``."""

    accepted: int
    duplicates: int
    rejected_total: int
    rejected: list[Rejected] = field(default_factory=list)
    lines: int = 0
    copy_seconds: float = 0.0  # receiving, parsing (batches COPYed and queued meanwhile)
    queue_seconds: float = 0.0  # after the last row was read: the last batches queued, commit
    upload_no: int | None = None  # audience_uploads (migration 0029)
    campaign_id: int | None = None

    @property
    def rejected_csv(self) -> str | None:
        """Where every rejected row of this upload is downloaded (HTTP API)."""
        if self.campaign_id is None or self.upload_no is None:
            return None
        return f"/api/v1/campaigns/{self.campaign_id}/audience/rejected.csv?upload={self.upload_no}"

    def as_dict(self) -> dict[str, object]:
        return {
            "upload_no": self.upload_no,
            "rejected_csv": self.rejected_csv,
            "accepted": self.accepted,
            "rejected": [r.as_dict() for r in self.rejected],
            "rejected_total": self.rejected_total,
            "rejected_truncated": self.rejected_total > len(self.rejected),
            "duplicates": self.duplicates,
            "lines": self.lines,
            "timing": {
                "copy_s": round(self.copy_seconds, 3),
                "queue_s": round(self.queue_seconds, 3),
            },
        }


class CampaignNotFound(LookupError):
    """No campaign has this id."""


class TransitionRefused(Exception):
    """A state change that the campaign's current state (or its content) does not allow.

    ``str()`` is one sentence for people: ``campaign 7: cannot start: the campaign is already
    running``; ``reason`` is its part after the action (the console shows "Cannot start: …",
    the API puts it in ``details.reason`` beside the stable code ``invalid_transition``).
    """

    def __init__(self, campaign_id: int, action: str, state: CampaignState, reason: str) -> None:
        super().__init__(f"campaign {campaign_id}: cannot {action}: {reason}")
        self.campaign_id = campaign_id
        self.action = action
        self.state = state
        self.reason = reason


class EditRefused(TransitionRefused):
    """An edit the campaign refuses: ``code`` ``not_a_draft`` (only a draft can be edited) or
    ``audience_columns_fixed`` (its audience's rows carry values for its columns)."""

    def __init__(self, campaign_id: int, state: CampaignState, code: str, reason: str) -> None:
        super().__init__(campaign_id, "edit", state, reason)
        self.code = code


class ApprovalRefused(TransitionRefused):
    """Maker-checker refused ``action``: ``code`` says why (``approval_required``: a start
    without an approval; ``self_approval``: the creator approving; ``not_an_approver``: a
    role that may not approve (403); ``already_approved``; ``content_changed``: the content
    changed since the version the approver saw; ``not_a_draft``; ``approval_frozen``: a
    started campaign's audience cannot change)."""

    def __init__(
        self,
        campaign_id: int,
        action: str,
        state: CampaignState,
        code: str,
        reason: str,
        status: int = 409,
    ) -> None:
        super().__init__(campaign_id, action, state, reason)
        self.code = code
        self.status = status


_FINISHED_REASONS = {
    CampaignState.COMPLETED: "the campaign has finished",
    CampaignState.CANCELLED: "the campaign was cancelled",
    CampaignState.EXPIRED: "the campaign's end time has passed",
}
#: (action, state) → why that state refuses it, in words; the rest fall back to the state.
_STATE_REASONS = {
    ("start", CampaignState.RUNNING): "the campaign is already running",
    ("start", CampaignState.SCHEDULED): "the campaign is already scheduled",
    ("start", CampaignState.PAUSED): "the campaign is paused; resume it instead",
    ("pause", CampaignState.PAUSED): "the campaign is already paused",
    ("pause", CampaignState.DRAFT): "the campaign has not been started",
    ("resume", CampaignState.RUNNING): "the campaign is already running",
    ("resume", CampaignState.SCHEDULED): "the campaign is scheduled, not paused",
    ("resume", CampaignState.DRAFT): "the campaign has not been started",
    ("cancel", CampaignState.CANCELLED): "the campaign is already cancelled",
    ("add an audience", CampaignState.RUNNING): "the campaign is running; pause it first",
}
#: Why a triggered campaign refuses an audience file or segment (issue 15).
TRIGGERED_NO_AUDIENCE = (
    "the campaign is triggered by operator events: its recipients come from the events, "
    "not from an audience"
)


def state_refusal(action: str, state: CampaignState) -> str:
    """Why a campaign in ``state`` cannot ``action``, as words for the operator."""
    reason = _STATE_REASONS.get((action, state)) or _FINISHED_REASONS.get(state)
    return reason or f"the campaign is {state}"
