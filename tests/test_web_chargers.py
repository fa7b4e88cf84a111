"""The owner's charger pages in a real browser (Playwright on Debian's Chromium): the charger list, and a
charger's day-by-day table whose every day equals `sitekeeper report daily --date D` for it (sessions,
charging hours, kWh, fees in pesos), with its charts, connectors and last sessions (card ids masked); a range
that cannot be shown says why. Screenshots in test-artifacts/."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from browser import chromium, shot
from conftest import SITEKEEPER
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from peers import Charger
from test_taps import add_card
from test_web_login import admin

MANILA = ZoneInfo("Asia/Manila")


class Triggered16(CP16):
    """A 1.6 charger that boots again when the CSMS triggers a BootNotification, keeping the answers."""

    boots: list

    @on("TriggerMessage")
    def trigger(self, requested_message, **kw):
        return result16.TriggerMessage(status="Accepted")

    @after("TriggerMessage")
    def boot_again(self, requested_message, **kw):
        if requested_message == "BootNotification":
            asyncio.get_running_loop().create_task(self._boot())

    async def _boot(self) -> None:
        self.boots.append(await self.call(call16.BootNotification(charge_point_model="test",
                                                                  charge_point_vendor="tests")))


def utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_a_chargers_day_by_day_table_is_the_daily_report(edge_factory):
    edge = edge_factory({"site": {"timezone": "Asia/Manila", "max_current_a": 32}})
    add_card(edge, "04AABB01", "commercial", topup=500_000)
    today = datetime.now(MANILA).replace(hour=0, minute=0, second=0, microsecond=0)
    ch = await Charger(edge.url, "CP-D1", "1.6").connect()
    await ch.boot16()
    await ch.status16("Available")
    # three days ago 10:00-11:30 (5 kWh); yesterday 23:00 to today 01:00 (charging on both days, ended today)
    for start, hours, wh in ((today - timedelta(days=3, hours=-10), 1.5, 5000),
                             (today - timedelta(hours=1), 2.0, 12_000)):
        began = await ch.call(call16.StartTransaction(connector_id=1, id_tag="04AABB01", meter_start=1000,
                                                      timestamp=utc(start)))
        await ch.call(call16.StopTransaction(transaction_id=began.transaction_id, meter_stop=1000 + wh,
                                             timestamp=utc(start + timedelta(hours=hours)), reason="Local"))
    made = await asyncio.to_thread(admin, edge, "add", "maria", "--role", "viewer", password="correct horse 1\n")
    assert made.returncode == 0, made.stderr
    base = f"http://127.0.0.1:{edge.web_port}"
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(base + "/chargers")
        await page.fill("input[name=name]", "maria")
        await page.fill("input[name=password]", "correct horse 1")
        async with page.expect_navigation():
            await page.click("button.primary")
        assert page.url == base + "/chargers"
        assert "CP-D1" in await page.inner_text("main") and "1: Available" in await page.inner_text("main")
        await page.screenshot(path=shot("web-chargers"), full_page=True)
        async with page.expect_navigation():
            await page.click("text=CP-D1")
        assert page.url == base + "/chargers/CP-D1"
        assert await page.inner_text("#security") == \
            "Security profile 0 · the site's supply: 32 A, shared among all sessions", "what protects it, what feeds it"
        rows = {}
        for tr in await page.locator("table.daily tbody tr").all():
            cells = [c.strip() for c in await tr.locator("td").evaluate_all("tds => tds.map(td => td.textContent)")]
            rows[cells[0]] = cells[1:]
        assert len(rows) == 30, "the last 30 days unless asked"
        for day in (today - timedelta(days=3), today - timedelta(days=1), today):
            d = day.date().isoformat()
            report = json.loads(subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "report", "daily",
                                                "--date", d, "--json"], capture_output=True, text=True,
                                               timeout=60).stdout)
            mine = next(r for r in report["chargers"] if r["charger_id"] == "CP-D1")
            assert rows[d] == [f"{mine['charging_hours']:.2f}", str(mine["sessions"]),
                               f"{mine['energy_wh'] / 1000:.2f}", f"₱{mine['fees_minor'] / 100:.2f}"], d
        assert rows[(today - timedelta(days=3)).date().isoformat()][:3] == ["1.50", "1", "5.00"]
        assert rows[(today - timedelta(days=1)).date().isoformat()][:3] == ["1.00", "0", "0.00"], \
            "charging before midnight counts on that day; the session on the day it ended"
        assert rows[today.date().isoformat()][:3] == ["1.00", "1", "12.00"]
        assert await page.locator("svg.chart rect").count() == 60, "a bar a day, for kWh and for fees"
        assert "****BB01" in await page.inner_text("main") and "04AABB01" not in await page.content()
        await page.screenshot(path=shot("web-charger-days"), full_page=True)
        # a range of the owner's choice, and one that cannot be shown
        first = (today - timedelta(days=3)).date().isoformat()
        await page.goto(f"{base}/chargers/CP-D1?from={first}&to={today.date().isoformat()}")
        assert await page.locator("table.daily tbody tr").count() == 4
        response = await page.goto(f"{base}/chargers/CP-D1?from=2026-12-31&to=2026-01-01")
        assert response.status == 422 and "before it starts" in await page.inner_text("main")
        assert (await page.goto(f"{base}/chargers/NOPE")).status == 404
        # the charger's journal: its frames, card ids masked, filtered by action
        await page.goto(f"{base}/chargers/CP-D1?action=StartTransaction")
        frames = await page.locator("table.journal tbody tr").all_inner_texts()
        assert len(frames) == 2 and all("StartTransaction" in f for f in frames)
        assert "****BB01" in frames[0] and "04AABB01" not in await page.content()
    await ch.close()


async def test_operations_from_a_chargers_page_show_its_real_answer(edge_factory):
    from test_operations import Operated16, connected
    from test_web_users import login

    edge = edge_factory({})
    for name, role in (("att", "operator"), ("wall", "viewer")):
        made = await asyncio.to_thread(admin, edge, "add", name, "--role", role, password="correct horse 1\n")
        assert made.returncode == 0, made.stderr
    ch = await connected(edge, "CP-OP", "1.6", Operated16)
    base = f"http://127.0.0.1:{edge.web_port}"
    try:
        async with chromium() as browser:
            page = await browser.new_page(viewport={"width": 1280, "height": 1000})
            await login(page, base, "att")
            await page.goto(base + "/chargers/CP-OP")
            await page.fill("#operations input[name=connector]", "2")
            async with page.expect_navigation():
                await page.click("#operations button[value=unlock]")
            row = page.locator("table.done-ops tbody tr").first
            text = await row.inner_text()
            assert "web:att" in text and "UnlockConnector" in text and "answered" in text and "Unlocked" in text
            assert ch.cp.asked[-1] == ("UnlockConnector", 2), "the charger was asked, for connector 2"
            async with page.expect_navigation():
                await page.click("#operations button[value=clear-cache]")
            text = await page.locator("table.done-ops tbody tr").first.inner_text()
            assert "ClearCache" in text and "callerror" in text and "keeps no cache" in text, "its own refusal"
            await page.screenshot(path=shot("web-charger-operations"), full_page=True)
            viewer = await browser.new_page()
            await login(viewer, base, "wall")
            await viewer.goto(base + "/chargers/CP-OP")
            assert await viewer.locator("#operations button").count() == 0
            csrf = await viewer.get_attribute("input[name=csrf]", "value")
            refused = await viewer.request.post(base + "/chargers/CP-OP/operate", form={"csrf": csrf, "op": "reset"})
            assert refused.status == 403 and ch.cp.asked[-1] == ("UnlockConnector", 2)
    finally:
        await ch.close()


async def test_the_owner_approves_a_new_charger_on_the_chargers_page(edge_factory):
    """ocpp.new_chargers = "pending": a new charger waits in its own list with an Approve button (owners only);
    approving asks it to boot again, and it charges."""
    from test_web_users import login

    edge = edge_factory({"ocpp": {"new_chargers": "pending"}})
    for name, role in (("owner1", "owner"), ("att", "operator")):
        made = await asyncio.to_thread(admin, edge, "add", name, "--role", role, password="correct horse 1\n")
        assert made.returncode == 0, made.stderr
    ch = await Charger(edge.url, "CP-NEW", "1.6", cp_class=Triggered16).connect()
    ch.cp.boots = []
    base = f"http://127.0.0.1:{edge.web_port}"
    try:
        assert (await ch.boot16()).status == "Pending"
        async with chromium() as browser:
            att = await browser.new_page()
            await login(att, base, "att")
            await att.goto(base + "/chargers")
            assert "CP-NEW" in await att.inner_text("#waiting") and await att.locator("#waiting button").count() == 0
            csrf = await att.get_attribute("input[name=csrf]", "value") if await att.locator(
                "input[name=csrf]").count() else ""
            refused = await att.request.post(base + "/chargers/CP-NEW/approve", form={"csrf": csrf or "x"})
            assert refused.status == 403, "an operator may not approve"
            page = await browser.new_page(viewport={"width": 1100, "height": 700})
            await login(page, base, "owner1")
            await page.goto(base + "/chargers")
            waiting = await page.inner_text("#waiting")
            assert "Waiting for your approval" in waiting and "CP-NEW" in waiting and "tests test" in waiting
            await page.screenshot(path=shot("web-chargers-waiting"), full_page=True)
            async with page.expect_navigation():
                await page.click("#waiting button")
            assert "CP-NEW is approved" in await page.inner_text("main")
            assert await page.locator("#waiting").count() == 0 and "CP-NEW" in await page.inner_text("main table")
            await page.screenshot(path=shot("web-chargers-approved"), full_page=True)
        assert ch.cp.boots and ch.cp.boots[0].status == "Accepted", "asked to boot again, and accepted"
        await ch.status16("Available")
        assert edge.query("SELECT who FROM changes WHERE what = 'charger.approve'") == [("web:owner1",)]
    finally:
        await ch.close()
