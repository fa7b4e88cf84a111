"""Pay by phone from the site wallet, end to end: a phone-sized browser on /pay/<charger>/<connector>, a real
1.6 or 2.0.1 charger, the PIN set with `sitekeeper cards pin`. The start command reaches the charger only
after the hold is committed; a charger that refuses or never starts gives the money back; two phones cannot
pay at one connector; wrong PINs lock the wallet; the receipt says what the session cost."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from browser import chromium, shot
from conftest import SITEKEEPER, wait_for
from pay_charger import PayCharger
from test_taps import add_card

from edge.billing import ledger
from edge.store.sqlite import Store

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
UID = "04AA11BB"


def site(**pay) -> dict:
    return {"site": {"timezone": "Asia/Manila"},
            "billing": {"min_start_balance": "50.00", "max_hold": "200.00"},
            "pay": {"start_timeout": 10, **pay}}


def set_pin(edge, uid: str, pin: str) -> subprocess.CompletedProcess:
    return subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "cards", "pin", uid], input=pin + "\n",
                          capture_output=True, text=True, timeout=30)


def wallet(edge, phone: str = "0917 123 4567") -> None:
    """A commercial card with ₱500.00, a phone number and the PIN 2468."""
    add_card(edge, UID, "commercial", topup=50_000)
    edge.query("SELECT 1")  # the file exists
    store = Store.open(edge.db_path)
    try:
        store.write_now(lambda c: c.execute("UPDATE accounts SET phone = ?", (phone,)))
    finally:
        store.close()
    done = set_pin(edge, UID, "2468")
    assert done.returncode == 0, done.stderr


def available(edge) -> tuple[int, int]:
    store = Store.open(edge.db_path)
    try:
        account = store.db.conn.execute("SELECT account_id FROM cards WHERE uid = ?", (UID,)).fetchone()[0]
        return ledger.available(store.db.conn, account), ledger.held(store.db.conn, account)
    finally:
        store.close()


async def wait_text(page, selector: str, text: str, timeout: float = 10) -> None:
    """Until the page shows `text` in `selector` (it updates itself; the page's CSP allows no eval)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in await page.inner_text(selector):
        assert asyncio.get_running_loop().time() < deadline, f"{selector} never showed {text!r}"
        await asyncio.sleep(0.2)


async def pay(page, base: str, charger: str, who: str, pin: str) -> None:
    await page.goto(f"{base}/pay/{charger}/1")
    await page.fill("input[name=who]", who)
    await page.fill("input[name=pin]", pin)
    async with page.expect_navigation():
        await page.click("#pay-wallet")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_wallet_pay_start_after_hold_then_receipt(edge_factory, version):
    edge = edge_factory(site())
    wallet(edge)
    charger = await PayCharger(edge, "CP-P1", version).connect()
    base = f"http://127.0.0.1:{edge.web_port}"
    async with chromium() as browser:
        page = await (await browser.new_context(**PHONE)).new_page()
        await page.goto(f"{base}/pay/CP-P1/1")
        text = await page.inner_text("main")
        assert "₱15.00 per kWh" in text and "per minute" in text and "per session" in text, text
        assert "Available" in text
        await page.screenshot(path=shot(f"pay-start-{version}"), full_page=True)
        await pay(page, base, "CP-P1", "0917-123-4567", "2468")
        assert "/pay/s/" in page.url
        await charger.wait_started()
        tag, connector, holds, _ = charger.cp.asked[0]
        assert tag.startswith("PAY") and connector == 1
        assert holds == 1, "the start command reached the charger only after the hold was committed"
        assert available(edge) == (30_000, 20_000), "₱200.00 (max_hold) is held of ₱500.00"
        await page.wait_for_selector("#energy", timeout=10_000)  # the page follows: charging
        await charger.meter(12_000)
        await wait_text(page, "#energy", "2.000")
        assert "₱30.00" in await page.inner_text("#cost")
        await page.screenshot(path=shot(f"pay-charging-{version}"), full_page=True)
        await charger.stop(14_000)
        await page.wait_for_selector("#receipt", timeout=10_000)
        code = await page.inner_text("#receipt-code")
        async with page.expect_navigation():
            await page.click("#receipt")
        receipt = await page.inner_text("main")
        assert code in receipt and "CP-P1" in receipt and "4.000 kWh" in receipt, receipt
        assert "₱60.00" in await page.inner_text("#charged") and "₱140.00" in await page.inner_text("#returned")
        await page.screenshot(path=shot(f"pay-receipt-{version}"), full_page=True)
    assert available(edge) == (44_000, 0), "₱60.00 taken, the rest back in the wallet"
    rows = edge.query("SELECT kind FROM outbox WHERE kind = 'payment' ORDER BY seq")
    assert len(rows) == 3, "starting, charging, done: each in the outbox for the cloud"
    store = Store.open(edge.db_path)
    try:
        assert ledger.audit(store.db.conn) == []
    finally:
        store.close()
    await charger.close()


@pytest.mark.parametrize("mode", ["reject", "silent"])
async def test_charger_that_does_not_start_gives_the_money_back(edge_factory, mode):
    edge = edge_factory(site())
    wallet(edge)
    charger = await PayCharger(edge, "CP-P2", "1.6", mode=mode).connect()
    base = f"http://127.0.0.1:{edge.web_port}"
    async with chromium() as browser:
        page = await (await browser.new_context(**PHONE)).new_page()
        await pay(page, base, "CP-P2", UID, "2468")
        await wait_for(lambda: charger.cp.asked, what="the start command")
        assert charger.cp.asked[0][2] == 1
        await page.wait_for_selector("#failed", timeout=20_000)
        text = await page.inner_text("main")
        assert "₱200.00" in text and "back in your wallet" in text, text
        await page.screenshot(path=shot(f"pay-failed-{mode}"), full_page=True)
    assert available(edge) == (50_000, 0), "nothing charged, nothing held"
    assert edge.query("SELECT state FROM pay_sessions") == [("failed",)]
    # the connector is free again: the next driver may pay
    charger.set_mode("start")
    async with chromium() as browser:
        page = await (await browser.new_context(**PHONE)).new_page()
        await pay(page, base, "CP-P2", UID, "2468")
        await charger.wait_started()
    await charger.close()


async def test_two_phones_one_connector(edge_factory):
    edge = edge_factory(site())
    wallet(edge)
    charger = await PayCharger(edge, "CP-P3", "1.6", mode="silent").connect()
    base = f"http://127.0.0.1:{edge.web_port}"
    async with chromium() as browser:
        first = await (await browser.new_context(**PHONE)).new_page()
        second = await (await browser.new_context(**PHONE)).new_page()
        await second.goto(f"{base}/pay/CP-P3/1")  # the second phone has the form open already
        await pay(first, base, "CP-P3", UID, "2468")
        await second.fill("input[name=who]", UID)
        await second.fill("input[name=pin]", "2468")
        async with second.expect_navigation():
            await second.click("#pay-wallet")
        assert "/pay/s/" not in second.url
        assert "Someone else has just started paying" in await second.inner_text("#message")
        await second.goto(f"{base}/pay/CP-P3/1")
        assert await second.locator("#in-use").count() == 1 and await second.locator("#pay-wallet").count() == 0
        await second.screenshot(path=shot("pay-in-use"), full_page=True)
    assert edge.query("SELECT count(*) FROM pay_sessions") == [(1,)]
    assert len(charger.cp.asked) == 1, "one start command"
    await charger.close()


async def test_wrong_pins_lock_the_wallet_and_bad_forms_change_nothing(edge_factory):
    edge = edge_factory(site())
    wallet(edge)
    charger = await PayCharger(edge, "CP-P4", "2.0.1").connect()
    base = f"http://127.0.0.1:{edge.web_port}"
    async with chromium() as browser:
        page = await (await browser.new_context(**{**PHONE, "locale": "fil-PH"})).new_page()
        for _ in range(4):
            await pay(page, base, "CP-P4", UID, "0000")
            assert "Mali ang PIN" in await page.inner_text("#message"), "told in Filipino"
        await pay(page, base, "CP-P4", UID, "0000")
        assert "Sobra na ang maling PIN" in await page.inner_text("#message")
        await pay(page, base, "CP-P4", UID, "2468")  # the right one, too late
        assert "Sobra na ang maling PIN" in await page.inner_text("#message")
        await page.screenshot(path=shot("pay-locked-fil"), full_page=True)
        await pay(page, base, "CP-P4", "0999 999 9999", "1234")
        assert "Walang account" in await page.inner_text("#message")
        add_card(edge, "04BB22CC", "commercial")
        lost = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "cards", "lost", "04BB22CC"],
                              capture_output=True, text=True, timeout=30)
        assert lost.returncode == 0, lost.stderr
        await pay(page, base, "CP-P4", "04BB22CC", "1234")
        assert "Naka-block" in await page.inner_text("#message"), "a lost card's number is no way in"
        await page.goto(f"{base}/pay/CP-P4/1")
        await page.evaluate("document.querySelector('#wallet input[name=csrf]').value = 'forged'")
        await page.fill("input[name=who]", UID)
        await page.fill("input[name=pin]", "2468")
        async with page.expect_navigation():
            await page.click("#pay-wallet")
        assert "CSRF" in await page.inner_text("main")
        assert (await page.goto(f"{base}/pay/NO-SUCH/1")).status == 404
    assert edge.query("SELECT count(*) FROM pay_sessions") == [(0,)]
    assert charger.cp.asked == [] and available(edge) == (50_000, 0)
    await charger.close()


