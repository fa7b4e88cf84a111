"""Changing who is who, in a real browser: an operator edits a user's contact (a wrong phone is refused and
changes nothing), moves a card from one user to another (and the charger then bills the new holder), enrols a
new card straight onto an existing user, and assigns a card from the card list; a viewer can do none of it.
Every change is in the audit."""

from __future__ import annotations

import asyncio
import subprocess

from browser import chromium, shot, submit
from conftest import SITEKEEPER
from ocpp.v16 import call as call16
from peers import Charger
from test_web_login import admin
from test_web_users import login, seed


async def test_an_operator_edits_a_contact_and_moves_cards_between_users(edge_factory):
    edge = edge_factory({"site": {"timezone": "Asia/Manila"}, "billing": {"min_start_balance": "50.00"}})
    juan = seed(edge)  # Juan Dela Cruz 04C0FFEE with ₱500.00; Ana Reyes 04BEEF01 with nothing
    ana = edge.query("SELECT account_id FROM cards WHERE uid = '04BEEF01'")[0][0]
    for name, role in (("att", "operator"), ("look", "viewer")):
        made = await asyncio.to_thread(admin, edge, "add", name, "--role", role, password="correct horse 1\n")
        assert made.returncode == 0, made.stderr
    ch = await Charger(edge.url, "CP-M1", "1.6").connect()
    await ch.boot16()
    refused = await ch.call(call16.Authorize(id_tag="04BEEF01"))
    assert refused.id_tag_info["status"] != "Accepted", "Ana has no money"
    base = f"http://127.0.0.1:{edge.web_port}"
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 1000})
        await login(page, base, "att")
        await page.goto(f"{base}/users/{juan}")
        await submit(page, "#contact button", {"#contact input[name=phone]": "call me maybe"})
        assert "not a phone number" in await page.inner_text("main")
        assert edge.query("SELECT phone FROM accounts WHERE id = ?", (juan,)) == [("+639171234567",)]
        await page.goto(f"{base}/users/{juan}")
        await submit(page, "#contact button", {"#contact input[name=phone]": "+63 917 000 1111",
                                               "#contact input[name=email]": ""})
        main = await page.inner_text("main")
        assert "Contact saved." in main and "+63 917 000 1111" in main, main
        assert edge.query("SELECT phone, email FROM accounts WHERE id = ?", (juan,)) == [("+63 917 000 1111", None)]
        # Ana's card given to Juan: it now spends Juan's balance
        await submit(page, "#move-card button", {"#move-card input[name=uid]": "04:be:ef:01"})
        assert "04BEEF01" in await page.inner_text("main")
        assert edge.query("SELECT account_id FROM cards WHERE uid = '04BEEF01'") == [(juan,)]
        # a new card enrolled for Juan himself: no new user
        async with page.expect_navigation():
            await page.click(f"a[href='/cards/new?account={juan}']")
        assert "For Juan Dela Cruz" in await page.inner_text("main")
        await submit(page, "#enrol button.primary", {"#uid": "04ABCDEF"})
        assert page.url.endswith(f"/users/{juan}") and "04ABCDEF" in await page.inner_text("main")
        await page.screenshot(path=shot("web-user-edit"), full_page=True)
        assert edge.query("SELECT COUNT(*) FROM accounts") == [(2,)]
        # and from the card list: the new card goes to Ana
        await page.goto(base + "/cards")
        row = page.locator("tr", has_text="04ABCDEF")
        await row.locator("input[name=account]").fill(f"{ana} Ana Reyes")
        async with page.expect_navigation():
            await row.locator("form.assign button").click()
        assert edge.query("SELECT account_id FROM cards WHERE uid = '04ABCDEF'") == [(ana,)]
        await page.screenshot(path=shot("web-cards-assign"), full_page=True)
        # a card that is not there: a page that says so
        refused_page = await page.request.post(base + "/cards/assign", headers={"Accept": "text/html"},
                                               form={"csrf": await page.locator("input[name=csrf]").first
                                                     .get_attribute("value"), "uid": "04000000", "account": str(ana)})
        assert refused_page.status == 422 and "unknown card 04000000" in await refused_page.text()
        assert "<html" in await refused_page.text(), "a page, not bare JSON"

        viewer = await browser.new_page()
        await login(viewer, base, "look")
        await viewer.goto(f"{base}/users/{juan}")
        assert await viewer.locator("#contact").count() == 0 and await viewer.locator("#move-card").count() == 0
        forbidden = await viewer.request.post(f"{base}/users/{juan}/contact", form={"name": "X"})
        assert forbidden.status == 403
    authorised = await ch.call(call16.Authorize(id_tag="04BEEF01"))
    assert authorised.id_tag_info["status"] == "Accepted", "the card now spends Juan's ₱500.00"
    await ch.close()
    audit = [w for (w,) in edge.query("SELECT what FROM changes ORDER BY id")]
    assert audit == ["user.contact", "card.assign", "card.add", "card.assign"], audit


