"""The inbox (issue 14): subscribers' SMS — replies, STOP, 1204 — as they arrived, each with
the campaign (and partner) that last reached the number.

The attribution is decided once, when the message arrives (``insert_mo`` in ``mo.sql``,
migration 0034): the latest campaign message to the number the SMSC accepted within the
span ``inbox_attribution_days`` before it, not reported undelivered. Stored rather than
derived at reading time because a page and the per-campaign counts then read one index
(``mo_messages_campaign``) instead of probing each number's deliveries, and the inbox keeps
saying what was known when the message came (a later receipt or campaign does not move it).

Who sees what (R11): the operator's admins (:func:`~campaigns.disclosure.sees_exact_counts`)
see each message with its number and text (the log masks numbers as everywhere); every other
role, partner-facing, sees only counts per campaign and kind, small ones hidden
(:func:`campaigns.disclosure.suppress`).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from campaigns.disclosure import Shown, suppress
from dispatcher.kernel.sql import SqlFile


class InboxSQL(SqlFile, domain="inbox"):
    inbox_page: str
    inbox_counts: str


class MoKind(enum.StrEnum):
    """What a subscriber's SMS is in the inbox (the schema's ``mo_kind(outcome)``)."""

    REPLY = "reply"
    STOP = "stop"
    DNC = "dnc"  # 1204


#: Page sizes of the inbox: the default and the largest a caller may ask for.
PAGE_SIZE = 50
MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class Attribution:
    """The campaign a message is attributed to."""

    id: int
    name: str
    partner: str


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """One subscriber's SMS as the operator sees it (a survey answer's text is empty: the
    answer is counted in the results, R11)."""

    id: int
    msisdn: str
    destination: str
    text: str
    kind: MoKind
    outcome: str
    received_at: datetime
    campaign: Attribution | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> InboxMessage:
        campaign = None
        if row["campaign_id"] is not None:
            campaign = Attribution(
                row["campaign_id"], row["campaign_name"] or "", row["partner"] or ""
            )
        return cls(
            id=row["id"],
            msisdn=row["msisdn"],
            destination=row["destination"],
            text=row["body"],
            kind=MoKind(row["kind"]),
            outcome=row["outcome"],
            received_at=row["received_at"],
            campaign=campaign,
        )


@dataclass(frozen=True, slots=True)
class CampaignInbox:
    """A campaign's messages by kind (every kind a key) as shown to the caller: exact, or
    for a partner-facing caller "< N" / ">= N" in place of small counts (R11)."""

    campaign: Attribution
    counts: Mapping[str, Shown]  # MoKind values and "total"


class InboxRepository:
    """The only caller of ``inbox.sql``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def page(
        self,
        *,
        before: int | None = None,
        campaign_id: int | None = None,
        kind: MoKind | None = None,
        limit: int = PAGE_SIZE,
    ) -> list[InboxMessage]:
        """Messages newest first, below id ``before``, of a campaign and a kind if given."""
        rows = await self._pool.fetch(
            InboxSQL.inbox_page, before, campaign_id, kind.value if kind else None, limit
        )
        return [InboxMessage.from_row(row) for row in rows]

    async def per_campaign(
        self, min_cell: int, campaign_id: int | None = None
    ) -> list[CampaignInbox]:
        """Counts per campaign (newest campaign first) and kind, with their total, as shown
        with minimum cell size ``min_cell`` (1: exact)."""
        rows = await self._pool.fetch(InboxSQL.inbox_counts, campaign_id)
        campaigns: dict[int, Attribution] = {}
        counts: dict[int, dict[str, int]] = {}
        for row in rows:
            key = row["campaign_id"]
            campaigns[key] = Attribution(key, row["campaign_name"], row["partner"])
            counts.setdefault(key, dict.fromkeys(MoKind, 0))[row["kind"]] = row["n"]
        return [CampaignInbox(campaigns[key], shown(counts[key], min_cell)) for key in campaigns]


def shown(counts: Mapping[str, int], min_cell: int) -> dict[str, Shown]:
    """A campaign's counts by kind and their total as shown with ``min_cell`` (the total is
    the sum of the kinds: a group, so no hidden kind follows by subtraction)."""
    cells = {str(kind): n for kind, n in counts.items()} | {"total": sum(counts.values())}
    return suppress(cells, [("total", [str(kind) for kind in MoKind])], min_cell)
