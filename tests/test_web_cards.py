"""The owner's card pages in a real browser (Playwright on Debian's Chromium): enrol a card by tapping it on
the kiosk reader (the form fills itself), block it and see a charger refuse it, unblock it; every change in
the audit with who made it; a viewer sees card ids masked and cannot change anything. Screenshots in
test-artifacts/."""

from __future__ import annotations

import asyncio
import json

from browser import chromium, shot
from ocpp.v16 import call as call16
from peers import Charger
from test_taps import tap
from test_web_login import admin
from test_web_users import login


async def test_enrol_by_tap_block_and_the_charger_refuses(edge_factory):
    edge = edge_factory({"site": {"accept_unknown_cards": False}})
    for name, role in (("att", "operator"), ("wall", "viewer")):
        made = await asyncio.to_thread(admin, edge, "add", name, "--role", role, password="correct horse 1\n")
        assert made.returncode == 0, made.stderr
    base = f"http://127.0.0.1:{edge.web_port}"
    ch = await Charger(edge.url, "CP-K1", "1.6").connect()
    await ch.boot16()
    assert (await ch.call(call16.Authorize(id_tag="04E1E2E3"))).id_tag_info["status"] == "Invalid", "unknown yet"
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 900, "height": 900})
        await login(page, base, "att")
        await page.goto(base + "/cards/new")
        assert "Tap the card" in await page.inner_text("main")
        out = await tap(edge, "04E1E2E3", "kiosk")  # a card the site does not know, on the kiosk's reader
        assert out["result"] == "unknown"
        for _ in range(100):  # the page asks every second (the pages' CSP keeps the test from evaluating script)
            if await page.input_value("#uid") == "04E1E2E3":
                break
            await asyncio.sleep(0.1)
        assert await page.input_value("#uid") == "04E1E2E3", "the form filled itself from the tap"
        assert "04E1E2E3 was tapped" in await page.inner_text("#tap-hint")
        await page.fill("input[name=name]", "Liza Soberano")
        await page.fill("input[name=phone]", "+639171112222")
        await page.select_option("select[name=kind]", "personal")  # free: only its status decides
        await page.screenshot(path=shot("web-card-enrol"), full_page=True)
        async with page.expect_navigation():
            await page.click("button.primary")
        assert "/users/" in page.url and "Liza Soberano" in await page.inner_text("main")
        # block it: the charger is refused at once
        await page.goto(base + "/cards")
        row = page.locator("tbody tr", has_text="04E1E2E3")
        assert "active" in await row.inner_text()
        async with page.expect_navigation():
            await row.locator("button[value=blocked]").click()
        assert "blocked" in await page.locator("tbody tr", has_text="04E1E2E3").inner_text()
        await page.screenshot(path=shot("web-cards"), full_page=True)
        answer = await ch.call(call16.Authorize(id_tag="04E1E2E3"))
        assert answer.id_tag_info["status"] == "Blocked", "a card blocked on the page is refused by the charger"
        assert edge.query("SELECT status FROM cards WHERE uid = '04E1E2E3'") == [("blocked",)]
        async with page.expect_navigation():
            await page.locator("tbody tr", has_text="04E1E2E3").locator("button[value=active]").click()
        answer = await ch.call(call16.Authorize(id_tag="04E1E2E3"))
        assert answer.id_tag_info["status"] == "Accepted"
        audit = edge.query("SELECT who, what, subject, before, after FROM changes ORDER BY id")
        assert [(w, what, s) for w, what, s, _, _ in audit] == [
            ("att", "card.add", "card 04E1E2E3"), ("att", "card.status", "card 04E1E2E3"),
            ("att", "card.status", "card 04E1E2E3")]
        assert json.loads(audit[1][3]) == {"status": "active"} and json.loads(audit[1][4]) == {"status": "blocked"}
        # a viewer: masked, no buttons, no enrolment
        viewer = await browser.new_page()
        await login(viewer, base, "wall")
        await viewer.goto(base + "/cards")
        text = await viewer.inner_text("main")
        assert "04E1E2E3" not in text and "****E2E3" in text and await viewer.locator("tbody button").count() == 0
        csrf = await viewer.get_attribute("input[name=csrf]", "value") or "x"  # the viewer's own session token
        assert (await viewer.goto(base + "/cards/new")).status == 403
        refused = await viewer.request.post(base + "/cards/04E1E2E3/status", form={"csrf": csrf, "status": "lost"})
        assert refused.status == 403
        assert edge.query("SELECT status FROM cards WHERE uid = '04E1E2E3'") == [("active",)]
    await ch.close()


async def test_a_card_with_a_validity_end_then_expired_from_the_list(edge_factory):
    edge = edge_factory({"site": {"accept_unknown_cards": False, "timezone": "Asia/Manila"}})
    made = await asyncio.to_thread(admin, edge, "add", "att", "--role", "operator", password="correct horse 1\n")
    assert made.returncode == 0, made.stderr
    base = f"http://127.0.0.1:{edge.web_port}"
    ch = await Charger(edge.url, "CP-K2", "1.6").connect()
    await ch.boot16()
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1100, "height": 900})
        await login(page, base, "att")
        await page.goto(base + "/cards/new")
        await page.fill("#uid", "04E1E2E5")
        await page.fill("input[name=name]", "Night Guard")
        await page.select_option("select[name=kind]", "personal")
        await page.fill("input[name=expires]", "2099-06-30")
        async with page.expect_navigation():
            await page.click("button.primary")
        assert edge.query("SELECT expires FROM cards WHERE uid = '04E1E2E5'") == [("2099-06-30T15:59:59Z",)]
        answer = await ch.call(call16.Authorize(id_tag="04E1E2E5"))
        (account,), = edge.query("SELECT account_id FROM cards WHERE uid = '04E1E2E5'")
        assert answer.id_tag_info == {"status": "Accepted", "expiry_date": "2099-06-30T15:59:59Z",
                                      "parent_id_tag": f"SK-A{account}"}
        await page.goto(base + "/cards")
        row = page.locator("tbody tr", has_text="04E1E2E5")
        assert "valid until 2099-06-30 23:59" in await row.inner_text()
        await row.locator("input[name=expires]").fill("2020-01-01")
        async with page.expect_navigation():
            await row.locator("form.expires button").click()
        row = page.locator("tbody tr", has_text="04E1E2E5")
        assert "EXPIRED since 2020-01-01 23:59" in await row.inner_text(), "in words, not by colour alone"
        await page.screenshot(path=shot("web-cards-expired"), full_page=True)
        answer = await ch.call(call16.Authorize(id_tag="04E1E2E5"))
        assert answer.id_tag_info["status"] == "Expired"
        bad = await page.request.post(base + "/cards/04E1E2E5/expires", form={
            "csrf": await page.get_attribute("input[name=csrf]", "value") or "", "expires": "soon"})
        assert bad.status == 422 and "not a date" in await bad.text()
        forged = await page.request.post(base + "/cards/04E1E2E5/expires", form={"csrf": "forged", "expires": ""})
        assert forged.status in (400, 403)
        assert edge.query("SELECT expires FROM cards WHERE uid = '04E1E2E5'") == [("2020-01-01T15:59:59Z",)]
        audit = edge.query("SELECT what, after FROM changes WHERE what = 'card.expires'")
        assert audit == [("card.expires", '{"expires": "2020-01-01T15:59:59Z"}')]
    await ch.close()
