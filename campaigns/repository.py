"""CampaignRepository: the one caller of ``campaigns/sql/campaigns.sql``.

It works on a pool or on a connection (then inside the caller's transaction, which lets the
engine run the periodic functions in its own transaction). Every state change is one
guarded UPDATE; when it matches nothing, :meth:`_refused` reads why and raises
:class:`TransitionRefused` (or :class:`CampaignNotFound`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple, TypeAlias

import asyncpg

from campaigns.csvstream import InputRefused
from campaigns.models import (
    AUDIENCE_OPEN,
    TRIGGERED_NO_AUDIENCE,
    ApprovalRefused,
    Campaign,
    CampaignNotFound,
    DeliveryTally,
    EditRefused,
    Survey,
    SurveyCounts,
    TransitionRefused,
    state_refusal,
)
from campaigns.spec import CampaignSpec
from dispatcher.kernel.audit import SYSTEM, Actor, AuditAction, record
from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import CampaignState

Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection
#: Rows COPYed and queued at a time by :meth:`AudienceLoad.load` (~25 MB of COPY text).
#: Large: each batch is inserted in msisdn order, and one sorted run appends to the right
#: edge of deliveries' msisdn indexes where a second run of the same range descends the
#: trees and splits pages in their middle — 500,000 rows took 30.4 and 31.4 s in one
#: batch, 45.7 and 47.7 s in five (issue 16, alternated, loaded host).
LOAD_BATCH = 1_000_000
S = CampaignState
#: What an edit may change, as recorded in the audit trail (names of the fields only).
CONTENT_FIELDS = (
    "name",
    "partner",
    "kind",
    "scope",
    "texts",
    "variables",
    "variable_defaults",
    "priority",
    "start_at",
    "end_at",
    "variants",
    "holdout_percent",
    "trigger",
)


class CampaignSQL(SqlFile, domain="campaigns", directory=Path(__file__).parent / "sql"):
    insert_campaign: str
    insert_survey: str
    get_campaign: str
    get_survey: str
    list_campaigns: str
    draft_has_audience: str
    update_draft: str
    upsert_survey: str
    delete_survey: str
    why_refused: str
    start: str
    pause: str
    resume: str
    cancel: str
    activate_due: str
    expire_due: str
    complete_finished: str
    lock_for_audience: str
    create_upload_table: str
    upload_work_mem: str
    analyze_upload: str
    clear_upload_table: str
    insert_uploaded: str
    insert_segment: str
    set_segment: str
    audience_changed: str
    approve: str
    begin_upload: str
    finish_upload: str
    audience_uploads: str
    rejected_rows: str
    delivery_counts: str
    survey_counts: str
    reassign_arms: str
    variant_report: str


#: action → (query, states it may start from).
TRANSITIONS: dict[str, tuple[str, tuple[CampaignState, ...]]] = {
    "start": (CampaignSQL.start, (S.DRAFT,)),
    "pause": (CampaignSQL.pause, (S.SCHEDULED, S.RUNNING)),
    "resume": (CampaignSQL.resume, (S.PAUSED,)),
    "cancel": (CampaignSQL.cancel, (S.DRAFT, S.SCHEDULED, S.RUNNING, S.PAUSED)),
}


@dataclass(frozen=True, slots=True)
class CampaignSearch:
    """What the list is searched for: ``text`` in the name or the partner, ``name`` in the
    name, ``partner`` in the partner; any case, each absent (None or blank) matching all."""

    text: str | None = None
    name: str | None = None
    partner: str | None = None


def _contains(words: str | None) -> str | None:
    """An ILIKE pattern for "contains ``words``" (LIKE's ``%`` ``_`` ``\\`` taken literally),
    or None for no condition."""
    if words is None or not words.strip():
        return None
    escaped = words.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


#: Segment → whether it takes current SMART members only (insert_segment's $2).
_SEGMENT_MEMBERS_ONLY = {"smart_members": True, "active_subscribers": False}


@dataclass(frozen=True, slots=True)
class AudienceUpload:
    """One audience upload of a campaign (``audience_uploads``, migration 0029)."""

    upload_no: int
    uploaded_at: datetime
    uploaded_by: str | None
    lines: int
    accepted: int
    duplicates: int
    rejected: int


class CopyRows(NamedTuple):
    """Uploaded rows in PostgreSQL's COPY text format, ready for the upload table: one line
    ``msisdn<TAB>{"value",…}`` each (the variables as a ``text[]`` literal; the msisdn alone
    when the campaign has no variables), in file order; ``rows`` counts them."""

    text: str
    rows: int


def copy_rows(records: Iterable[tuple[str, Sequence[str] | None]]) -> CopyRows:
    """``(msisdn, variable values or None)`` records as :class:`CopyRows` (values escaped
    for an array literal, then for COPY)."""
    lines = [m if vs is None else f"{m}\t{_copy_array(vs)}" for m, vs in records]
    return CopyRows("".join(line + "\n" for line in lines), len(lines))


def _copy_array(values: Sequence[str]) -> str:
    quoted = ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + quoted.translate(_COPY_ESCAPES) + "}"


# COPY's text format: a backslash escapes; a tab, line feed or carriage return in a value
# would end a field or a row.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@dataclass
class AudienceLoad:
    """An open audience transaction on one locked campaign (see :meth:`audience_load`)."""

    conn: asyncpg.Connection
    campaign: Campaign
    actor: Actor = SYSTEM
    #: The approval this upload cleared (maker-checker), and whether it sent a scheduled
    #: campaign back to draft.
    approval_cleared: bool = False
    back_to_draft: bool = False

    parsed_at: float = 0.0  # perf_counter() when load() had read its last rows
    #: when the upload happens: a holdout recipient's row is final from then (migration 0039)
    now: datetime | None = None

    async def audited(self, now: datetime, details: dict[str, object]) -> None:
        """Record this upload in the audit trail (in its transaction): counts only."""
        if self.approval_cleared:
            details["approval_cleared"] = True
        if self.back_to_draft:
            details["state"] = CampaignState.DRAFT.value
        await record(
            self.conn,
            self.actor,
            AuditAction.UPLOAD,
            now,
            campaign_id=self.campaign.id,
            details=details,
        )

    async def load(
        self, chunks: AsyncIterable[CopyRows], batch_rows: int = LOAD_BATCH
    ) -> tuple[int, int]:
        """COPY and queue ``chunks`` a batch at a time; returns (rows copied, rows queued).

        While the database queues one batch, the next is read and parsed (iterating
        ``chunks`` runs the parser), so the two overlap on two cores instead of taking
        turns. Still one transaction, and the batches go in file order: a number already
        queued by an earlier batch is a duplicate of this one, so the first occurrence in
        the file wins as before. If ``chunks`` raises, the batch being queued is waited
        for (the connection must be idle for the rollback) and the error goes on.
        """
        copied = queued = 0
        batch: list[str] = []
        rows = 0
        pending: asyncio.Task[int] | None = None
        try:
            async for chunk in chunks:
                batch.append(chunk.text)
                rows += chunk.rows
                if rows >= batch_rows:
                    if pending is not None:
                        queued += await pending
                    copied += await self._copy_batch(batch, rows, first=copied == 0)
                    batch, rows = [], 0
                    pending = asyncio.create_task(self.queue())
            self.parsed_at = time.perf_counter()
            if pending is not None:
                queued += await pending
                pending = None
            if rows:
                copied += await self._copy_batch(batch, rows, first=copied == 0)
                queued += await self.queue()
        finally:
            if pending is not None:
                await asyncio.gather(pending, return_exceptions=True)
        return copied, queued

    async def _copy_batch(self, batch: list[str], rows: int, *, first: bool) -> int:
        if not first:
            await self.conn.execute(CampaignSQL.clear_upload_table)

        async def encoded() -> AsyncIterator[bytes]:
            for text in batch:  # a piece at a time: the batch is never held twice
                yield text.encode()

        await self._copy(encoded())
        return rows  # the rows handed to COPY (a command tag is no count under Citus)

    async def _copy(self, source: AsyncIterable[bytes]) -> None:
        columns = ("msisdn", "vars") if self.campaign.variables else ("msisdn",)
        await self.conn.copy_to_table("audience_upload", source=source, columns=columns)

    async def copy(self, chunks: AsyncIterable[CopyRows]) -> int:
        """COPY ``chunks`` into the upload table; returns how many rows, counted as they
        are handed over."""
        copied = 0

        async def encoded() -> AsyncIterator[bytes]:
            nonlocal copied
            async for chunk in chunks:
                copied += chunk.rows
                yield chunk.text.encode()

        await self._copy(encoded())
        return copied

    async def begin_upload(self, now: datetime, uploaded_by: str | None) -> int:
        """Record this upload (counts set by :meth:`finish_upload`); returns its number."""
        no = await self.conn.fetchval(CampaignSQL.begin_upload, self.campaign.id, now, uploaded_by)
        return int(no)

    async def finish_upload(
        self, upload_no: int, lines: int, accepted: int, duplicates: int, rejected: int
    ) -> None:
        await self.conn.execute(
            CampaignSQL.finish_upload,
            self.campaign.id,
            upload_no,
            lines,
            accepted,
            duplicates,
            rejected,
        )

    async def copy_rejections(self, source: AsyncIterable[bytes]) -> None:
        """COPY every rejected row (COPY text of all six columns: campaign, upload, line,
        value, number, reason; :class:`campaigns.audience.RejectionLog`)."""
        await self.conn.copy_to_table(
            "audience_rejections",
            source=source,
            columns=("campaign_id", "upload_no", "line", "value", "number", "reason"),
        )

    async def queue(self) -> int:
        """Insert the copied rows as queued deliveries; returns how many were new."""
        await self.conn.execute(CampaignSQL.analyze_upload)
        queued = await self.conn.fetchval(
            CampaignSQL.insert_uploaded, self.campaign.id, self.campaign.variables, self.now
        )
        return int(queued)


def _content_columns(spec: CampaignSpec) -> tuple[object, ...]:
    """insert_campaign's $1-$9 and update_draft's $2-$10: the campaign's own fields."""
    return (
        spec.name,
        spec.partner,
        spec.kind.value,
        spec.scope.value,
        spec.texts,
        spec.variables,
        spec.priority,
        spec.start_at,
        spec.end_at,
    )


def _split_and_trigger_columns(spec: CampaignSpec) -> tuple[object, ...]:
    """insert_campaign's and update_draft's $12-$17: the variables' defaults, the variants
    and holdout (migration 0039), and the trigger's event, condition and max delay (0041)."""
    trigger = spec.trigger
    if trigger is None:
        event = condition = delay = None
    else:
        event, delay = trigger.event, trigger.max_delay
        condition = None if trigger.condition is None else trigger.condition.as_json()
    return (
        spec.variable_defaults,
        spec.variants,
        spec.holdout_percent,
        event,
        condition,
        delay,
    )


class CampaignRepository:
    def __init__(self, executor: Executor) -> None:
        self._db = executor

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[asyncpg.Connection]:
        if isinstance(self._db, asyncpg.Pool):
            async with self._db.acquire() as conn, conn.transaction():
                yield conn
        else:
            async with self._db.transaction():
                yield self._db

    async def create(
        self,
        spec: CampaignSpec,
        created_by: str | None,
        now: datetime,
        *,
        actor: Actor | None = None,
        details: dict[str, object] | None = None,
    ) -> Campaign:
        """Insert a draft campaign (and its survey) in one transaction, recorded in the audit
        trail as ``actor``'s (by default: ``created_by``)."""
        actor = actor or (Actor(created_by) if created_by else SYSTEM)
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                CampaignSQL.insert_campaign,
                *_content_columns(spec),
                created_by,
                now,
                *_split_and_trigger_columns(spec),
            )
            if spec.survey is not None:
                await conn.execute(
                    CampaignSQL.insert_survey,
                    row["id"],
                    spec.survey.questions,
                    spec.survey.thanks,
                    spec.survey.timeout,
                )
            about = {"name": spec.name, "partner": spec.partner, "kind": spec.kind.value}
            await record(
                conn,
                actor,
                AuditAction.CREATE,
                now,
                campaign_id=row["id"],
                details=about | (details or {}),
            )
        return Campaign.from_row(row)

    async def get(self, campaign_id: int) -> Campaign | None:
        row = await self._db.fetchrow(CampaignSQL.get_campaign, campaign_id)
        return None if row is None else Campaign.from_row(row)

    async def get_survey(self, campaign_id: int) -> Survey | None:
        row = await self._db.fetchrow(CampaignSQL.get_survey, campaign_id)
        return None if row is None else Survey.from_row(row)

    async def page(
        self,
        *,
        before_id: int | None = None,
        limit: int = 50,
        state: CampaignState | None = None,
        search: CampaignSearch | None = None,
    ) -> list[Campaign]:
        """A page of campaigns, newest first; pass the last id seen as ``before_id``.
        ``search`` keeps those whose name or partner contain its words (any case)."""
        found = search or CampaignSearch()
        rows = await self._db.fetch(
            CampaignSQL.list_campaigns,
            before_id,
            limit,
            state.value if state else None,
            _contains(found.text),  # $4 name or partner
            _contains(found.name),  # $5 name
            _contains(found.partner),  # $6 partner
        )
        return [Campaign.from_row(row) for row in rows]

    async def update_draft(
        self, campaign_id: int, spec: CampaignSpec, now: datetime, *, actor: Actor = SYSTEM
    ) -> Campaign:
        """Replace a draft's content with ``spec`` (and its survey) in one transaction.

        Raises :class:`CampaignNotFound`, or :class:`EditRefused` when it is no longer a draft
        or when ``spec`` changes the columns of an audience already uploaded. The row is held
        FOR NO KEY UPDATE first, as an upload holds it: an upload or a start waits for the edit
        (and the edit for them), so the checks below see what was committed before."""
        async with self._transaction() as conn:
            row = await conn.fetchrow(CampaignSQL.lock_for_audience, campaign_id)
            if row is None:
                raise CampaignNotFound(campaign_id)
            current = Campaign.from_row(row)
            if current.state is not CampaignState.DRAFT:
                raise EditRefused(
                    campaign_id, current.state, "not_a_draft", "only a draft can be edited"
                )
            if spec.variables != current.variables and await conn.fetchval(
                CampaignSQL.draft_has_audience, campaign_id
            ):
                raise EditRefused(
                    campaign_id,
                    current.state,
                    "audience_columns_fixed",
                    "its audience was uploaded with the columns "
                    f"{', '.join(current.variables) or '(none)'}, which cannot change now",
                )
            row = await conn.fetchrow(
                CampaignSQL.update_draft,
                campaign_id,
                *_content_columns(spec),
                now,
                *_split_and_trigger_columns(spec),
            )
            if (spec.variants, spec.holdout_percent) != (current.variants, current.holdout_percent):
                # a recipient's arm is a function of the split alone (audience_arm, 0039):
                # an edit of anything else leaves a large audience's rows unread
                await conn.execute(CampaignSQL.reassign_arms, campaign_id, now)
            if spec.survey is None:
                await conn.execute(CampaignSQL.delete_survey, campaign_id)
            else:
                await conn.execute(
                    CampaignSQL.upsert_survey,
                    campaign_id,
                    spec.survey.questions,
                    spec.survey.thanks,
                    spec.survey.timeout,
                )
            edited = Campaign.from_row(await conn.fetchrow(CampaignSQL.get_campaign, campaign_id))
            await record(
                conn,
                actor,
                AuditAction.EDIT,
                now,
                campaign_id=campaign_id,
                details=_edit_details(current, edited),
            )
        return edited

    async def transition(
        self,
        campaign_id: int,
        action: str,
        now: datetime,
        *,
        actor: Actor = SYSTEM,
        approval_required: bool = False,
    ) -> Campaign:
        """Apply ``action`` (start, pause, resume, cancel) with one guarded UPDATE, recorded
        in the audit trail in the same transaction.

        Raises :class:`CampaignNotFound`, or :class:`TransitionRefused` when the current
        state does not allow it (or a start lacks an audience or its window is over, or,
        with ``approval_required``, an approval: :class:`ApprovalRefused`); of two
        concurrent callers exactly one wins.
        """
        query, allowed = TRANSITIONS[action]
        params: list[object] = [campaign_id, now, [s.value for s in allowed]]
        if action == "start":
            params.append(approval_required)
        async with self._transaction() as conn:
            row = await conn.fetchrow(query, *params)
            if row is None:
                raise await self._refused(
                    conn, campaign_id, action, allowed, now, approval_required
                )
            details: dict[str, object] = {"state": row["state"]}
            if action == "cancel":
                details["suppressed"] = row["suppressed_now"]
            await record(
                conn, actor, AuditAction(action), now, campaign_id=campaign_id, details=details
            )
        return Campaign.from_row(row)

    async def _refused(
        self,
        conn: asyncpg.Connection,
        campaign_id: int,
        action: str,
        allowed: Sequence[CampaignState],
        now: datetime,
        approval_required: bool = False,
    ) -> Exception:
        row = await conn.fetchrow(CampaignSQL.why_refused, campaign_id, now)
        if row is None:
            return CampaignNotFound(campaign_id)
        state = CampaignState(row["state"])
        if state not in allowed:
            reason = state_refusal(action, state)
        elif row["window_over"]:
            reason = "the campaign's end time has passed"
        elif not row["has_audience"]:
            reason = "the campaign has no audience yet"
        elif action == "start" and approval_required and not row["approved"]:
            return ApprovalRefused(
                campaign_id,
                action,
                state,
                "approval_required",
                "it needs an approval by someone other than its creator first",
            )
        else:
            reason = "someone changed the campaign meanwhile; look again"
        return TransitionRefused(campaign_id, action, state, reason)

    async def approve(
        self,
        campaign_id: int,
        actor: Actor,
        now: datetime,
        *,
        approver_roles: Sequence[str],
        version: int | None = None,
    ) -> Campaign:
        """``actor`` approves the draft's content (of ``version``, the one they saw, when
        given): only a role of ``approver_roles``, never the campaign's creator, once per
        content version. Recorded in the audit trail. The row is locked first, so an edit,
        an upload or a second approver waits and then sees this approval (or its absence).

        Raises :class:`CampaignNotFound` or :class:`ApprovalRefused`."""
        if (role_refused := approver_refusal(actor, approver_roles)) is not None:
            raise ApprovalRefused(
                campaign_id,
                "approve",
                CampaignState.DRAFT,
                "not_an_approver",
                role_refused,
                status=403,
            )
        async with self._transaction() as conn:
            locked = await conn.fetchrow(CampaignSQL.lock_for_audience, campaign_id)
            if locked is None:
                raise CampaignNotFound(campaign_id)
            current = Campaign.from_row(locked)
            refusal = approval_refusal(current, actor, approver_roles, version)
            if refusal is not None:
                code, reason = refusal
                raise ApprovalRefused(campaign_id, "approve", current.state, code, reason)
            row = await conn.fetchrow(
                CampaignSQL.approve,
                campaign_id,
                actor.name,
                actor.role,
                now,
                current.content_version,
            )
            assert row is not None, "the row is locked and every guard was checked"
            details = {"content_version": current.content_version}
            await record(
                conn, actor, AuditAction.APPROVE, now, campaign_id=campaign_id, details=details
            )
        return Campaign.from_row(row)

    # ----------------------------------------------------------- engine, periodically

    async def activate_due(self, now: datetime) -> list[int]:
        """Scheduled campaigns whose ``start_at`` has come → running; returns their ids."""
        return [row["id"] for row in await self._db.fetch(CampaignSQL.activate_due, now)]

    async def expire_due(self, now: datetime) -> dict[int, int]:
        """Campaigns past ``end_at`` → expired, their queued deliveries → suppressed
        ``outside_campaign_window``; returns {campaign id: deliveries suppressed}."""
        rows = await self._db.fetch(CampaignSQL.expire_due, now)
        return {row["id"]: row["suppressed"] for row in rows}

    async def complete_finished(self, now: datetime) -> list[int]:
        """Running or paused campaigns with nothing queued, claimed or in flight → completed."""
        return [row["id"] for row in await self._db.fetch(CampaignSQL.complete_finished, now)]

    # ----------------------------------------------------------- audience

    @asynccontextmanager
    async def audience_load(
        self,
        campaign_id: int,
        now: datetime | None = None,
        *,
        actor: Actor = SYSTEM,
        approval_required: bool = False,
    ) -> AsyncIterator[AudienceLoad]:
        """One transaction for one upload: the campaign locked FOR SHARE and checked to be
        in draft, scheduled or paused, and an empty upload table. Leaving the block by an
        exception rolls everything back: nothing of a refused upload stays. ``now``: when
        a holdout recipient's row is final (without it, the database's time).

        The audience is part of what a checker approves: the upload clears the approval,
        and under maker-checker (``approval_required``, or a campaign started under it)
        sends a scheduled campaign back to draft and is refused for a paused one."""
        async with self._transaction() as conn:
            row = await conn.fetchrow(CampaignSQL.lock_for_audience, campaign_id)
            if row is None:
                raise CampaignNotFound(campaign_id)
            campaign = Campaign.from_row(row)
            action = "add an audience"
            if campaign.trigger is not None:
                raise TransitionRefused(campaign_id, action, campaign.state, TRIGGERED_NO_AUDIENCE)
            if campaign.state not in AUDIENCE_OPEN:
                raise TransitionRefused(
                    campaign_id, action, campaign.state, state_refusal(action, campaign.state)
                )
            checked = approval_required or campaign.approval_required
            if checked and campaign.state is CampaignState.PAUSED:
                raise ApprovalRefused(
                    campaign_id,
                    action,
                    campaign.state,
                    "approval_frozen",
                    "its approved audience cannot change once it has started; duplicate it "
                    "for more recipients",
                )
            changed = await conn.fetchrow(
                CampaignSQL.audience_changed, campaign_id, approval_required
            )
            await conn.execute(CampaignSQL.create_upload_table)
            await conn.execute(CampaignSQL.upload_work_mem)
            yield AudienceLoad(
                conn,
                campaign,
                actor,
                approval_cleared=campaign.approval is not None,
                back_to_draft=changed["state"] != campaign.state.value,
                now=now,
            )

    async def add_segment(
        self,
        campaign_id: int,
        segment: str,
        now: datetime,
        *,
        actor: Actor = SYSTEM,
        approval_required: bool = False,
    ) -> int:
        """Queue every number of ``segment`` (set-based); returns how many were new."""
        async with self.audience_load(
            campaign_id, now, actor=actor, approval_required=approval_required
        ) as load:
            campaign = load.campaign
            if not set(campaign.variables) <= set(campaign.variable_defaults):
                raise InputRefused(
                    "this campaign's texts use audience columns without defaults; upload a "
                    "file that has them (or give every variable a default)",
                    {"variables": load.campaign.variables},
                    code="segment_without_variables",
                )
            queued = await load.conn.fetchval(
                CampaignSQL.insert_segment, campaign_id, _SEGMENT_MEMBERS_ONLY[segment], now
            )
            await load.conn.execute(CampaignSQL.set_segment, campaign_id, segment, now)
            await load.audited(now, {"segment": segment, "accepted": int(queued)})
        return int(queued)

    async def uploads(self, campaign_id: int) -> list[AudienceUpload]:
        """The campaign's audience uploads, oldest first."""
        rows = await self._db.fetch(CampaignSQL.audience_uploads, campaign_id)
        return [AudienceUpload(**dict(row)) for row in rows]

    async def rejected_rows(
        self, campaign_id: int, upload_no: int | None, batch: int = 5000
    ) -> AsyncIterator[list[asyncpg.Record]]:
        """Every rejected row of the campaign's uploads (of one: ``upload_no``), a batch at a
        time from a cursor in one read-only transaction: memory stays flat however many."""
        async with self._read_only() as conn:
            cursor = await conn.cursor(CampaignSQL.rejected_rows, campaign_id, upload_no)
            while rows := await cursor.fetch(batch):
                yield rows

    @asynccontextmanager
    async def _read_only(self) -> AsyncIterator[asyncpg.Connection]:
        if isinstance(self._db, asyncpg.Pool):
            async with self._db.acquire() as conn, conn.transaction(readonly=True):
                yield conn
        else:
            async with self._db.transaction():
                yield self._db

    # ----------------------------------------------------------- reports

    async def delivery_counts(self, campaign_id: int, since: datetime) -> list[DeliveryTally]:
        """The campaign's deliveries grouped by state and suppression reason, with their
        submits since ``since`` (the throughput window) and first and last submit."""
        rows = await self._db.fetch(CampaignSQL.delivery_counts, campaign_id, since)
        return [DeliveryTally.from_row(row) for row in rows]

    async def variant_counts(
        self, campaign_id: int, opt_out_span: timedelta, activation_span: timedelta, now: datetime
    ) -> list[asyncpg.Record]:
        """Per arm (``variant``; None the holdout) its counts (campaigns.sql
        ``variant_report``): opt-outs and activations from the campaign's start within
        their spans, until ``now``."""
        rows: list[asyncpg.Record] = await self._db.fetch(
            CampaignSQL.variant_report, campaign_id, opt_out_span, activation_span, now
        )
        return rows

    async def survey_counts(self, survey_id: int) -> SurveyCounts:
        """Answer counts per question and option, session counts per state (one query; it
        reads no delivery)."""
        return SurveyCounts.from_rows(await self._db.fetch(CampaignSQL.survey_counts, survey_id))


