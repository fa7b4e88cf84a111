"""The owner's user pages in a real browser (Playwright on Debian's Chromium): search by phone, the user's
contact, balance, consumption records and ledger; a top-up through the page that tops up once though the form
is posted twice; a viewer who cannot top up and sees card ids masked; the CSV export. Screenshots in
test-artifacts/."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import subprocess

from browser import chromium, shot
from conftest import SITEKEEPER
from peers import Charger
from test_web_login import admin

from edge.billing import cards, ledger
from edge.store.sqlite import Store


def seed(edge) -> int:
    store = Store.open(edge.db_path)
    try:
        def fn(conn):
            card = cards.add_card(conn, "04C0FFEE", "commercial", name="Juan Dela Cruz", phone="+639171234567",
                                  email="juan@example.ph")
            ledger.post(conn, card.account_id, "topup", 50_000, key="seed-juan", currency="PHP")
            cards.add_card(conn, "04BEEF01", "commercial", name="Ana Reyes", phone="+639189876543")
            return card.account_id
        return store.write_now(fn)
    finally:
        store.close()


async def login(page, base: str, name: str) -> None:
    await page.goto(base + "/login")
    await page.fill("input[name=name]", name)
    await page.fill("input[name=password]", "correct horse 1")
    async with page.expect_navigation():  # the redirect after login, before the test goes elsewhere
        await page.click("button.primary")


async def test_find_a_user_see_the_records_and_top_up_once(edge_factory):
    edge = edge_factory({"site": {"timezone": "Asia/Manila"}})
    juan = seed(edge)
    ch = await Charger(edge.url, "CP-U1", "1.6").connect()
    await ch.boot16()
    start = await ch.start16("04C0FFEE")
    await ch.stop16(start.transaction_id, 1000 + 5000, id_tag="04C0FFEE")
    await ch.close()
    for name, role in (("att", "operator"), ("wall", "viewer")):
        made = await asyncio.to_thread(admin, edge, "add", name, "--role", role, password="correct horse 1\n")
        assert made.returncode == 0, made.stderr
    base = f"http://127.0.0.1:{edge.web_port}"

    def balance() -> int:
        out = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "cards", "show", "04C0FFEE", "--json"],
                             capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)["balance_minor"]

    before = await asyncio.to_thread(balance)
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await login(page, base, "att")
        await page.goto(base + "/users?q=9171234")
        names = await page.locator("tbody tr td:first-child").all_inner_texts()
        assert names == ["Juan Dela Cruz"], "found by phone"
        async with page.expect_navigation():
            await page.click("text=Juan Dela Cruz")
        assert page.url == f"{base}/users/{juan}"
        main = await page.inner_text("main")
        assert "+639171234567" in main and "juan@example.ph" in main and "04C0FFEE" in main, "an operator sees the card"
        assert "5.00" in main and "CP-U1" in main, "the session is in the records"
        await page.screenshot(path=shot("web-user"), full_page=True)
        # the top-up form posted twice (a double click, a resubmitted page) tops up once
        form = {"csrf": await page.get_attribute("input[name=csrf]", "value"),
                "form_token": await page.get_attribute("input[name=form_token]", "value"),
                "amount": "250.00", "note": "cash at the counter"}
        first = await page.request.post(f"{base}/users/{juan}/topup", form=form, max_redirects=0)
        second = await page.request.post(f"{base}/users/{juan}/topup", form=form, max_redirects=0)
        assert first.status == second.status == 303
        assert first.headers["location"] == second.headers["location"], "the second is the same top-up"
        assert await asyncio.to_thread(balance) == before + 25_000, "topped up once"
        # and through the page itself, a fresh form
        await page.goto(f"{base}/users/{juan}")
        await page.fill("input[name=amount]", "100")
        async with page.expect_navigation():
            await page.click("form[action$=topup] button")
        assert "Topped up ₱100.00" in await page.inner_text("main")
        assert await asyncio.to_thread(balance) == before + 35_000
        ledger_notes = await page.locator("table.ledger tbody tr").all_inner_texts()
        assert sum("cash at the counter (by att, web)" in row for row in ledger_notes) == 1
        await page.screenshot(path=shot("web-user-topped"), full_page=True)
        bad = await page.request.post(f"{base}/users/{juan}/topup", form={**form, "csrf": "x", "form_token": "y" * 16})
        assert bad.status == 403, "no CSRF token, no top-up"
        # CSV of the records
        got = await page.request.get(f"{base}/users/{juan}.csv")
        rows = list(csv.reader(io.StringIO(await got.text())))
        assert rows[0][2] == "charger" and rows[1][2] == "CP-U1" and rows[1][4] == "5.000"
        # a viewer: no form, a masked card, and a forged top-up is refused
        viewer = await browser.new_page()
        await login(viewer, base, "wall")
        await viewer.goto(f"{base}/users/{juan}")
        main = await viewer.inner_text("main")
        assert "04C0FFEE" not in main and "****FFEE" in main and await viewer.locator("input[name=amount]").count() == 0
        csrf = await viewer.get_attribute("input[name=csrf]", "value")
        refused = await viewer.request.post(f"{base}/users/{juan}/topup",
                                            form={"csrf": csrf, "form_token": "z" * 16, "amount": "999"})
        assert refused.status == 403 and re.search("viewer account may not", await refused.text())
        assert await asyncio.to_thread(balance) == before + 35_000
        await viewer.screenshot(path=shot("web-user-viewer"), full_page=True)
