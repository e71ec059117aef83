"""The forecast before a start (issue 15, "Forecast before start"; issue 14, "What will happen
before it happens"): for a campaign's still-queued audience, as of now — how many would be
sent, how many suppressed and why, how many SMS parts each recipient's message needs (with
their own values and language), the total, and when sending would finish at the configured
TPS through the send window.

Nothing here decides anything of its own. The database answers eligibility and caps with the
claim's own rules (``dispatcher/sql/forecast.sql``: ``suppression_for``, ``cap_open``,
``cap_slot_fits``), set-based and read-only; the text a recipient gets is
:func:`campaigns.templates.message_text` (what the engine sends) and its parts are
:func:`smpp.text.count_segments` (``len(encode_message(text))``, what the engine submits);
the finish is :meth:`ProgramCalendar.finish_at`. What the forecast cannot know: changes after
it (a leave, a 1204, a cap slot another campaign takes), service messages that go first, and
for a survey the follow-up questions (only the first message is the campaign's).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from campaigns.disclosure import Shown, suppress
from campaigns.models import Campaign
from campaigns.reports import CampaignReport
from campaigns.templates import message_text
from campaigns.variants import texts_of
from dispatcher.kernel.sql import SqlFile
from dispatcher.kernel.states import DeliveryState, SuppressionReason
from dispatcher.policy.calendar import ProgramCalendar
from dispatcher.settings import Settings
from smpp.text import ConcatMode, Encoding, count_segments, max_parts

ENCODING_NAMES = {Encoding.GSM7: "gsm7", Encoding.UCS2: "ucs2"}
ENCODING_LABELS = {"gsm7": "GSM-7", "ucs2": "UCS-2"}
#: The reasons a forecast can give: the claim's (campaign end, eligibility, caps). The
#: others (opted_out, cancelled, invalid_text) are never decided by a claim.
FORECAST_REASONS = (
    SuppressionReason.NOT_MEMBER,
    SuppressionReason.DNC,
    SuppressionReason.BLOCKED,
    SuppressionReason.RECYCLED,
    SuppressionReason.CAP_INFO,
    SuppressionReason.CAP_SURVEY,
    SuppressionReason.OUTSIDE_CAMPAIGN_WINDOW,
)
#: A reason in words an operator reads (the API keeps the enum's values).
REASON_WORDS = {
    SuppressionReason.NOT_MEMBER: "not a SMART member",
    SuppressionReason.DNC: "1204 (no advertising)",
    SuppressionReason.BLOCKED: "number blocked",
    SuppressionReason.RECYCLED: "number recycled",
    SuppressionReason.CAP_INFO: "info cap already used this month",
    SuppressionReason.CAP_SURVEY: "survey cap already used this month",
    SuppressionReason.OUTSIDE_CAMPAIGN_WINDOW: "campaign end passed",
}


class ForecastSQL(SqlFile, domain="forecast"):
    forecast: str
    plan_forecast: str


def message_parts(text: str) -> tuple[str, int] | None:
    """(encoding, parts) the engine submits ``text`` in, or None when it cannot send it (an
    empty text, a lone surrogate, more parts than UDH allows): the engine's ``_encode``
    fails exactly those (``encode_message`` refuses them)."""
    if not text:
        return None
    try:
        encoding, parts = count_segments(text, ConcatMode.UDH)
    except ValueError:
        return None
    if parts > max_parts(ConcatMode.UDH):
        return None
    return ENCODING_NAMES[encoding], parts


@dataclass(frozen=True, slots=True)
class Forecast:
    """What starting ``campaign_id`` now would do with its queued audience."""

    campaign_id: int
    as_of: datetime
    audience: int  #: queued recipients considered
    eligible: int  #: would be sent
    suppressed: Mapping[SuppressionReason, int]  #: would be suppressed, by reason
    left_program: int  #: of the not_member ones, numbers that were members and left
    #: recipients per encoding and number of parts (eligible ones only)
    distribution: Mapping[str, Mapping[int, int]]
    unsendable: int  #: eligible, but the text cannot be rendered or encoded (engine: failed)
    total_parts: int  #: SMS parts for the whole audience: the cost
    part_limit: int  #: SMARTD_CAMPAIGN_MAX_SEGMENTS
    rate_per_second: float  #: the configured TPS (the SMSC account's grant, or this bind's)
    starts_at: datetime  #: now, or the campaign's later start
    finishes_at: datetime  #: when the last part would be written, through the window
    worst: tuple[str, int] | None = field(default=None)  #: (encoding, parts) of the longest
    #: the campaign's holdout (control group): recorded at the audience's load, never sent
    held_out: int = 0

    @property
    def over_limit(self) -> int:
        """Recipients whose message needs more parts than the limit."""
        return sum(
            n
            for parts in self.distribution.values()
            for k, n in parts.items()
            if k > self.part_limit
        )

    @property
    def warnings(self) -> list[str]:
        """Plain-language warnings: past the part limit, mixed encodings, unsendable texts."""
        out = []
        if self.over_limit:
            out.append(
                f"{self.over_limit} recipient(s) need more than {self.part_limit} SMS parts "
                "with their values"
            )
        ucs2 = sum(self.distribution.get("ucs2", {}).values())
        if ucs2 and "gsm7" in self.distribution:
            out.append(
                f"{ucs2} recipient(s) get UCS-2 (70 characters a part) because of their "
                "values or language"
            )
        if self.unsendable:
            out.append(
                f"{self.unsendable} recipient(s) cannot be sent: the text cannot be rendered"
            )
        return out


async def campaign_forecast(
    pool: asyncpg.Pool, campaign: Campaign, settings: Settings, now: datetime
) -> Forecast:
    """The forecast of ``campaign`` as of ``now``: one read-only statement over its queued
    deliveries, then the parts of each distinct (language, values) pair."""
    calendar = settings.calendar
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        await conn.execute(ForecastSQL.plan_forecast)
        rows = await conn.fetch(
            ForecastSQL.forecast,
            campaign.id,
            now,
            calendar.month_of(now),
            settings.info_cap,
            settings.survey_cap,
        )
    suppressed = dict.fromkeys(FORECAST_REASONS, 0)
    distribution: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    eligible = unsendable = total_parts = left = held_out = 0
    for row in rows:
        n = int(row["n"])
        if row["reason"] == SuppressionReason.HOLDOUT.value:
            held_out += n
            continue
        if row["reason"] is not None:
            suppressed[SuppressionReason(row["reason"])] += n
            left += int(row["left_program"])
            continue
        eligible += n
        _, text = message_text(
            texts_of(campaign.texts, campaign.variants, row["variant"]),
            row["language"],
            row["variables"],
            settings.default_language,
            campaign.variable_defaults,
        )
        counted = message_parts(text)
        if counted is None:
            unsendable += n
            continue
        encoding, parts = counted
        distribution[encoding][parts] += n
        total_parts += n * parts
    worst = max(
        ((e, k) for e, parts in distribution.items() for k in parts),
        key=lambda p: (p[1], p[0] == "ucs2"),
        default=None,
    )
    rate = settings.smpp_account_tps or settings.smpp_tps
    start = max(now, campaign.start_at) if campaign.start_at is not None else now
    return Forecast(
        campaign_id=campaign.id,
        as_of=now,
        audience=eligible + sum(suppressed.values()),
        eligible=eligible,
        suppressed=suppressed,
        left_program=left,
        distribution={e: dict(sorted(p.items())) for e, p in sorted(distribution.items())},
        unsendable=unsendable,
        total_parts=total_parts,
        part_limit=settings.campaign_max_segments,
        rate_per_second=rate,
        starts_at=start,
        finishes_at=calendar.finish_at(start, total_parts, rate),
        worst=worst,
        held_out=held_out,
    )


def eta_through_window(
    calendar: ProgramCalendar, report: CampaignReport, now: datetime
) -> datetime | None:
    """A running campaign's finish: the messages not yet written (queued or claimed) at its
    submits/s over the report's throughput window, through the send window across days
    (None before any submit in that window, or with nothing left)."""
    states = report.counts.states
    remaining = states[DeliveryState.QUEUED] + states[DeliveryState.CLAIMED]
    rate = report.progress.throughput_per_s
    if not remaining or rate <= 0:
        return None
    return calendar.finish_at(now, remaining, rate)


def forecast_lines(forecast: Forecast, zone: ZoneInfo) -> list[str]:
    """The forecast as plain lines (the CLI), exact counts, times in the program's zone."""

    def local(instant: datetime) -> str:
        return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    lines = [
        f"as of {local(forecast.as_of)}: {forecast.audience} queued recipients, "
        f"{forecast.eligible} would be sent",
    ]
    reasons = [(r, n) for r, n in forecast.suppressed.items() if n]
    if reasons:
        lines.append("would be suppressed:")
        for reason, n in reasons:
            extra = ""
            if reason is SuppressionReason.NOT_MEMBER and forecast.left_program:
                extra = f" (of which {forecast.left_program} left the program)"
            lines.append(f"  {REASON_WORDS.get(reason, reason.value)}: {n}{extra}")
    else:
        lines.append("would be suppressed: none")
    for encoding, parts in forecast.distribution.items():
        shares = ", ".join(f"{n} × {k} part{'s' if k != 1 else ''}" for k, n in parts.items())
        lines.append(f"{ENCODING_LABELS[encoding]}: {shares}")
    if forecast.worst is not None:
        encoding, parts_ = forecast.worst
        lines.append(f"worst case: {ENCODING_LABELS[encoding]}, {parts_} parts")
    lines.append(f"total SMS parts: {forecast.total_parts}")
    lines.append(
        f"would finish by {local(forecast.finishes_at)} (Astana time) at "
        f"{forecast.rate_per_second:g} parts/s through the send window, from "
        f"{local(forecast.starts_at)}"
    )
    if forecast.held_out:
        lines.append(f"holdout (control group, never sent): {forecast.held_out}")
    lines.extend(f"warning: {w}" for w in forecast.warnings)
    return lines


