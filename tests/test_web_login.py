"""The owner backend's door, in a real browser (Playwright on Debian's Chromium) against a real edge: the first
page of a new site says how to make the first account; no page answers without a login; wrong passwords lock
the name out; a viewer sees the dashboard whose figures are those of `sitekeeper report daily`; Filipino on a
click; a POST without the CSRF token changes nothing; cookies are HttpOnly and SameSite. Screenshots of each
page are saved in test-artifacts/."""

from __future__ import annotations

import asyncio
import json
import subprocess

from browser import chromium, shot
from conftest import SITEKEEPER
from peers import Charger
from test_taps import add_card

from edge import i18n


def admin(edge, *words: str, password: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "admin", *words], input=password,
                          capture_output=True, text=True, timeout=60)


def test_both_catalogs_have_every_text():
    en, fil = i18n.catalog("en"), i18n.catalog("fil")
    assert set(en) == set(fil), f"missing in fil: {set(en) - set(fil)}; in en: {set(fil) - set(en)}"
    assert all(fil[k] for k in fil)


async def test_login_lockout_dashboard_language_and_csrf(edge_factory):
    edge = edge_factory({"site": {"name": "Depot <7>", "timezone": "Asia/Manila"}})
    base = f"http://127.0.0.1:{edge.web_port}"
    add_card(edge, "04AABBCC", "commercial", topup=100_000)
    ch = await Charger(edge.url, "CP-W1", "1.6").connect()
    await ch.boot16()
    start = await ch.start16("04AABBCC")
    await ch.stop16(start.transaction_id, 1000 + 7250, id_tag="04AABBCC")
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 390, "height": 800})  # a phone
        await page.goto(base + "/")
        assert "admin add" in await page.inner_text("main") and "Depot <7>" in await page.inner_text("header")
        await page.screenshot(path=shot("web-first-run"), full_page=True)
        refused = await asyncio.to_thread(admin, edge, "add", "boss", "--role", "owner", password="short\n")
        assert refused.returncode == 2 and "at least 10" in refused.stderr, "a weak password is refused"
        for name, role in (("boss", "owner"), ("wall", "viewer")):
            made = await asyncio.to_thread(admin, edge, "add", name, "--role", role, password="correct horse 1\n")
            assert made.returncode == 0, made.stderr
        # no page without a login
        await page.goto(base + "/")
        assert page.url == base + "/login?next=/"
        await page.screenshot(path=shot("web-login"), full_page=True)
        # four wrong passwords are wrong; the fifth locks the name, and then even the right one is refused
        for i in range(5):
            await page.fill("input[name=name]", "boss")
            await page.fill("input[name=password]", f"wrong password {i}")
            async with page.expect_navigation():
                await page.click("button.primary")
            text = await page.inner_text("main")
            assert ("do not match" in text) if i < 4 else ("locked until" in text), (i, text)
        await page.screenshot(path=shot("web-login-locked"), full_page=True)
        await page.fill("input[name=password]", "correct horse 1")
        async with page.expect_navigation():
            await page.click("button.primary")
        assert "locked until" in await page.inner_text("main") and "/login" in page.url
        assert "failed login for 'boss'" in edge.log() and "now locked" in edge.log()
        # another account logs in; the dashboard's figures are the daily report's
        await page.fill("input[name=name]", "wall")
        await page.fill("input[name=password]", "correct horse 1")
        async with page.expect_navigation():
            await page.click("button.primary")
        assert page.url == base + "/"
        report = json.loads(subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "report", "daily",
                                            "--json"], capture_output=True, text=True, timeout=60).stdout)
        row = page.locator("tbody tr", has_text="CP-W1")
        cells = [c.strip() for c in await row.locator("td").evaluate_all("tds => tds.map(td => td.textContent)")]
        mine = next(r for r in report["chargers"] if r["charger_id"] == "CP-W1")
        assert cells[0] == "CP-W1" and cells[4] == str(mine["sessions"]) == "1"
        assert cells[6] == f"{mine['energy_wh'] / 1000:.2f}" == "7.25"
        assert cells[7] == f"₱{mine['fees_minor'] / 100:.2f}" and mine["fees_minor"] > 0, "in pesos, with ₱"
        assert "wall (viewer)" in await page.inner_text("header")
        await page.screenshot(path=shot("web-dashboard"), full_page=True)
        cookies = {c["name"]: c for c in await page.context.cookies()}
        assert cookies["sk_session"]["httpOnly"] and cookies["sk_session"]["sameSite"] == "Strict"
        # Filipino, on a click
        async with page.expect_navigation():
            await page.select_option("select[name=lang]", "fil")
        assert page.url == base + "/"
        assert "Mag-log out" in await page.inner_text("header") and "Ngayong araw" in await page.inner_text("main")
        assert await page.locator("tbody td").nth(4).get_attribute("data-label") == "Mga session", \
            "each figure with its column's name on a phone"
        await page.screenshot(path=shot("web-dashboard-fil"), full_page=True)
        # a POST without the session's CSRF token changes nothing (the session lives on)
        forged = await page.request.post(base + "/logout", form={"csrf": "forged"})
        assert forged.status == 403
        await page.goto(base + "/")
        assert page.url == base + "/"
        async with page.expect_navigation():
            await page.click("form.logout button")
        assert "/login" in page.url
        await page.goto(base + "/")
        assert "/login" in page.url, "logged out for real"
        # and a login form posted from elsewhere (no login CSRF cookie) is refused
        other = await browser.new_context()
        response = await other.request.post(base + "/login", form={"name": "wall", "password": "correct horse 1",
                                                                 "csrf": "x"})
        assert response.status == 403
        await other.close()
    await ch.close()
