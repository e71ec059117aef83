"""Reports and the inbox in a real browser (issue 14): Debian's chromium under Playwright
against the app on 127.0.0.1, the engine sending to the SMSC simulator over SMPP.

A marketer's survey form refused for its scripts shows the one real cause and keeps every
input, the chosen audience file too; the survey, once sent and answered by SMS, shows its
results in each of its languages with the response rate, percentages of those who answered
and the CSV link; the inbox shows the partner-facing marketer counts per campaign only and
the operator's admin each message with its number. Screenshots: test-artifacts/console/
reports-*.png.
"""

from __future__ import annotations

from datetime import timedelta

from playwright.async_api import Page, expect

from dispatcher.console import inbox_views
from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from tests.browser.test_console_flow import chromium, serve, shot, sign_in
from tests.dispatch_helpers import dispatch_rig
from tests.factories import members

PANEL = [f"7701666{n:04d}" for n in range(12)]
SURVEY = {
    "kk": "Жаңа кофе қалай?\n1. Керемет\n2. Жақсы\n3. Ұнамады",
    "ru": "Как вам новый кофе?\n1. Отлично\n2. Нормально\n3. Не понравился",
    "en": "How is the new coffee?\n1. Great\n2. Fine\n3. Did not like it",
}
#: Q1 replies of the first ten; the eleventh sends STOP, the twelfth 1204.
REPLIES = ["1"] * 6 + ["2"] * 3 + ["3"]


async def refused_then_created(page: Page) -> int:
    """The survey form with ru's question short of an option: one error naming where, the
    inputs and the chosen file kept; corrected, it is created with its audience."""
    await (
        page.get_by_role("navigation", name="Main").get_by_role("link", name="New campaign").click()
    )
    await page.get_by_label("Name").fill("Kofe taste")
    await page.get_by_label("Partner").fill("Kofe Coffee")
    await page.get_by_label("Kind").select_option("survey")
    await page.get_by_label("Questions (kk)").fill(SURVEY["kk"])
    await page.get_by_label("Questions (ru)").fill(SURVEY["ru"].rsplit("\n", 1)[0])
    await page.get_by_label("Questions (en)").fill(SURVEY["en"])
    for lang, thanks in (("kk", "Рақмет!"), ("ru", "Спасибо!"), ("en", "Thank you!")):
        await page.get_by_label(f"Thank-you ({lang})").fill(thanks)
    csv = "\n".join(PANEL).encode()
    await page.set_input_files(
        "#file", files=[{"name": "panel.csv", "mimeType": "text/csv", "buffer": csv}]
    )
    await page.get_by_role("button", name="Create campaign").click()
    errors = page.locator("#form-errors li")
    await expect(errors).to_have_count(1)
    await expect(errors).to_contain_text("question 1: kk has 3 options (kk, line 1), ru has 2")
    await expect(page.locator("#form-errors")).not_to_contain_text("expected 1..10")
    await expect(page.locator("#survey-error")).to_be_visible()
    assert await page.locator("#file").evaluate("f => [...f.files].map(x => x.name)") == [
        "panel.csv"
    ]
    await expect(page.get_by_label("Name")).to_have_value("Kofe taste")
    await expect(page.get_by_label("Questions (kk)")).to_have_value(SURVEY["kk"])
    await shot(page, "reports-01-survey-error-kept-input")
    await page.get_by_label("Questions (ru)").fill(SURVEY["ru"])
    await page.get_by_role("button", name="Create campaign").click()
    await expect(page.locator(".alert-ok")).to_contain_text(f"{len(PANEL)} accepted")
    return int(page.url.split("/console/campaigns/")[1].split("?")[0])


