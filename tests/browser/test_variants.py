"""Issue 15, variants and a control group, in the browser (Debian's chromium under Playwright):
a marketer writes a second text variant and a holdout on the create form (a split that does
not sum to 100 is shown beside the fields), the campaign page shows each arm's recipients
before the start, an edit of the holdout keeps variant B, and after sending through the SMSC
simulator the variants table shows sent counts per variant and none for the holdout.
Screenshots: test-artifacts/console/variants-*.png."""

from __future__ import annotations

from playwright.async_api import expect

from dispatcher.engine.engine import EngineConfig
from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from tests.browser.test_console_flow import chromium, run_campaign, serve, shot, sign_in
from tests.dispatch_helpers import dispatch_rig
from tests.factories import members, subscribers

NUMBERS = [f"7701777{n:04d}" for n in range(60)]


async def test_variant_editor_report_and_sending(settings, clock, database) -> None:
    """Create with variant B and a 20% holdout (after a refused split), see the arms before
    the start, edit the holdout to 10%, start, send, and read sent per arm."""
    await members(database, NUMBERS)
    await subscribers(database, NUMBERS, language="en")
    token, _ = await TokenRepository(database.pool).create("ops-aida", Role.ADMIN)
    app = create_app(settings, clock=clock, database=database)
    engine = EngineConfig(batch_size=20, window=64)
    async with (
        dispatch_rig(database, settings, clock, engine=engine) as rig,
        serve(app) as base,
        chromium() as browser,
    ):
        page = await browser.new_page(viewport={"width": 1280, "height": 1000})
        await sign_in(page, base, token)
        await page.goto(base + "/console/campaigns/new")
        await page.get_by_label("Name").fill("Coffee A/B")
        await page.get_by_label("Partner").fill("Kofe Coffee")
        await page.get_by_label("Text (kk)").fill("Kofe: 20% zhenildik")
        await page.get_by_label("Text (ru)").fill("Kofe: skidka 20%")
        await page.get_by_label("Text (en)").fill("Kofe: 20% off today")
        await page.get_by_label("Holdout").fill("20")
        await page.locator("#variant-1 summary").click()
        await page.get_by_label("Text B (kk)").fill("Kofe: ekinshi kofe tegin")
        await page.get_by_label("Text B (ru)").fill("Kofe: vtoroy kofe v podarok")
        await page.get_by_label("Text B (en)").fill("Kofe: second coffee free")
        await page.get_by_label("Variant A percent").fill("70")
        await page.get_by_label("Variant B percent").fill("20")
        await page.get_by_role("button", name="Create campaign").click()
        await expect(page.locator("#form-errors")).to_contain_text("sum to 90")
        await expect(page.get_by_label("Text B (kk)")).to_have_value("Kofe: ekinshi kofe tegin")
        await shot(page, "variants-01-split-refused")

        await page.get_by_label("Variant B percent").fill("30")
        csv = ("msisdn\n" + "\n".join(NUMBERS) + "\n").encode()
        await page.set_input_files(
            "#file", files=[{"name": "ab.csv", "mimeType": "text/csv", "buffer": csv}]
        )
        await page.get_by_role("button", name="Create campaign").click()
        await expect(page.locator(".alert-ok")).to_contain_text("60 accepted")
        table = page.locator("#variants-table")
        await expect(table.locator("tr[data-arm='0']")).to_contain_text("56%")
        await expect(table.locator("tr[data-arm='1']")).to_contain_text("24%")
        await expect(table.locator("tr[data-arm='holdout']")).to_contain_text("20%")
        campaign_id = int(page.url.split("/console/campaigns/")[1].split("?")[0])
        arms = await _arms(database, campaign_id)
        held = arms.get(None, 0)
        await expect(table.locator("tr[data-arm='holdout'] td").nth(2)).to_have_text(str(held))
        await shot(page, "variants-02-arms-before-start")

        await page.get_by_role("link", name="Edit").click()
        await expect(page.get_by_label("Holdout")).to_have_value("20")
        await expect(page.get_by_label("Text B (en)")).to_have_value("Kofe: second coffee free")
        await page.get_by_label("Holdout").fill("10")
        await page.get_by_role("button", name="Save changes").click()
        await expect(table.locator("tr[data-arm='holdout']")).to_contain_text("10%")
        arms = await _arms(database, campaign_id)
        await shot(page, "variants-03-edited")

        await page.get_by_role("button", name="Start").click()
        await page.get_by_role("button", name="Confirm start").click()
        await expect(page.locator("h1 .badge")).to_have_text("running")
        await run_campaign(rig, campaign_id, len(NUMBERS) - arms.get(None, 0))
        await page.goto(f"{base}/console/campaigns/{campaign_id}")
        for key, arm in (("0", 0), ("1", 1)):
            row = table.locator(f"tr[data-arm='{key}']")
            await expect(row.locator("td").nth(3)).to_have_text(str(arms.get(arm, 0)))
        await expect(table.locator("tr[data-arm='holdout'] td").nth(3)).to_have_text("0")
        texts = {sm.destination_addr for _, sm in rig.sim.submits()}
        held_out = {m for m, arm in (await _numbers(database, campaign_id)).items() if arm is None}
        assert held_out and not held_out & texts
        await shot(page, "variants-04-sent")


async def _numbers(database, campaign_id: int) -> dict[str, int | None]:
    rows = await database.pool.fetch(
        "SELECT msisdn, variant FROM deliveries WHERE campaign_id = $1", campaign_id
    )
    return {r["msisdn"]: r["variant"] for r in rows}


async def _arms(database, campaign_id: int) -> dict[int | None, int]:
    counts: dict[int | None, int] = {}
    for arm in (await _numbers(database, campaign_id)).values():
        counts[arm] = counts.get(arm, 0) + 1
    return counts
