"""Issue 15, "A send calendar, not only a window", in Debian's chromium: with Mon-Fri 10-21,
Sat 11-19, Sunday closed and a holiday file, a marketer opens the Calendar page from the nav
on Saturday evening (closed now, next opening Monday), then a running campaign's page says it
waits until Monday; on Monday at the opening the engine sends it to the SMSC simulator and
the campaign page says so. Screenshots: calendar-*.png."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import expect

from dispatcher.kernel.states import Role
from dispatcher.settings import load_settings
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from tests.browser.test_console_flow import chromium, serve, shot, sign_in
from tests.dispatch_helpers import dispatch_rig
from tests.factories import campaign, members

NUMBERS = [f"7701888{n:04d}" for n in range(5)]
WEEK = "mon-fri 10:00-21:00; sat 11:00-19:00; sun closed"


async def test_calendar_page_and_a_campaign_waiting_over_sunday(
    database, database_url, tmp_path: Path, clock
) -> None:
    holidays = tmp_path / "calendar.txt"
    holidays.write_text("2026-12-16..2026-12-17 closed  # Independence Day\n", encoding="utf-8")
    settings = load_settings(
        {"SMARTD_SEND_HOURS": WEEK, "SMARTD_SEND_CALENDAR_FILE": str(holidays)},
        data_dir=tmp_path,
        database_url=database_url,
    )
    await members(database, NUMBERS)
    token, _ = await TokenRepository(database.pool).create("ops-aida", Role.MARKETER)
    clock.set(datetime(2026, 11, 28, 14, 30, tzinfo=UTC))  # Saturday 19:30 Astana
    cid = await campaign(database, NUMBERS, name="Weekend", partner="Kofe", started_at=clock.now())
    app = create_app(settings, clock=clock, database=database)
    async with (
        dispatch_rig(database, settings, clock) as rig,
        serve(app) as base,
        chromium() as browser,
    ):
        await rig.engine.run_services_once()  # the bind report: this engine is bound
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await sign_in(page, base, token)
        nav = page.get_by_role("navigation", name="Main")
        await nav.get_by_role("link", name="Calendar").click()
        await expect(page).to_have_url(base + "/console/calendar")
        await expect(page.get_by_role("heading", name="Send calendar")).to_be_visible()
        await expect(page.locator("#calendar-now")).to_contain_text(
            "Closed now — opens at 2026-11-30 10:00"
        )
        week = page.locator("#calendar-week tbody tr")
        await expect(week).to_have_count(7)
        await expect(week.nth(5)).to_contain_text("11:00–19:00")
        await expect(week.nth(6)).to_contain_text("closed")
        holiday = page.locator("#calendar-exceptions tbody tr")
        await expect(holiday).to_have_count(2)
        await expect(holiday.first).to_contain_text("2026-12-16")
        await expect(holiday.first).to_contain_text("Independence Day")
        days = page.locator("#calendar-days tbody tr")
        await expect(days.nth(1)).to_have_class("day-closed")  # Sunday
        await expect(days.nth(1)).to_contain_text("Sun 2026-11-29")
        await shot(page, "calendar-01-page")

        assert await rig.drain() == 0  # Saturday past 19:00: nothing goes
        await page.goto(f"{base}/console/campaigns/{cid}")
        await expect(page.locator("#status-phrase")).to_have_text("waiting")
        await expect(page.locator("#status-message")).to_contain_text(
            "window closed until 10:00 on 30 Nov"
        )
        await shot(page, "calendar-02-campaign-waits-for-monday")

        clock.set(datetime(2026, 11, 29, 7, 0, tzinfo=UTC))  # Sunday noon: still closed
        assert await rig.drain() == 0
        clock.set(datetime(2026, 11, 30, 5, 0, tzinfo=UTC))  # Monday 10:00
        assert await rig.drain() == len(NUMBERS)
        assert {sm.validity_period for _, sm in rig.sim.submits()} == {"261130210000020+"}
        await sign_in(page, base, token)  # two days on: the console session has lapsed
        await page.goto(f"{base}/console/calendar")
        await expect(page.locator("#calendar-now")).to_contain_text(
            "Open now — closes at 2026-11-30 21:00"
        )
        await shot(page, "calendar-03-open-monday")
