"""The audience flows of issue 14 in a real browser (Debian's chromium under Playwright): an
Excel export with a Cyrillic header goes through the column-mapping step, numbers that cannot
receive SMS are rejected with their kind, and every rejected row is downloaded as CSV from the
campaign page. Screenshots: ``test-artifacts/console/audience-*.png``."""

from __future__ import annotations

import csv
import io

from playwright.async_api import expect

from dispatcher.kernel.states import Role
from dispatcher.tokens import TokenRepository
from dispatcher.web.app import create_app
from tests.browser.test_console_flow import chromium, serve, shot, sign_in

GOOD = [f"+7 701 777 {n:04d}" for n in range(6)]
#: Rows that cannot be loaded: a fixed line, a German mobile, a toll-free number, not a number.
BAD = ["8 7172 12 34 56", "+49 151 1234 5678", "8 800 080 1234", "нет номера"]


async def test_upload_with_a_mapping_and_download_every_rejected_row(
    settings, clock, database
) -> None:
    token, _ = await TokenRepository(database.pool).create("ops-aida", Role.MARKETER)
    app = create_app(settings, clock=clock, database=database)
    rows = ["Имя;Телефон"] + [f"Клиент {n};{m}" for n, m in enumerate(GOOD)]
    rows += [f"Плохой;{m}" for m in BAD] + [f";{GOOD[0].replace('777', '778')}"]
    export = ("\r\n".join(rows) + "\r\n").encode("utf-8-sig")  # as Excel saves "CSV UTF-8"
    async with serve(app) as base, chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await sign_in(page, base, token)
        nav = page.get_by_role("navigation", name="Main")
        await nav.get_by_role("link", name="New campaign").click()
        await page.get_by_label("Name").fill("Spring names")
        await page.get_by_label("Text (kk)").fill("{name}, көктемгі жеңілдік!")
        await page.get_by_label("Text (ru)").fill("{name}, весенняя скидка!")
        await page.get_by_label("Audience columns").fill("name")
        await page.set_input_files(
            "#file", files=[{"name": "export.csv", "mimeType": "text/csv", "buffer": export}]
        )
        await page.get_by_role("button", name="Create campaign").click()

        # The file is kept and its header offered: the refusal on the error banner.
        mapping = page.locator("#column-mapping")
        await expect(mapping).to_be_visible()
        await expect(page.locator(".alert-error")).to_contain_text("found: Имя, Телефон")
        await expect(page.locator(".alert-ok")).to_have_count(0)
        await expect(page.get_by_label("Number")).to_have_value("2")  # guessed: Телефон
        await page.locator("#column-name").select_option(label="Имя")
        await shot(page, "audience-01-mapping")
        await page.get_by_role("button", name="Load with these columns").click()

        result = page.locator("#upload-result")
        rejected = len(BAD) + 1
        await expect(result).to_contain_text(f"{len(GOOD)} accepted · {rejected} rejected")
        await expect(result).to_contain_text("fixed-line number")
        await expect(result).to_contain_text("foreign number (+49, Germany)")
        await expect(result).to_contain_text("toll-free number")
        await expect(result).to_contain_text("empty value for name")
        await shot(page, "audience-02-loaded")

        async with page.expect_download() as waiting:
            await page.locator("#rejected-csv").click()
        download = await waiting.value
        path = await download.path()
        assert path is not None
        lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
        assert lines[0] == ["upload", "line", "value", "reason"]
        assert len(lines) - 1 == rejected
        assert [row[1] for row in lines[1:]] == [str(n) for n in range(8, 8 + rejected)]
        assert lines[2][2:] == ["'+49 151 1234 5678", "foreign number (+49, Germany)"]

        await page.goto(page.url.split("?")[0].removesuffix("/audience"))
        await expect(page.locator("#uploads")).to_contain_text(str(len(GOOD)))
        await expect(page.locator("#all-rejected-csv")).to_contain_text(f"({rejected}, CSV)")
        await page.locator("#uploads").scroll_into_view_if_needed()
        await shot(page, "audience-03-uploads")