def _edit_details(before: Campaign, after: Campaign) -> dict[str, object]:
    """What an edit changed, for the audit trail: the names of the fields (not their
    texts), the content version, and whether it cleared an approval."""
    changed = [name for name in CONTENT_FIELDS if getattr(before, name) != getattr(after, name)]
    if after.content_version != before.content_version and not changed:
        changed.append("survey")
    details: dict[str, object] = {"changed": changed, "content_version": after.content_version}
    if before.approval is not None and after.approval is None:
        details["approval_cleared"] = True
    return details


def approver_refusal(actor: Actor, approver_roles: Sequence[str]) -> str | None:
    """Why ``actor``'s role may approve no campaign (``approver_roles``), or None."""
    if actor.role in approver_roles:
        return None
    return (
        f"role {actor.role} may not approve campaigns "
        f"(approvers: {', '.join(approver_roles) or 'nobody'})"
    )


def approval_refusal(
    campaign: Campaign, actor: Actor, approver_roles: Sequence[str], version: int | None = None
) -> tuple[str, str] | None:
    """Why ``actor`` may not approve ``campaign`` now (code, reason), or None: the one rule
    of maker-checker, asked by :meth:`CampaignRepository.approve` and by the console (which
    shows the Approve button only where it is None). ``version``: the content version the
    approver saw."""
    if (role_refused := approver_refusal(actor, approver_roles)) is not None:
        return "not_an_approver", role_refused
    if campaign.state is not CampaignState.DRAFT:
        return "not_a_draft", f"only a draft is approved; it is {campaign.state}"
    if campaign.created_by == actor.name:
        return "self_approval", "its creator cannot approve it; another person must"
    if campaign.approval is not None:
        return "already_approved", f"{campaign.approval.by} approved it already"
    if version is not None and version != campaign.content_version:
        return (
            "content_changed",
            f"it changed since you saw it (version {version}, now {campaign.content_version}); "
            "look again",
        )
    return None
