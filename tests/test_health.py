"""/healthz carries `sitekeeper doctor`'s cheap checks (the clock, the disk where the database lives): a disk
all but full turns it 503 with the fix, and back to 200 once space is freed; the owner's pages and the kiosk's
state say when the system clock is not synchronised (a Pi has no RTC)."""

from __future__ import annotations

import json
import subprocess

from browser import chromium, shot
from test_store_safety import health
from test_web_login import admin

from edge.clock import clock_synced


def test_a_disk_all_but_full_makes_healthz_503_with_the_fix_and_freeing_it_makes_it_well(edge_factory, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400m", "tmpfs", str(small)], check=True)
    try:
        edge = edge_factory({"store": {"path": str(small / "site.db")}})
        code, body = health(edge)
        checks = {c["check"]: c for c in body["checks"]}
        assert code == 200 and body["ok"] is True
        assert checks["disk"]["status"] == "warn" and f"MB free in {small}" in checks["disk"]["message"]
        subprocess.run(["fallocate", "-l", "250M", str(small / "filler")], check=True)
        code, body = health(edge)
        disk = {c["check"]: c for c in body["checks"]}["disk"]
        assert code == 503 and body["ok"] is False and disk["status"] == "fail"
        assert "move the database to USB storage" in disk["fix"] and body["store"]["ok"] is True
        (small / "filler").unlink()
        assert health(edge)[0] == 200
        edge.stop()
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_healthz_and_the_kiosk_state_say_whether_the_clock_is_synchronised(edge_factory):
    edge = edge_factory()
    synced = clock_synced()  # this machine's own state: either answer is a truth the edge must tell
    _, body = health(edge)
    clock = {c["check"]: c for c in body["checks"]}["clock"]
    assert body["clock_synced"] is synced and clock["status"] == ("ok" if synced else "warn")
    assert ("timedatectl" in clock["fix"]) is not synced
    assert json.loads(edge.http("/api/kiosk/state"))["clock_synced"] is synced


async def test_the_owner_pages_say_when_the_clock_is_not_synchronised(edge_factory):
    edge = edge_factory()
    made = admin(edge, "add", "owner", "--role", "owner", password="correct horse 1\n")
    assert made.returncode == 0, made.stderr
    base = f"http://127.0.0.1:{edge.web_port}"
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(base + "/login")
        assert await page.locator(".notice").count() == 0, "nothing about the site before a login"
        await page.fill("input[name=name]", "owner")
        await page.fill("input[name=password]", "correct horse 1")
        async with page.expect_navigation():
            await page.click("button.primary")
        notice = page.locator("p.notice[role=alert]")
        if clock_synced():
            assert await notice.count() == 0
        else:
            assert "clock is not synchronised" in await notice.inner_text()
            await page.goto(base + "/chargers")
            assert await notice.count() == 1, "on every page"
        await page.screenshot(path=shot("owner-clock-notice"), full_page=True)