# -- what a caller is shown (R11) ------------------------------------------------------


def forecast_json(forecast: Forecast, min_cell: int = 1) -> dict[str, Any]:
    """The forecast as the API's JSON. ``min_cell`` > 1 (a partner-facing caller, R11):
    every count of recipients goes through campaigns.disclosure (below the threshold
    ``"< N"``, and those that would give one back by subtraction ``">= N"``); the total
    parts then shows only when every cell it is summed from shows."""
    shown = shown_forecast(forecast, min_cell)
    exact_parts = all(
        isinstance(shown[("parts", e, k)], int)
        for e, parts in forecast.distribution.items()
        for k in parts
    )
    return {
        "campaign_id": forecast.campaign_id,
        "as_of": forecast.as_of.isoformat(),
        "audience": shown[("audience",)],
        "eligible": shown[("eligible",)],
        "suppressed": {reason.value: shown[("reason", reason)] for reason in forecast.suppressed},
        "left_program": shown[("left",)],
        "parts": {
            "distribution": {
                encoding: {str(k): shown[("parts", encoding, k)] for k in parts}
                for encoding, parts in forecast.distribution.items()
            },
            "worst": None
            if forecast.worst is None
            else {"encoding": forecast.worst[0], "parts": forecast.worst[1]},
            "limit": forecast.part_limit,
            "over_limit": forecast.over_limit if exact_parts else None,
            "unsendable": shown[("unsendable",)],
            "total": forecast.total_parts if exact_parts else None,
        },
        "rate_per_second": forecast.rate_per_second,
        "starts_at": forecast.starts_at.isoformat(),
        "finishes_at": forecast.finishes_at.isoformat() if exact_parts else None,
        "warnings": forecast.warnings if exact_parts else [],
        "holdout": shown[("holdout",)],
    }


