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
from datetime import datetime
from pathlib import Path
from typing import NamedTuple, TypeAlias

import asyncpg

from campaigns.csvstream import InputRefused
from campaigns.models import (
    AUDIENCE_OPEN,
    TRIGGERED_NO_AUDIENCE,
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
from campaigns.triggers import Trigger
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
    begin_upload: str
    finish_upload: str
    audience_uploads: str
    rejected_rows: str
    delivery_counts: str
    survey_counts: str


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

    parsed_at: float = 0.0  # perf_counter() when load() had read its last rows

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
            CampaignSQL.insert_uploaded, self.campaign.id, self.campaign.variables
        )
        return int(queued)


def _trigger_columns(trigger: Trigger | None) -> tuple[object, object, object]:
    """insert_campaign's and update_draft's $13-$15: event, condition, max delay."""
    if trigger is None:
        return None, None, None
    condition = None if trigger.condition is None else trigger.condition.as_json()
    return trigger.event, condition, trigger.max_delay


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

    async def create(self, spec: CampaignSpec, created_by: str | None, now: datetime) -> Campaign:
        """Insert a draft campaign (and its survey) in one transaction."""
        async with self._transaction() as conn:
            row = await conn.fetchrow(
                CampaignSQL.insert_campaign,
                spec.name,
                spec.partner,
                spec.kind.value,
                spec.scope.value,
                spec.texts,
                spec.variables,
                spec.priority,
                spec.start_at,
                spec.end_at,
                created_by,
                now,
                spec.variable_defaults,
                *_trigger_columns(spec.trigger),
            )
            if spec.survey is not None:
                await conn.execute(
                    CampaignSQL.insert_survey,
                    row["id"],
                    spec.survey.questions,
                    spec.survey.thanks,
                    spec.survey.timeout,
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

    async def update_draft(self, campaign_id: int, spec: CampaignSpec, now: datetime) -> Campaign:
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
                spec.name,
                spec.partner,
                spec.kind.value,
                spec.scope.value,
                spec.texts,
                spec.variables,
                spec.priority,
                spec.start_at,
                spec.end_at,
                now,
                spec.variable_defaults,
                *_trigger_columns(spec.trigger),
            )
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
        return Campaign.from_row(row)

    async def transition(self, campaign_id: int, action: str, now: datetime) -> Campaign:
        """Apply ``action`` (start, pause, resume, cancel) with one guarded UPDATE.

        Raises :class:`CampaignNotFound`, or :class:`TransitionRefused` when the current
        state does not allow it (or a start lacks an audience or its window is over); of
        two concurrent callers exactly one wins.
        """
        query, allowed = TRANSITIONS[action]
        row = await self._db.fetchrow(query, campaign_id, now, [s.value for s in allowed])
        if row is None:
            raise await self._refused(campaign_id, action, allowed, now)
        return Campaign.from_row(row)

    async def _refused(
        self, campaign_id: int, action: str, allowed: Sequence[CampaignState], now: datetime
    ) -> Exception:
        row = await self._db.fetchrow(CampaignSQL.why_refused, campaign_id, now)
        if row is None:
            return CampaignNotFound(campaign_id)
        state = CampaignState(row["state"])
        if state not in allowed:
            reason = state_refusal(action, state)
        elif row["window_over"]:
            reason = "the campaign's end time has passed"
        elif not row["has_audience"]:
            reason = "the campaign has no audience yet"
        else:
            reason = "someone changed the campaign meanwhile; look again"
        return TransitionRefused(campaign_id, action, state, reason)

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
    async def audience_load(self, campaign_id: int) -> AsyncIterator[AudienceLoad]:
        """One transaction for one upload: the campaign locked FOR SHARE and checked to be
        in draft, scheduled or paused, and an empty upload table. Leaving the block by an
        exception rolls everything back: nothing of a refused upload stays."""
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
            await conn.execute(CampaignSQL.create_upload_table)
            await conn.execute(CampaignSQL.upload_work_mem)
            yield AudienceLoad(conn, campaign)

    async def add_segment(self, campaign_id: int, segment: str, now: datetime) -> int:
        """Queue every number of ``segment`` (set-based); returns how many were new."""
        async with self.audience_load(campaign_id) as load:
            campaign = load.campaign
            if not set(campaign.variables) <= set(campaign.variable_defaults):
                raise InputRefused(
                    "this campaign's texts use audience columns without defaults; upload a "
                    "file that has them (or give every variable a default)",
                    {"variables": load.campaign.variables},
                    code="segment_without_variables",
                )
            queued = await load.conn.fetchval(
                CampaignSQL.insert_segment, campaign_id, _SEGMENT_MEMBERS_ONLY[segment]
            )
            await load.conn.execute(CampaignSQL.set_segment, campaign_id, segment, now)
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

    async def survey_counts(self, survey_id: int) -> SurveyCounts:
        """Answer counts per question and option, session counts per state (one query; it
        reads no delivery)."""
        return SurveyCounts.from_rows(await self._db.fetch(CampaignSQL.survey_counts, survey_id))