async def test_chinese_page_and_cli_pin_rules(edge_factory):
    edge = edge_factory(site())
    wallet(edge)
    bad = set_pin(edge, UID, "12")
    assert bad.returncode == 2 and "4 to 8 digits" in bad.stderr
    assert set_pin(edge, "04FFFFFF", "1234").returncode == 2
    charger = await PayCharger(edge, "CP-P5", "1.6").connect()
    async with chromium() as browser:
        page = await (await browser.new_context(**{**PHONE, "locale": "zh-CN"})).new_page()
        await page.goto(f"http://127.0.0.1:{edge.web_port}/pay/CP-P5/1")
        text = await page.inner_text("main")
        assert "每度电 ₱15.00" in text and "付款并开始充电" in text, text
        await page.screenshot(path=shot("pay-start-zh"), full_page=True)
    await charger.close()
    await asyncio.sleep(0)


def test_driver_catalogs_have_every_text_in_three_languages():
    import re
    from pathlib import Path

    from edge import i18n

    en, fil, zh = (i18n.catalog(lang, "driver") for lang in ("en", "fil", "zh"))
    assert set(en) == set(fil) == set(zh)
    templates = Path(i18n.__file__).parent / "web" / "templates"
    used = set()
    for name in ("_lang.html", "pay_base.html", "pay.html", "pay_session.html", "receipt.html"):
        used |= set(re.findall(r't\("([a-z_]+\.[a-z_.]+[a-z_])"', (templates / name).read_text()))
    # the keys the templates build: a connector's state, a pay session's state, the way it was paid
    used |= {f"state.{s.lower()}" for s in ("Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE",
                                            "Finishing", "Reserved", "Unavailable", "Faulted", "Occupied", "unknown")}
    used |= {f"pay.now.{s}" for s in ("paying", "starting", "charging", "done", "failed", "expired")}
    used |= {"receipt.method.wallet", "receipt.method.qrph", "receipt.method.card", "pay.kept_plain"}
    used |= {k for k in en if k.startswith("pay.err.")}  # raised by edge.billing.pay and the desk
    assert len(used) > 60 and used <= set(en), used - set(en)


