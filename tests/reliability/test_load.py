"""The USSD gateway at 1,000 requests/s for 10 s against `smartd serve` while a campaign
sends (the 60-second version is ``python -m bench load``; figures in RELIABILITY.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load import measure


@pytest.mark.slow
async def test_ussd_at_1000_per_second_while_a_campaign_sends(
    database_url: str, tmp_path: Path
) -> None:
    """10,000 USSD requests in 10 s beside a sending campaign: every one answered 200 with a
    text; the campaign keeps sending."""
    figures = await measure(database_url, tmp_path, rate=1000, seconds=10, alone_seconds=3)
    print(f"\nload: {figures}")
    assert figures.requests == 10_000
    assert figures.errors == 0
    assert figures.campaign_loaded_per_s > 0 and figures.campaign_alone_per_s > 0
