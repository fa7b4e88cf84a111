"""The owner's settings page in a real browser: accounts and API tokens (never a secret), the audit of changes
made on the pages, and a backup download that is a whole SQLite database; owners only."""

from __future__ import annotations

import asyncio
import sqlite3

from browser import chromium, shot
from test_web_login import admin
from test_web_users import login, seed


async def test_settings_show_accounts_tokens_changes_and_give_a_backup(edge_factory, tmp_path):
    edge = edge_factory({})
    juan = seed(edge)
    for name, role in (("boss", "owner"), ("att", "operator")):
        made = await asyncio.to_thread(admin, edge, "add", name, "--role", role, password="correct horse 1\n")
        assert made.returncode == 0, made.stderr
    base = f"http://127.0.0.1:{edge.web_port}"
    async with chromium() as browser:
        att = await browser.new_page()
        await login(att, base, "att")
        await att.goto(f"{base}/users/{juan}")
        await att.fill("input[name=amount]", "75.50")
        async with att.expect_navigation():  # the top-up's redirect, before going elsewhere
            await att.click("form[action$=topup] button")
        assert (await att.goto(base + "/settings")).status == 403, "an operator may not see the settings"
        assert await att.locator("a[href='/settings']").count() == 0
        boss = await browser.new_page(viewport={"width": 1280, "height": 900})
        await login(boss, base, "boss")
        await boss.goto(base + "/settings")
        text = await boss.inner_text("main")
        assert "boss" in text and "att" in text and "local" in text, "accounts, and the edge's own token"
        assert "sk_" not in await boss.content() and "scrypt" not in await boss.content(), "no secret on the page"
        row = boss.locator("table.audit tbody tr").first
        cells = await row.locator("td").all_inner_texts()
        assert cells[1:4] == ["att", "topup", f"account {juan}"]
        assert '"balance": "₱500.00"' in cells[4] and '"balance": "₱575.50"' in cells[5], "in pesos"
        await boss.screenshot(path=shot("web-settings"), full_page=True)
        async with boss.expect_download() as info:
            await boss.click("a[href='/settings/backup']")
        saved = tmp_path / "copy.db"
        await (await info.value).save_as(saved)
        copy = sqlite3.connect(saved)
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert copy.execute("SELECT name FROM accounts WHERE id = ?", (juan,)).fetchone() == ("Juan Dela Cruz",)
        copy.close()
