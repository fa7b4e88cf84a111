"""The owner's session pages in a real browser: the list with its filters, and one session with its receipt:
times in the site's zone, kWh, the tariff's cost breakdown adding up to what was taken from the balance, and
the meter readings as a chart."""

from __future__ import annotations

import asyncio

from browser import chromium, shot
from peers import Charger
from test_web_login import admin
from test_web_users import login, seed


async def test_sessions_list_filters_and_a_receipt(edge_factory):
    edge = edge_factory({"site": {"timezone": "Asia/Manila"}})
    seed(edge)
    made = await asyncio.to_thread(admin, edge, "add", "wall", "--role", "viewer", password="correct horse 1\n")
    assert made.returncode == 0, made.stderr
    ch = await Charger(edge.url, "CP-S1", "1.6").connect()
    await ch.boot16()
    start = await ch.start16("04C0FFEE", meter_start=20_000)
    for wh in (21_000, 22_500):
        await ch.meter16(start.transaction_id, wh)
    await ch.stop16(start.transaction_id, 24_000, id_tag="04C0FFEE")
    await ch.close()
    base = f"http://127.0.0.1:{edge.web_port}"
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1024, "height": 900})
        await login(page, base, "wall")
        await page.goto(base + "/sessions")
        row = page.locator("tbody tr", has_text="CP-S1")
        assert "4.00" in await row.inner_text() and "₱60.00" in await row.inner_text()
        assert "****FFEE" in await row.inner_text(), "a viewer sees the card masked"
        await page.goto(base + "/sessions?charger=CP-OTHER")
        assert await page.locator("tbody tr").count() == 0
        response = await page.goto(base + "/sessions?day_from=not-a-day")
        assert "cannot be used" in await page.inner_text("main")
        await page.goto(base + "/sessions?charger=CP-S1")
        async with page.expect_navigation():
            await page.click("tbody tr a")
        assert "/sessions/" in page.url
        receipt = await page.inner_text("section.receipt")
        assert "CP-S1" in receipt and "Juan Dela Cruz" in receipt and "4.00" in receipt
        assert "Energy\n₱60.00" in receipt and "Total\n₱60.00" in receipt and "Paid from the balance\n₱60.00" in receipt
        assert await page.locator("svg.chart rect").count() >= 2, "the meter readings, drawn"
        await page.screenshot(path=shot("web-session"), full_page=True)
        assert response is not None
        assert (await page.goto(base + "/sessions/999999")).status == 404
