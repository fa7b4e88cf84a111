"""The tariff page in a real browser: the tariff in force in a driver's order, an owner edits it and the
preview prices a session as they type (the same code that bills), a bad price is refused with the reason and
nothing changes, a saved tariff bills the next session and is in the history and the audit, a tariff set for
later waits its turn, a viewer only reads, and the JSON API says the same."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from browser import chromium, shot, submit
from peers import Charger
from test_operations import call
from test_web_login import admin
from test_web_users import login, seed


async def preview_shows(page, text: str, where: str = "#preview") -> str:
    """The preview (or its error) once it contains `text` (it is asked for as the fields change)."""
    shown = ""
    for _ in range(100):
        shown = await page.locator(where).inner_text()
        if text in shown:
            return shown
        await asyncio.sleep(0.1)
    raise AssertionError(f"the preview never showed {text!r}: {shown!r}")


async def test_an_owner_edits_the_tariff_with_a_live_preview_and_it_bills_the_next_session(edge_factory):
    edge = edge_factory({"site": {"timezone": "Asia/Manila"}})
    seed(edge)  # Juan Dela Cruz, 04C0FFEE, ₱500.00
    for name, role in (("boss", "owner"), ("look", "viewer")):
        made = await asyncio.to_thread(admin, edge, "add", name, "--role", role, password="correct horse 1\n")
        assert made.returncode == 0, made.stderr
    base = f"http://127.0.0.1:{edge.web_port}"
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 1000})
        await login(page, base, "boss")
        await page.goto(base + "/tariff")
        assert "₱15.00 per kWh" in await page.inner_text("#in-force"), "the configuration file's tariff"
        await preview_shows(page, "₱300.00")  # 20 kWh at ₱15.00
        # typing a new price and a time-of-use band: the preview follows without a click
        await page.fill("input[name=per_kwh]", "18.00")
        await preview_shows(page, "costs ₱360.00")
        await page.fill("input[name=band0_start]", "18:00")
        await page.fill("input[name=band0_end]", "22:00")
        await page.fill("input[name=band0_per_kwh]", "25.00")
        await page.fill("input[name=session_fee]", "10.00")
        # 19:00 for 3 h: all 20 kWh inside 18:00-22:00 at ₱25.00, and the session fee
        shown = await preview_shows(page, "costs ₱510.00")
        assert "₱500.00" in shown and "₱10.00" in shown, shown
        await page.fill("input[name=q_start]", "21:00")  # 21:00-24:00: a third inside the band
        await preview_shows(page, "costs ₱416.67")
        await page.screenshot(path=shot("web-tariff-edit"), full_page=True)
        # a price that is not one: said plainly, and saving it changes nothing
        await page.fill("input[name=per_minute]", "abc")
        await preview_shows(page, "per_minute", "#preview-error")
        async with page.expect_navigation():
            await page.click("button[value=save]")
        assert "The tariff was not saved" in await page.inner_text("main")
        assert edge.query("SELECT COUNT(*) FROM tariffs") == [(0,)]
        # the form kept what was typed: fix the one field and save
        await submit(page, "button[value=save]", {"input[name=per_minute]": "0", "input[name=band0_start]": "",
                                                  "input[name=band0_end]": "", "input[name=band0_per_kwh]": ""})
        in_force = await page.inner_text("#in-force")
        assert "₱18.00 per kWh" in in_force and "₱10.00 per session" in in_force, in_force
        history = await page.inner_text("table.history")
        assert "web:boss" in history and "in force" in history
        # and one for later: shown as to come, not in force
        later = (datetime.now(ZoneInfo("Asia/Manila")) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
        await submit(page, "button[value=save]", {"input[name=per_kwh]": "19.50", "input[name=valid_from]": later})
        assert "₱18.00 per kWh" in await page.inner_text("#in-force")
        assert "to come" in await page.inner_text("table.history")
        await page.screenshot(path=shot("web-tariff-history"), full_page=True)
        await page.goto(base + "/settings")
        assert "tariff" in await page.locator("table.audit tbody tr").first.inner_text()

        viewer = await browser.new_page()
        await login(viewer, base, "look")
        await viewer.goto(base + "/tariff")
        assert "₱18.00 per kWh" in await viewer.inner_text("#in-force")
        assert await viewer.locator("#tariff-form").count() == 0, "a viewer reads, does not edit"
        refused = await viewer.request.post(base + "/tariff", form={"per_kwh": "1.00"})
        assert refused.status == 403

    # the next session is billed at the new price: 2.000 kWh at ₱18.00 and the ₱10.00 fee
    ch = await Charger(edge.url, "CP-T1", "1.6").connect()
    await ch.boot16()
    start = await ch.start16("04C0FFEE", meter_start=1000)
    await ch.stop16(start.transaction_id, 3000, id_tag="04C0FFEE")
    await ch.close()
    assert edge.query("SELECT captured_minor FROM transactions") == [(4600,)]

    status, out = await call(edge, "GET", "/api/tariff")
    assert status == 200 and out["in_force"]["tariff"]["per_kwh"] == "18.00" and out["currency"] == "PHP"
    assert [t["tariff"]["per_kwh"] for t in out["upcoming"]] == ["19.50"]
    status, out = await call(edge, "POST", "/api/tariff", {"tariff": {"per_kwh": "12.00"},
                                                           "valid_from": "2020-01-01T00:00:00+08:00"})
    assert status == 422 and "past" in out["detail"]
    status, out = await call(edge, "POST", "/api/tariff", {"tariff": {"per_kwh": "12", "bands": [
        {"start": "18:00", "end": "22:00", "per_kwh": "20"}, {"start": "21:00", "end": "23:00", "per_kwh": "21"}]}})
    assert status == 422 and "overlaps" in out["detail"]
    assert edge.query("SELECT COUNT(*) FROM tariffs") == [(2,)], "refused tariffs are not kept"