async def test_the_owner_makes_an_attendants_cards_master_passes(edge_factory):
    """Owners only (a master pass stops anyone's session): the user page says what a master pass is and turns
    it on; from then the attendant's card is refused a start and stops a session at a 1.6 charger by taking its
    group. An operator sees the state and no button, and a forged post is refused. The change is audited, and
    the CLI turns it off again."""
    edge = edge_factory({"site": {"timezone": "Asia/Manila"}})
    juan = seed(edge)
    ana = edge.query("SELECT account_id FROM cards WHERE uid = '04BEEF01'")[0][0]
    for name, role in (("boss", "owner"), ("att", "operator")):
        made = await asyncio.to_thread(admin, edge, "add", name, "--role", role, password="correct horse 1\n")
        assert made.returncode == 0, made.stderr
    base = f"http://127.0.0.1:{edge.web_port}"
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 1000})
        await login(page, base, "boss")
        await page.goto(f"{base}/users/{ana}")
        assert "Master pass: no" in await page.inner_text("#master-pass")
        await submit(page, "#master-pass button", {})
        assert "Master pass changed." in await page.inner_text("main")
        assert "Master pass: yes" in await page.inner_text("#master-pass")
        await page.screenshot(path=shot("web-user-master-pass"), full_page=True)
        operator = await browser.new_page()
        await login(operator, base, "att")
        await operator.goto(f"{base}/users/{ana}")
        assert "Master pass: yes" in await operator.inner_text("#master-pass")
        assert await operator.locator("#master-pass button").count() == 0
        csrf = await operator.locator("input[name=csrf]").first.get_attribute("value")
        forged = await operator.request.post(f"{base}/users/{juan}/master-pass", form={"csrf": csrf, "on": "yes"})
        assert forged.status == 403
    assert edge.query("SELECT id, master_pass FROM accounts ORDER BY id") == [(juan, 0), (ana, 1)]
    ch = await Charger(edge.url, "CP-MP", "1.6").connect()
    await ch.boot16()
    assert (await ch.call(call16.Authorize(id_tag="04BEEF01"))).id_tag_info["status"] == "Invalid", "nothing to stop"
    started = await ch.start16("04C0FFEE")
    assert started.id_tag_info["status"] == "Accepted"
    taken = (await ch.call(call16.Authorize(id_tag="04BEEF01"))).id_tag_info
    assert taken["status"] == "Accepted" and taken["parent_id_tag"] == started.id_tag_info["parent_id_tag"]
    assert (await ch.start16("04BEEF01", connector_id=2)).id_tag_info["status"] == "Invalid"
    await ch.stop16(started.transaction_id, 5000, id_tag="04BEEF01")
    await ch.close()
    off = await asyncio.to_thread(subprocess.run, [SITEKEEPER, "--config", str(edge.config_path), "users", "update",
                                                    str(ana), "--master-pass", "no"], capture_output=True, text=True)
    assert off.returncode == 0 and "master pass: yes → no" in off.stdout, off.stderr
    assert [w for (w,) in edge.query("SELECT what FROM changes ORDER BY id")] == ["user.master_pass"]
