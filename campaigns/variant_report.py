"""The variants report (issue 15, "Variants and a control group"): per variant and for the
holdout, counts only (R11) — recipients, sent, delivered, survey respondents, opt-outs within
:data:`OPT_OUT_SPAN` and bonus activations within :data:`ACTIVATION_SPAN` — and each
variant's uplift over the holdout, with a 95% interval (:mod:`campaigns.uplift`).

What is measured (campaigns.sql ``variant_report``): every recipient of an arm, sent or not
(intention to treat: a holdout recipient has no send to count from, and a variant's
recipients who were suppressed — not a member, a cap — have their equals in the holdout).
Opt-outs (a leave or a 1204: STOP, ``*555*2#``, 1204) and activations (``*555*00#``, R4)
count from the campaign's start for every arm alike, until the span ends (or now, while it
runs). Rates are per recipient; the uplift is the variant's rate minus the holdout's.

R11: a partner-facing caller sees counts below ``report_min_cell`` as ``"< N"`` (and those a
total would give back as ``">= N"``: :mod:`campaigns.disclosure`); a rate is shown only where
both its counts are, and an uplift only where all four of its counts are — an interval
computed from a hidden count would give it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from campaigns.disclosure import Shown, suppress
from campaigns.models import Campaign
from campaigns.reports import shown_percent
from campaigns.repository import CampaignRepository
from campaigns.uplift import Uplift, uplift
from campaigns.variants import HOLDOUT, variant_names

OPT_OUT_SPAN = timedelta(days=7)
ACTIVATION_SPAN = timedelta(days=30)
#: The counts of an arm, in the order they are shown.
METRICS = ("recipients", "sent", "delivered", "responded", "opted_out", "activated")
#: Counts a holdout recipient never has (nothing is sent to one): shown as 0 to everyone
#: (known by design, they reveal nothing) and left out of the groups.
NEVER_HELD = ("sent", "delivered", "responded")
#: The rates an uplift is given for: metric → its words.
UPLIFT_METRICS = {"activated": "bonus activation", "opted_out": "opt-out"}


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """One arm: ``index`` the variant's (None: the holdout), its name, the share of the
    audience it was planned to get (percent), and its counts."""

    index: int | None
    name: str
    planned_percent: float
    counts: Mapping[str, int]

    @property
    def key(self) -> str:
        return HOLDOUT if self.index is None else str(self.index)


@dataclass(frozen=True, slots=True)
class VariantReport:
    """The arms of ``campaign``: its variants in order, then the holdout (when it has one
    or recipients were held out)."""

    campaign: Campaign
    arms: tuple[ArmCounts, ...]
    as_of: datetime

    @property
    def holdout(self) -> ArmCounts | None:
        return next((arm for arm in self.arms if arm.index is None), None)

    def uplift(self, arm: ArmCounts, metric: str) -> Uplift | None:
        """``arm``'s rate of ``metric`` minus the holdout's, with its 95% interval."""
        holdout = self.holdout
        if holdout is None or arm.index is None:
            return None
        return uplift(
            arm.counts[metric],
            arm.counts["recipients"],
            holdout.counts[metric],
            holdout.counts["recipients"],
        )


async def variant_report(
    repository: CampaignRepository, campaign: Campaign, now: datetime
) -> VariantReport:
    """The variants report of ``campaign`` as of ``now``."""
    rows = {
        row["variant"]: row
        for row in await repository.variant_counts(campaign.id, OPT_OUT_SPAN, ACTIVATION_SPAN, now)
    }
    names = variant_names(campaign.variants)
    held = campaign.holdout_percent
    percents = [v["percent"] for v in campaign.variants] or [100]
    arms = [
        ArmCounts(i, name, (100 - held) * percents[i] / 100, _counts(rows.get(i)))
        for i, name in enumerate(names)
    ]
    if held or None in rows:
        arms.append(ArmCounts(None, "Holdout", float(held), _counts(rows.get(None))))
    return VariantReport(campaign, tuple(arms), now)


def _counts(row: Mapping[str, Any] | None) -> dict[str, int]:
    return {metric: int(row[metric]) if row is not None else 0 for metric in METRICS}


# ---------------------------------------------------------------- shown (R11)


def shown_arms(report: VariantReport, min_cell: int) -> dict[tuple[str, str], Shown]:
    """Each arm's counts as shown with minimum cell size ``min_cell``: keyed (arm key,
    metric). Groups: each metric's total over the arms (the campaign report shows the
    recipients' and the delivered total) of its arms' cells."""
    cells: dict[tuple[str, str], int] = {}
    groups: list[tuple[tuple[str, str], list[tuple[str, str]]]] = []
    for metric in METRICS:
        cells[("total", metric)] = sum(arm.counts[metric] for arm in report.arms)
        parts = []
        for arm in report.arms:
            if arm.index is None and metric in NEVER_HELD:
                continue
            cells[(arm.key, metric)] = arm.counts[metric]
            parts.append((arm.key, metric))
        groups.append((("total", metric), parts))
    shown = suppress(cells, groups, min_cell)
    holdout = report.holdout
    if holdout is not None:
        shown |= {(holdout.key, metric): holdout.counts[metric] for metric in NEVER_HELD}
    return shown


def variant_report_json(report: VariantReport, min_cell: int = 1) -> dict[str, Any]:
    """The report as the API's JSON (``min_cell`` as in campaigns.reports.report_json)."""
    shown = shown_arms(report, min_cell)
    arms = []
    for arm in report.arms:
        counts = {metric: shown[(arm.key, metric)] for metric in METRICS}
        recipients = counts["recipients"]
        rates = {
            metric: shown_percent(counts[metric], recipients)
            for metric in ("sent", "delivered", "responded", "opted_out", "activated")
        }
        arms.append(
            {
                "variant": arm.key,
                "name": arm.name,
                "planned_percent": round(arm.planned_percent, 2),
                **counts,
                "rates_percent": rates,
                "uplift": _uplifts(report, arm, shown),
            }
        )
    return {
        "campaign_id": report.campaign.id,
        "as_of": report.as_of.isoformat(),
        "holdout_percent": report.campaign.holdout_percent,
        "opt_out_days": OPT_OUT_SPAN.days,
        "activation_days": ACTIVATION_SPAN.days,
        "measured_from": (
            report.campaign.started_at.isoformat() if report.campaign.started_at else None
        ),
        "interval": "95% Newcombe hybrid score interval of the difference of two proportions",
        "arms": arms,
    }


def _uplifts(
    report: VariantReport, arm: ArmCounts, shown: Mapping[tuple[str, str], Shown]
) -> dict[str, Any] | None:
    """Per uplift metric the difference in percentage points and its interval; None for the
    holdout or without one; a metric's value None where a count it needs is hidden."""
    holdout = report.holdout
    if holdout is None or arm.index is None:
        return None
    out: dict[str, Any] = {}
    for metric in UPLIFT_METRICS:
        needed = [
            shown[(arm.key, metric)],
            shown[(arm.key, "recipients")],
            shown[(holdout.key, metric)],
            shown[(holdout.key, "recipients")],
        ]
        found = report.uplift(arm, metric)
        if found is None or not all(isinstance(n, int) for n in needed):
            out[metric] = None
            continue
        points = found.as_dict(6)
        out[metric] = {key: round(100 * value, 2) for key, value in points.items()}
    return out
