"""`smartd demo` runs the whole story end to end (issue 6)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_runs_and_summarises(pg_server_url: str) -> None:
    """The demo (scaled down) joins, sends across 21:00, defers to 10:00, and prints a summary
    with delivered, suppressed and survey counts and the monthly grant."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMARTD_")}
    env.update(
        {"SMARTD_DATABASE_URL": pg_server_url, "SMARTD_LOG_LEVEL": "warning", "COLUMNS": "160"}
    )
    result = subprocess.run(
        [sys.executable, "-m", "dispatcher.cli", "demo", "--subscribers", "1000"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "window is closed" in out and "10:00 next morning" in out
    assert "SMART demo summary" in out
    # issue 14: every recipient final, both campaigns finished (not left running at 100%)
    assert out.count("status: Sent — finished at ") == 2, out
    assert out.count("completed") >= 2
    for row in (
        "delivered",
        "suppressed: not_member",
        "Q1: How often",
        "grants active",
        "monthly grant gives 698 members",
    ):
        assert row in out, row