@pytest.mark.parametrize("authority", ["edge", "upstream"])
async def test_proxy_mode_the_edge_decides_for_what_was_paid_here(edge_factory, authority):
    """Behind a cloud CSMS that does not know the pay tag (and refuses it), the edge still starts and bills
    the paid session: the driver paid here, whoever decides for cards."""
    from conftest import free_port
    from peers import Csms

    csms = await Csms(free_port()).start()
    csms.tag_status["*"] = "Invalid"
    edge = edge_factory({**site(), "upstream": {"mode": "proxy", "url": csms.url, "reconnect_min": 0.1,
                                                "reconnect_max": 0.5},
                         "billing": {"min_start_balance": "50.00", "max_hold": "200.00", "authority": authority}})
    wallet(edge)
    charger = await PayCharger(edge, "CP-P6", "1.6").connect()
    async with chromium() as browser:
        page = await (await browser.new_context(**PHONE)).new_page()
        await pay(page, f"http://127.0.0.1:{edge.web_port}", "CP-P6", UID, "2468")
        result = await charger.wait_started()
        assert result.id_tag_info["status"] == "Accepted"
        await page.wait_for_selector("#energy", timeout=10_000)
    await charger.meter(12_000)
    await charger.stop(12_000)
    await wait_for(lambda: edge.query("SELECT state FROM pay_sessions") == [("done",)], what="done")
    assert available(edge) == (47_000, 0), "₱30.00 for 2 kWh"
    assert csms.calls("CP-P6", "StartTransaction"), "the cloud saw the session"
    await charger.close()
    await csms.stop()
