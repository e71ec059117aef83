"""The console's two aggregates beyond the campaign report: delivery counts for a page of
campaigns (one query for the whole list) and submits over time (the throughput chart)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from dispatcher.console.charts import TimeChart, bucket_width, throughput
from dispatcher.console.sessions import ConsoleSQL


class ProgressQueries:
    """The only caller of the report queries of ``console.sql``."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def states_of(self, campaign_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        """Per campaign, its delivery counts by state (campaigns without any are absent)."""
        rows = await self._pool.fetch(ConsoleSQL.campaign_progress, list(campaign_ids))
        states: dict[int, dict[str, int]] = defaultdict(dict)
        for row in rows:
            states[row["campaign_id"]][row["state"]] = row["n"]
        return dict(states)

    async def throughput(
        self, campaign_id: int, first: datetime | None, last: datetime | None
    ) -> TimeChart | None:
        """Submits per bucket between the first and last submit (None before any)."""
        if first is None or last is None:
            return None
        width = bucket_width(first, last)
        rows = await self._pool.fetch(ConsoleSQL.submits_over_time, campaign_id, width, first)
        return throughput([(row["bucket"], row["n"]) for row in rows], width)