def shown_forecast(forecast: Forecast, min_cell: int) -> dict[tuple[Any, ...], Shown]:
    """Every count of the forecast as shown with minimum cell size ``min_cell``. Groups: the
    audience of eligible and each reason; the eligible (less the unsendable, shown as they
    are) of each (encoding, parts) cell; not_member of those who left and the others."""
    parts_keys = [("parts", e, k) for e, parts in forecast.distribution.items() for k in parts]
    cells: dict[tuple[Any, ...], int] = {
        ("audience",): forecast.audience,
        ("eligible",): forecast.eligible,
        ("left",): forecast.left_program,
        ("never",): forecast.suppressed[SuppressionReason.NOT_MEMBER] - forecast.left_program,
    }
    cells |= {("reason", r): n for r, n in forecast.suppressed.items()}
    cells |= {
        ("parts", e, k): n for e, parts in forecast.distribution.items() for k, n in parts.items()
    }
    groups: list[tuple[tuple[Any, ...], list[tuple[Any, ...]]]] = [
        (("audience",), [("eligible",), *[("reason", r) for r in FORECAST_REASONS]]),
        (("eligible",), parts_keys),
        (("reason", SuppressionReason.NOT_MEMBER), [("left",), ("never",)]),
    ]
    shown = suppress(cells, groups, min_cell)
    # The texts that cannot be rendered are the partner's own file's doing (a value missing),
    # nothing of a subscriber: shown as they are. The eligible less them is the parts' sum.
    shown[("unsendable",)] = forecast.unsendable
    # The holdout is not part of the queued audience (recorded final at the load): a cell of
    # its own, hidden when small like any count.
    shown[("holdout",)] = suppress({("holdout",): forecast.held_out}, [], min_cell)[("holdout",)]
    return shown
