"""The owner's reports page in a real browser: a day, a range and a month, per charger and per user, with
the same figures as `sitekeeper report daily` and as its own CSV."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from browser import chromium, shot
from conftest import SITEKEEPER
from ocpp.v16 import call as call16
from peers import Charger
from test_web_chargers import utc
from test_web_login import admin
from test_web_users import login, seed


async def test_day_range_and_month_per_charger_and_user(edge_factory):
    edge = edge_factory({"site": {"timezone": "Asia/Manila"}})
    seed(edge)  # Juan 04C0FFEE with 500.00; Ana 04BEEF01 with nothing
    store_topup = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "topup", "04BEEF01", "300"],
                                 capture_output=True, text=True, timeout=60)
    assert store_topup.returncode == 0, store_topup.stderr
    made = await asyncio.to_thread(admin, edge, "add", "boss", "--role", "owner", password="correct horse 1\n")
    assert made.returncode == 0
    now = datetime.now(ZoneInfo("Asia/Manila"))
    # the sessions below end today whatever the hour the tests run at (half an hour after Manila's midnight,
    # 16:00 UTC, "30 minutes ago" was yesterday)
    now = max(now, now.replace(hour=1, minute=0, second=0, microsecond=0))
    a, b = await Charger(edge.url, "CP-R1", "1.6").connect(), await Charger(edge.url, "CP-R2", "1.6").connect()
    for ch in (a, b):
        await ch.boot16()
    for ch, uid, wh, when in ((a, "04C0FFEE", 2000, now - timedelta(minutes=30)), (b, "04BEEF01", 6000, now),
                              (a, "04C0FFEE", 1000, now - timedelta(days=3))):
        began = await ch.call(call16.StartTransaction(connector_id=1, id_tag=uid, meter_start=0,
                                                      timestamp=utc(when - timedelta(minutes=20))))
        await ch.call(call16.StopTransaction(transaction_id=began.transaction_id, meter_stop=wh, timestamp=utc(when),
                                             reason="Local"))
    await a.close()
    await b.close()
    base = f"http://127.0.0.1:{edge.web_port}"
    today = now.date().isoformat()
    daily = json.loads(subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "report", "daily", "--json"],
                                      capture_output=True, text=True, timeout=60).stdout)
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1024, "height": 900})
        await login(page, base, "boss")
        await page.goto(f"{base}/reports?kind=day&day={today}")
        foot = [c.strip() for c in await page.locator("tfoot td").all_inner_texts()]
        assert foot[1:] == [str(daily["totals"]["sessions"]), f"{daily['totals']['energy_wh'] / 1000:.2f}",
                            f"₱{daily['totals']['fees_minor'] / 100:.2f}"] == ["2", "8.00", "₱120.00"]
        users = await page.locator("table.users tbody tr").all_inner_texts()
        assert users[0].split("\t")[0] == "Ana Reyes" and "₱90.00" in users[0], "the biggest spender first"
        await page.screenshot(path=shot("web-reports"), full_page=True)
        got = await page.request.get(f"{base}/reports?kind=day&day={today}&csv_of=charger")
        rows = {r[0]: r for r in csv.reader(io.StringIO(await got.text()))}
        assert rows["CP-R1"][2:] == ["1", "2.000", "30.00"] and rows["CP-R2"][2:] == ["1", "6.000", "90.00"]
        first = (now - timedelta(days=3)).date().isoformat()
        await page.goto(f"{base}/reports?kind=range&first={first}&last={today}")
        assert [c.strip() for c in await page.locator("tfoot td").all_inner_texts()][1:3] == ["3", "9.00"]
        got = await page.request.get(f"{base}/reports?kind=range&first={first}&last={today}&csv_of=user")
        spend = {r[1]: r[4] for r in list(csv.reader(io.StringIO(await got.text())))[1:]}
        assert spend == {"Juan Dela Cruz": "45.00", "Ana Reyes": "90.00"}
        response = await page.goto(f"{base}/reports?kind=range&first={today}&last={first}")
        assert response.status == 422 and "before it starts" in await page.inner_text("main")
        await page.goto(f"{base}/reports?kind=month&month={now.strftime('%Y-%m')}")
        assert now.strftime("%Y-%m-01") in await page.inner_text("main")