async def test_survey_results_and_inbox(settings, clock, database, monkeypatch) -> None:
    """Refused form keeps its input; results with a language switch and percentages; the
    inbox for a partner-facing marketer (counts) and for the operator's admin (messages,
    older pages loading as the list ends, a new message appearing on top)."""
    monkeypatch.setattr(inbox_views, "PAGE_SIZE", 5)  # 12 messages: three pages
    monkeypatch.setattr(inbox_views, "REFRESH_SECONDS", 1)
    await members(database, PANEL)
    tokens = TokenRepository(database.pool)
    marketer, _ = await tokens.create("ops-aida", Role.MARKETER)
    admin, _ = await tokens.create("noc-berik", Role.ADMIN)
    app = create_app(settings, clock=clock, database=database)
    async with (
        dispatch_rig(database, settings, clock) as rig,
        serve(app) as base,
        chromium() as browser,
    ):
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await sign_in(page, base, marketer, "ops-aida")
        campaign_id = await refused_then_created(page)
        await page.get_by_role("button", name="Start").click()
        await page.get_by_role("button", name="Confirm start").click()
        await expect(page.locator("h1 .badge")).to_have_text("running")

        await rig.drain()
        await rig.receipts_settled(len(PANEL))
        clock.advance(timedelta(minutes=11))
        for msisdn, reply in zip(PANEL, REPLIES, strict=False):
            await rig.sim.inject_mo(msisdn, settings.short_code, reply)
        await rig.sim.inject_mo(PANEL[10], settings.short_code, "STOP")
        await rig.sim.inject_mo(PANEL[11], settings.dnc_code, "1204")

        await page.goto(f"{base}/console/campaigns/{campaign_id}")
        results = page.locator("#survey-results")
        await expect(page.locator("#response-rate")).to_contain_text("response rate 83.3%")
        await results.get_by_role("link", name="kk", exact=True).click()
        await expect(results).to_contain_text("Жаңа кофе қалай?")
        await expect(results).to_contain_text("6 · 60.0%")
        await expect(results.locator("#results-csv")).to_have_attribute(
            "href", f"/console/campaigns/{campaign_id}/results.csv?lang=kk"
        )
        await shot(page, "reports-02-results-kk")
        await results.get_by_role("link", name="en", exact=True).click()
        await expect(results).to_contain_text("How is the new coffee?")
        await expect(results.locator("rect.answer-bar").first).to_have_attribute(
            "width", str(round(60.0 * 3.3, 2))
        )
        await shot(page, "reports-03-results-en")

        await page.get_by_role("navigation", name="Main").get_by_role("link", name="Inbox").click()
        counts = page.locator("#inbox-counts")
        await expect(counts).to_contain_text("Kofe taste")
        await expect(counts.locator("tbody tr td.num")).to_have_text(["10", "< 5", "< 5", "12"])
        for msisdn in PANEL:
            await expect(page.locator("body")).not_to_contain_text(msisdn)
        await shot(page, "reports-04-inbox-partner")

        operator = await browser.new_page(viewport={"width": 1280, "height": 900})
        await sign_in(operator, base, admin, "noc-berik")
        await operator.goto(f"{base}/console/inbox")
        rows = operator.locator("#inbox tbody tr")
        await expect(rows).to_have_count(len(PANEL))
        await expect(rows.first).to_contain_text(PANEL[11])
        await expect(rows.first).to_contain_text("1204")
        await expect(rows.nth(1)).to_contain_text("stop")
        await expect(rows.first).to_contain_text("Kofe taste")
        await expect(rows.last).to_contain_text(PANEL[0])  # the oldest, from the third page
        await expect(operator.locator("#inbox-older")).to_have_count(0)
        await rig.sim.inject_mo(PANEL[0], settings.short_code, "Кофе керемет!")
        await expect(rows).to_have_count(len(PANEL) + 1)
        await expect(rows.first).to_contain_text("Кофе керемет!")
        await shot(operator, "reports-05-inbox-operator")
        await operator.get_by_label("Kind").select_option("stop")
        await operator.get_by_role("button", name="Filter").click()
        await expect(rows).to_have_count(1)
        await shot(operator, "reports-06-inbox-operator-stop")
