"""The dashboard stays current without a reload (Server-Sent Events), in a real browser: a driver starts
charging and the page shows who, the kWh and the cost so far; the session ends and today's figures move; a
connector faults and the charger goes away, and the alerts at the top say so."""

from __future__ import annotations

import asyncio

from browser import chromium, shot
from ocpp.v16 import call as call16
from peers import Charger, now
from test_web_login import admin
from test_web_users import login, seed


async def cell(page, field: str, want: str, seconds: float = 15) -> str:
    """The dashboard's CP-L1 `field` once it contains `want` (the stream sends every 2 s)."""
    text = ""
    for _ in range(int(seconds * 10)):
        text = await page.locator(f'tr[data-charger="CP-L1"] [data-field="{field}"]').inner_text()
        if want in text:
            return text
        await asyncio.sleep(0.1)
    raise AssertionError(f"{field} never showed {want!r} (last: {text!r})")


async def test_the_dashboard_follows_a_session_live(edge_factory):
    edge = edge_factory({})
    seed(edge)  # Juan Dela Cruz, card 04C0FFEE, 500.00
    made = await asyncio.to_thread(admin, edge, "add", "boss", "--role", "owner", password="correct horse 1\n")
    assert made.returncode == 0, made.stderr
    ch = await Charger(edge.url, "CP-L1", "1.6").connect()
    await ch.boot16()
    base = f"http://127.0.0.1:{edge.web_port}"
    async with chromium() as browser:
        context = await browser.new_context(bypass_csp=True)  # the test marks the page to see it never reloads
        page = await context.new_page()
        await login(page, base, "boss")
        await page.evaluate("window.notReloaded = true")
        assert await page.locator('tr[data-charger="CP-L1"] [data-field="now"]').inner_text() == "—"
        start = await ch.start16("04C0FFEE", meter_start=10_000)
        await ch.meter16(start.transaction_id, 13_200)
        charging = await cell(page, "now", "Juan Dela Cruz")
        assert "3.20 kWh" in charging and "₱48.00" in charging, charging
        await page.screenshot(path=shot("web-dashboard-live"), full_page=True)
        await ch.stop16(start.transaction_id, 14_000, id_tag="04C0FFEE")
        assert await cell(page, "kwh", "4.00") == "4.00"
        assert await cell(page, "sessions", "1") == "1" and await cell(page, "now", "—") == "—"
        assert await page.locator('tfoot [data-field="fees"]').inner_text() == "₱60.00"
        assert await page.locator("#alerts").is_hidden(), "nothing to look at yet"
        # a fault, then the charger gone: said at the top, live
        await ch.call(call16.StatusNotification(connector_id=1, error_code="GroundFailure", status="Faulted",
                                                timestamp=now()))
        await alert(page, "Charger CP-L1, connector 1 is faulted (GroundFailure).")
        await ch.close()
        await alert(page, "Charger CP-L1 is not connected.")
        await page.screenshot(path=shot("web-dashboard-alerts"), full_page=True)
        assert await page.evaluate("window.notReloaded === true"), "updated in place, not reloaded"
        await context.close()


async def alert(page, text: str) -> None:
    for _ in range(150):
        if text in await page.locator("#alert-list").inner_text() and await page.locator("#alerts").is_visible():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no alert {text!r}: {await page.locator('#alert-list').inner_text()!r}")


async def test_an_empty_site_dashboard_stays_put_until_the_first_charger_comes(edge_factory):
    edge = edge_factory({})
    made = await asyncio.to_thread(admin, edge, "add", "boss", "--role", "owner", password="correct horse 1\n")
    assert made.returncode == 0, made.stderr
    base = f"http://127.0.0.1:{edge.web_port}"
    async with chromium() as browser:
        context = await browser.new_context(bypass_csp=True)
        page = await context.new_page()
        await login(page, base, "boss")
        await page.evaluate("window.notReloaded = true")
        await page.wait_for_selector("#live", state="visible", timeout=10_000)  # the stream is open
        await asyncio.sleep(5)  # two of the stream's sends
        assert await page.evaluate("window.notReloaded === true"), "no reload while nothing changes"
        ch = await Charger(edge.url, "CP-E1", "1.6").connect()
        await ch.boot16()
        await page.wait_for_selector('tr[data-charger="CP-E1"]', timeout=15_000)
        await ch.close()
        await context.close()
