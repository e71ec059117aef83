"""The `smartd` commands read as an operator expects (issue 14, "First run"): the output
alone on stdout, no log lines around it, times in Astana local time to the minute (as the
console shows them), refusals as sentences ("cannot start: the campaign is already running").
Real processes against a real database."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from dispatcher.db import Database
from dispatcher.kernel.clock import load_zone
from tests.factories import members
from tests.test_cli import _run
from tests.test_cli_commands import MEMBERS, _created_id

ASTANA = load_zone("Asia/Almaty")
#: A structlog line, JSON or console rendered: a JSON object, or "2026-… [info     ] event".
LOG_LINE = re.compile(r'^\s*\{.*"(event|level)"|\[\s*(debug|info|warning|error)\s*\]', re.M)
LOCAL_MINUTE = r"\d{4}-\d\d-\d\d \d\d:\d\d"
#: An ISO instant as datetime.isoformat() writes it: a T, seconds or microseconds, an offset.
ISO = re.compile(r"\d\d:\d\d:\d\d\.\d+|\d{4}-\d\d-\d\dT\d\d:\d\d|\+00:00")


def _smartd(database_url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # SMARTD_LOG_LEVEL=info, as a deployment sets it for `serve`: a command still prints no
    # log line below a warning.
    return _run(*args, env={"SMARTD_DATABASE_URL": database_url, "SMARTD_LOG_LEVEL": "info", **env})


def _no_log_lines(result: subprocess.CompletedProcess[str]) -> None:
    assert not LOG_LINE.search(result.stdout), result.stdout
    assert not LOG_LINE.search(result.stderr), result.stderr


def _local_minute(instant: datetime) -> str:
    return instant.astimezone(ASTANA).strftime("%Y-%m-%d %H:%M")


def _campaign(database_url: str) -> int:
    return _created_id(
        _smartd(
            database_url,
            "campaign",
            "create",
            "--name",
            "Refusals",
            "--text",
            "ru=Привет",
            "--text",
            "kk=Сәлем",
        )
    )


async def test_commands_print_their_result_without_log_lines(
    database: Database, database_url: str
) -> None:
    """The monthly grant (which logs at info inside) prints only its result line."""
    await members(database, MEMBERS, joined_at=datetime(2020, 1, 1, tzinfo=UTC))
    result = _smartd(database_url, "bonus", "grant-month")
    assert result.returncode == 0, result.stderr
    _no_log_lines(result)
    assert result.stdout.count("\n") == 1 and "granted 2 members" in result.stdout
    assert result.stderr.strip() == ""


def test_token_list_times_are_astana_minutes(database_url: str) -> None:
    """`token list` shows created and expiry in Astana local time, to the minute."""
    before = datetime.now(UTC)
    created = _smartd(
        database_url,
        "token",
        "create",
        "--role",
        "viewer",
        "--name",
        "bi",
        "--expires-in-days",
        "2",
    )
    after = datetime.now(UTC)
    assert created.returncode == 0, created.stderr
    _no_log_lines(created)
    listed = _smartd(database_url, "token", "list")
    _no_log_lines(listed)
    row = listed.stdout.splitlines()[1].split("\t")
    assert not ISO.search(listed.stdout), listed.stdout
    assert row[4] in {_local_minute(before), _local_minute(after)}
    assert row[5] in {
        _local_minute(before + timedelta(days=2)),
        _local_minute(after + timedelta(days=2)),
    }


async def test_status_eta_is_an_astana_minute(database_url: str, tmp_path: Path) -> None:
    """`campaign status` gives the estimated end in Astana local time, to the minute."""
    campaign = _campaign(database_url)
    audience = tmp_path / "audience.csv"
    audience.write_text("msisdn\n" + "".join(f"7701100{i:04d}\n" for i in range(20)))
    assert _smartd(database_url, "campaign", "upload", str(campaign), str(audience)).returncode == 0
    assert _smartd(database_url, "campaign", "start", str(campaign)).returncode == 0
    submitted = datetime(2026, 11, 24, 6, 0, 0, 123456, tzinfo=UTC)  # 11:00:00.123456 Astana
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "UPDATE deliveries SET state = 'submitted', submitted_at = $2 "
            "WHERE id IN (SELECT id FROM deliveries WHERE campaign_id = $1 ORDER BY id LIMIT 10)",
            campaign,
            submitted,
        )
    finally:
        await conn.close()
    now = (submitted + timedelta(seconds=30)).isoformat()
    status = _smartd(database_url, "campaign", "status", str(campaign), SMARTD_CLOCK_START=now)
    assert status.returncode == 0, status.stderr
    _no_log_lines(status)
    assert re.search(rf"done by {LOCAL_MINUTE}", status.stdout), status.stdout
    assert not ISO.search(status.stdout), status.stdout


def test_refusals_say_what_cannot_be_done_and_why(database_url: str, tmp_path: Path) -> None:
    """A refused state change is one sentence: what cannot be done, and why, in words."""
    campaign = _campaign(database_url)
    no_audience = _smartd(database_url, "campaign", "start", str(campaign))
    assert no_audience.returncode == 1
    assert no_audience.stderr == (
        f"smartd: campaign {campaign}: cannot start: the campaign has no audience yet\n"
    )
    audience = tmp_path / "audience.csv"
    audience.write_text(f"msisdn\n{MEMBERS[0]}\n")
    assert _smartd(database_url, "campaign", "upload", str(campaign), str(audience)).returncode == 0
    assert _smartd(database_url, "campaign", "start", str(campaign)).returncode == 0
    expected = {
        "start": "cannot start: the campaign is already running",
        "resume": "cannot resume: the campaign is already running",
        "upload": "cannot add an audience: the campaign is running; pause it first",
    }
    for action, message in expected.items():
        args = [str(campaign), str(audience)] if action == "upload" else [str(campaign)]
        refused = _smartd(database_url, "campaign", action, *args)
        assert refused.returncode == 1, (action, refused.stdout)
        assert refused.stderr == f"smartd: campaign {campaign}: {message}\n", action
        _no_log_lines(refused)
    assert _smartd(database_url, "campaign", "cancel", str(campaign)).returncode == 0
    again = _smartd(database_url, "campaign", "cancel", str(campaign))
    assert again.stderr == (
        f"smartd: campaign {campaign}: cannot cancel: the campaign is already cancelled\n"
    )
