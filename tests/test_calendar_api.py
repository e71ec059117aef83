"""The send calendar over real HTTP (``GET /api/v1/calendar``, the console's Calendar page)
and the command line (``smartd calendar``, ``smartd calendar check FILE``) as real processes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dispatcher.db import Database
from dispatcher.kernel.clock import ManualClock
from dispatcher.kernel.states import Role
from dispatcher.settings import Settings, load_settings
from tests.test_cli import _run
from tests.test_console import sign_in
from tests.web_helpers import Api, running_api

WEEK = "mon-fri 10:00-21:00; sat 11:00-19:00; sun closed"
HOLIDAYS = "# Kazakhstan, an example\n2026-12-16..2026-12-17 closed  # Independence Day\n"
SATURDAY_EVENING = datetime(2026, 11, 28, 14, 30, tzinfo=UTC)  # Sat 19:30 Astana


def _files(tmp_path: Path) -> Path:
    path = tmp_path / "calendar.txt"
    path.write_text(HOLIDAYS + "2026-11-30 12:00-18:00 # short Monday\n", encoding="utf-8")
    return path


def _calendar_settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings with the test's week (SMARTD_SEND_HOURS) and its calendar file."""
    return load_settings(
        {"SMARTD_SEND_HOURS": WEEK, "SMARTD_SEND_CALENDAR_FILE": str(_files(tmp_path))},
        data_dir=tmp_path,
        database_url=database_url,
    )


async def _calendar(api: Api, query: str = "", role: Role = Role.VIEWER) -> tuple[int, Any]:
    response = await api.client.get(f"/api/v1/calendar{query}", headers=api.auth(role))
    return response.status, await response.json()


async def test_api_says_closed_until_monday_and_lists_the_days(
    database: Database, database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """Saturday 19:30 with Sunday closed and Monday short: closed now, next opening Monday
    12:00; the week, the exceptions and 4 days in local time."""
    settings = _calendar_settings(tmp_path, database_url)
    clock.set(SATURDAY_EVENING)
    async with running_api(settings, clock, database) as api:
        status, body = await _calendar(api, "?days=4")
    assert status == 200, body
    assert body["zone"] == "Asia/Almaty" and body["open_now"] is False
    assert body["closes_at"] is None and body["next_opening"] == "2026-11-30T12:00:00+05:00"
    assert body["weekly_text"] == WEEK
    assert [d["hours"] for d in body["weekly"]] == [
        *["10:00-21:00"] * 5,
        "11:00-19:00",
        None,
    ]
    assert [(e["date"], e["hours"], e["note"]) for e in body["exceptions"]] == [
        ("2026-11-30", "12:00-18:00", "short Monday"),
        ("2026-12-16", None, "Independence Day"),
        ("2026-12-17", None, "Independence Day"),
    ]
    days = body["days"]
    assert [(d["date"], d["weekday"], d["open"], d["exception"]) for d in days] == [
        ("2026-11-28", "sat", True, False),
        ("2026-11-29", "sun", False, False),
        ("2026-11-30", "mon", True, True),
        ("2026-12-01", "tue", True, False),
    ]
    assert days[0]["closes_at"] == "2026-11-28T19:00:00+05:00"
    assert days[1]["opens_at"] is None and days[1]["hours"] is None
    assert days[2]["opens_at"] == "2026-11-30T12:00:00+05:00"


async def test_api_open_now_default_and_bad_days(
    database: Database, settings: Any, clock: ManualClock
) -> None:
    """The default calendar at 17:00: open, closes 21:00, next opening tomorrow 10:00, 14
    days; every signed-in role may read it; days out of 1-366 is a 400 JSON error."""
    async with running_api(settings, clock, database) as api:
        for role in (Role.VIEWER, Role.MARKETER, Role.ADMIN):
            status, body = await _calendar(api, role=role)
            assert status == 200
        assert body["open_now"] is True and body["closes_at"] == "2026-11-23T21:00:00+05:00"
        assert body["next_opening"] == "2026-11-24T10:00:00+05:00"
        assert len(body["days"]) == 14 and body["exceptions"] == []
        for bad in ("0", "367", "x", "-1"):
            status, body = await _calendar(api, f"?days={bad}")
            assert status == 400 and body["error"]["code"] == "invalid_query", bad
        response = await api.client.get("/api/v1/calendar")
        assert response.status == 401


async def test_console_calendar_page(
    database: Database, database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """The Calendar page (linked from the nav) shows closed now, the week with Sunday
    closed, and the holidays ahead."""
    settings = _calendar_settings(tmp_path, database_url)
    clock.set(SATURDAY_EVENING)
    async with running_api(settings, clock, database) as api:
        await sign_in(api, Role.VIEWER)
        page = await api.client.get("/console/calendar")
        html = await page.text()
    assert page.status == 200
    assert 'href="/console/calendar" aria-current="page"' in html
    assert "Closed now" in html and "2026-11-30 12:00" in html
    assert "Independence Day" in html and "short Monday" in html


def test_cli_shows_the_calendar(tmp_path: Path) -> None:
    """`smartd calendar --days 3`: closed now, next opening, the week and the days."""
    result = _run(
        "calendar",
        "--days",
        "3",
        env={
            "SMARTD_SEND_HOURS": WEEK,
            "SMARTD_SEND_CALENDAR_FILE": str(_files(tmp_path)),
            "SMARTD_CLOCK_START": SATURDAY_EVENING.isoformat(),
        },
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "closed now; next opening 2026-11-30 12:00" in out
    assert f"weekly: {WEEK}" in out
    assert "2026-12-16 closed  Independence Day" in out
    assert "Sun 2026-11-29  closed" in out
    assert "Mon 2026-11-30  12:00-18:00 (exception: short Monday)" in out
    assert "next 3 day(s):" in out and "Tue 2026-12-01" not in out


def test_cli_check_names_the_bad_lines(tmp_path: Path) -> None:
    """`smartd calendar check FILE`: a good file is summarised (exit 0); a bad one gets each
    bad line with its number (exit 1), an overlap names both entries."""
    good = _files(tmp_path)
    result = _run("calendar", "check", str(good), env={})
    assert result.returncode == 0, result.stderr
    assert (
        "valid, 2 entries" in result.stdout
        and "3 day(s), 2026-11-30 to 2026-12-17" in result.stdout
    )
    bad = tmp_path / "bad.txt"
    bad.write_text("mon-fri 10:00-21:00\nsat 11-19\n\nholiday closed\n", encoding="utf-8")
    result = _run("calendar", "check", str(bad), env={})
    assert result.returncode == 1
    assert f"{bad} line 2 (sat 11-19): expected HH:MM" in result.stderr
    assert f"{bad} line 4 (holiday closed): unknown day 'holiday'" in result.stderr
    overlap = tmp_path / "overlap.txt"
    overlap.write_text("fri 22:00-06:00\nsat 05:00-12:00\n", encoding="utf-8")
    result = _run("calendar", "check", str(overlap), env={})
    assert result.returncode == 1
    assert f"{overlap} line 1 (fri 22:00-06:00) overlaps {overlap} line 2" in result.stderr
