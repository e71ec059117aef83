"""Variants and a control group in the CLI (issue 15): ``--variants FILE`` and ``--holdout
PERCENT`` on ``smartd campaign create`` and ``edit``, and ``smartd campaign report ID
--variants``: counts per arm and each variant's uplift over the holdout
(campaigns/variant_report.py), exact (the CLI reads the database as the operator)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from campaigns.models import CampaignNotFound
from campaigns.repository import CampaignRepository
from campaigns.variant_report import UPLIFT_METRICS, variant_report, variant_report_json
from dispatcher.cli_common import cli_clock, local_minute, readable_file
from dispatcher.settings import Settings

#: A column of the arms table: (heading, key of the arm's JSON).
COLUMNS = (
    ("recipients", "recipients"),
    ("sent", "sent"),
    ("delivered", "delivered"),
    ("responded", "responded"),
    ("opted out", "opted_out"),
    ("activated", "activated"),
)


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--variants FILE`` and ``--holdout PERCENT`` for create and edit."""
    parser.add_argument(
        "--variants",
        type=readable_file,
        metavar="FILE",
        help='text variants as JSON: [{"name": "A", "texts": {"kk": ..., "ru": ...}, '
        '"percent": 50}, ...] (up to 4, percents summing to 100)',
    )
    parser.add_argument(
        "--holdout",
        type=int,
        metavar="PERCENT",
        help="the control group, 0-50%% of the audience: recorded, never sent",
    )


def variant_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The payload fields ``--variants`` and ``--holdout`` give (none when not given).
    Raises ValueError (a message) or OSError for a file that is no JSON list."""
    fields: dict[str, Any] = {}
    if getattr(args, "variants", None):
        variants = json.loads(Path(args.variants).read_text("utf-8"))
        if isinstance(variants, dict) and "variants" in variants:
            variants = variants["variants"]
        if not isinstance(variants, list):
            raise ValueError("--variants: the file must hold a JSON list of variants")
        fields["variants"] = variants
    if getattr(args, "holdout", None) is not None:
        fields["holdout_percent"] = args.holdout
    return fields


async def print_variants(
    settings: Settings, repository: CampaignRepository, campaign_id: int
) -> int:
    """The variants report as text: one line per arm, then each variant's uplift."""
    campaign = await repository.get(campaign_id)
    if campaign is None:
        raise CampaignNotFound(campaign_id)
    now = cli_clock(settings).now()
    report = variant_report_json(await variant_report(repository, campaign, now))
    zone = settings.calendar.zone
    print(f"campaign {campaign.id} ({campaign.name}): variants and holdout")
    started = campaign.started_at
    if started is None:
        print("not started: opt-outs and activations are counted from the start")
    else:
        print(
            f"opt-outs within {report['opt_out_days']} days and bonus activations within "
            f"{report['activation_days']} days of the start, {local_minute(started, zone)}"
        )
    print(" | ".join(["arm", "planned %", *(heading for heading, _ in COLUMNS)]))
    for arm in report["arms"]:
        cells = [str(arm[key]) for _, key in COLUMNS]
        print(" | ".join([arm["name"], f"{arm['planned_percent']:g}", *cells]))
    for arm in report["arms"]:
        for metric, words in UPLIFT_METRICS.items():
            found = (arm["uplift"] or {}).get(metric)
            if found is not None:
                print(
                    f"{arm['name']} vs holdout, {words} rate: {found['difference']:+.2f} "
                    f"points (95% interval {found['low']:+.2f} to {found['high']:+.2f})"
                )
    return 0
