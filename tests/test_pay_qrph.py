"""Pay by QR Ph through PayMongo, end to end: a phone-sized browser, the edge, a local PayMongo that speaks its
documented API and signs its webhooks as documented (tests/paymongo_fake.py), and a real 1.6 / 2.0.1 charger.
The paid amount goes to a wallet under the driver's phone number; the hold is made from it when the verified
webhook is recorded, and only then does the start command go out. A webhook sent twice credits once; a forged
or stale one is refused; an expired QR paid late is kept for the owner; a charger that does not start leaves
the money in the wallet, usable next time with a PIN set on the spot; a kill -9 after the webhook loses and
doubles nothing."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error

import pytest
from browser import chromium, shot
from conftest import free_port, wait_for
from pay_charger import PayCharger
from paymongo_fake import SECRET_KEY, WEBHOOK_SECRET, FakePayMongo
from test_pay_wallet import PHONE, wait_text
from test_web_login import admin
from test_web_users import login

from edge.billing import ledger
from edge.billing.paymongo import signature_header
from edge.store.sqlite import Store


def site(fake: FakePayMongo, **pay) -> dict:
    return {"site": {"timezone": "Asia/Manila"},
            "billing": {"min_start_balance": "50.00", "max_hold": "500.00"},
            "pay": {"start_timeout": 10, "provider": "paymongo", "amounts": "100.00, 200.00, 500.00",
                    "paymongo": {"secret_key": SECRET_KEY, "webhook_secret": WEBHOOK_SECRET, "api_base": fake.url},
                    **pay}}


async def started(edge_factory, **pay) -> tuple:
    fake = await FakePayMongo(free_port()).start()
    edge = edge_factory(site(fake, **pay))
    fake.webhook_url = f"http://127.0.0.1:{edge.web_port}/pay/webhooks/paymongo"
    return fake, edge, f"http://127.0.0.1:{edge.web_port}"


def audit(edge) -> list:
    store = Store.open(edge.db_path)
    try:
        return ledger.audit(store.db.conn)
    finally:
        store.close()


def wallet_of(edge, phone: str = "+639171234567") -> tuple[int, int, int]:
    """(balance, held, top-ups) of the wallet under `phone`."""
    rows = edge.query("SELECT id, balance_minor, held_minor FROM accounts WHERE phone = ?", (phone,))
    assert len(rows) == 1, rows
    topups = edge.query("SELECT count(*) FROM ledger WHERE account_id = ? AND kind = 'topup'", (rows[0][0],))[0][0]
    return rows[0][1], rows[0][2], topups


async def show_qr(page, base: str, charger: str, phone: str = "0917 123 4567", amount: str = "200.00",
                  other: str = "") -> None:
    await page.goto(f"{base}/pay/{charger}/1")
    await page.fill("input[name=phone]", phone)
    await page.check(f"input[name=amount][value='{amount}']")
    if other:
        await page.fill("input[name=other]", other)
    async with page.expect_navigation():
        await page.click("#pay-qrph")


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_qrph_paid_then_started_once_then_receipt(edge_factory, version):
    fake, edge, base = await started(edge_factory)
    charger = await PayCharger(edge, "CP-Q1", version).connect()
    async with chromium() as browser:
        page = await (await browser.new_context(**PHONE)).new_page()
        await show_qr(page, base, "CP-Q1")
        assert await page.locator("#provider-qr").evaluate("img => img.naturalWidth") > 100, "the QR is drawn"
        assert "₱200.00" in await page.inner_text("main")
        await page.screenshot(path=shot(f"pay-qrph-{version}"), full_page=True)
        [intent] = fake.intents.values()
        assert intent["amount"] == 20000 and intent["status"] == "awaiting_next_action", "centavos, attached"
        assert charger.cp.asked == [], "nothing is started before the payment"
        answer, event = await fake.pay(intent["id"])
        assert answer.status_code == 200 and answer.json()["outcome"] == "applied"
        await charger.wait_started()
        assert charger.cp.asked[0][2] == 1, "the hold was committed before the start command came"
        again = await fake.send(event)
        assert again.status_code == 200 and again.json()["outcome"] == "replayed"
        assert wallet_of(edge) == (20000, 20000, 1), "credited once, all of it held"
        await page.wait_for_selector("#energy", timeout=10_000)
        await charger.meter(12_000)
        await wait_text(page, "#energy", "2.000")
        await charger.stop(13_000)
        await page.wait_for_selector("#receipt", timeout=10_000)
        assert "₱155.00" in await page.inner_text("#kept"), "what is left is in the wallet, and said"
        assert await page.locator("#set-pin").count() == 1, "the wallet this payment made may get a PIN"
        await page.fill("#set-pin input[name=pin]", "1357")
        await page.fill("#set-pin input[name=pin2]", "1357")
        async with page.expect_navigation():
            await page.click("#save-pin")
        assert await page.locator("#pin-set").count() == 1 and await page.locator("#set-pin").count() == 0
        async with page.expect_navigation():
            await page.click("#receipt")
        assert "₱45.00" in await page.inner_text("#charged") and "QR Ph" in await page.inner_text("main")
        await page.screenshot(path=shot(f"pay-qrph-receipt-{version}"), full_page=True)
    assert wallet_of(edge) == (15500, 0, 1)
    assert audit(edge) == []
    assert edge.query("SELECT outcome FROM pay_events") == [("applied",)]
    records = [json.loads(b) for (b,) in edge.query("SELECT body FROM outbox WHERE kind = 'payment' ORDER BY seq")]
    assert [r.get("state") or r["outcome"] for r in records] == ["paying", "starting", "applied", "charging", "done"]
    await charger.close()
    await fake.stop()


async def test_forged_stale_and_unsigned_webhooks_change_nothing(edge_factory):
    fake, edge, base = await started(edge_factory)
    charger = await PayCharger(edge, "CP-Q2", "1.6").connect()
    async with chromium() as browser:
        page = await (await browser.new_context(**PHONE)).new_page()
        for amount in ("5", "999999", "-100", "abc"):  # the limits are the server's, whatever the form says
            await show_qr(page, base, "CP-Q2", amount="100.00", other=amount)
            assert "Choose an amount from ₱50.00 to ₱2000.00" in await page.inner_text("#message"), amount
        await show_qr(page, base, "CP-Q2", phone="12345", amount="100.00")
        assert "not a phone number" in await page.inner_text("#message")
        assert fake.intents == {} and edge.query("SELECT count(*) FROM pay_sessions") == [(0,)]
        await show_qr(page, base, "CP-Q2", amount="100.00")
    [intent] = fake.intents.values()
    fake.intents[intent["id"]]["status"] = "succeeded"
    body = fake.event("payment.paid", intent["id"])
    forged = await fake.send(body, secret="whsk_someone_else")
    stale = await fake.send(body, t=int(time.time()) - 3600)
    unsigned = await fake.send(body, header="")
    signed = signature_header(WEBHOOK_SECRET, body, int(time.time()))  # for the body before it was changed
    tampered = await fake.send(body.replace(b'"amount": 10000', b'"amount": 99900'), header=signed)
    for answer in (forged, stale, unsigned, tampered):
        assert answer.status_code == 400, answer.text
    assert "signature does not match" in forged.json()["error"] and "away from now" in stale.json()["error"]
    assert edge.query("SELECT count(*) FROM pay_events") == [(0,)]
    assert edge.query("SELECT state FROM pay_sessions") == [("paying",)]
    assert edge.query("SELECT count(*) FROM ledger") == [(0,)] and charger.cp.asked == []
    assert "refused a paymongo webhook" in edge.log()
    ok = await fake.send(body)  # the real one still works afterwards
    assert ok.json()["outcome"] == "applied"
    await charger.wait_started()
    await charger.close()
    await fake.stop()


async def test_charger_refuses_money_stays_in_the_wallet_pin_on_the_spot(edge_factory):
    fake, edge, base = await started(edge_factory)
    charger = await PayCharger(edge, "CP-Q3", "2.0.1", mode="reject").connect()
    async with chromium() as browser:
        page = await (await browser.new_context(**PHONE)).new_page()
        await show_qr(page, base, "CP-Q3", amount="100.00", other="150")
        [intent] = fake.intents.values()
        assert intent["amount"] == 15000, "the free amount wins over the preset"
        await fake.pay(intent["id"])
        await page.wait_for_selector("#failed", timeout=15_000)
        assert "₱150.00" in await page.inner_text("#kept")
        await page.fill("#set-pin input[name=pin]", "2580")
        await page.fill("#set-pin input[name=pin2]", "2581")
        async with page.expect_navigation():
            await page.click("#save-pin")
        assert "differ" in await page.inner_text("#message")
        await page.fill("#set-pin input[name=pin]", "2580")
        await page.fill("#set-pin input[name=pin2]", "2580")
        async with page.expect_navigation():
            await page.click("#save-pin")
        await page.screenshot(path=shot("pay-qrph-failed-pin"), full_page=True)
        assert wallet_of(edge) == (15000, 0, 1), "nothing charged, nothing held"
        # next time: the phone number and the PIN, at a charger that starts
        charger.set_mode("start")
        await page.goto(f"{base}/pay/CP-Q3/1")
        await page.fill("input[name=who]", "+63 917 123 4567")
        await page.fill("input[name=pin]", "2580")
        async with page.expect_navigation():
            await page.click("#pay-wallet")
        await charger.wait_started()
        assert wallet_of(edge)[:2] == (15000, 15000)
    await charger.close()
    await fake.stop()


async def test_expired_qr_paid_late_is_kept_for_the_owner(edge_factory):
    fake, edge, base = await started(edge_factory, payment_minutes=0.25)
    charger = await PayCharger(edge, "CP-Q4", "1.6").connect()
    async with chromium() as browser:
        page = await (await browser.new_context(**PHONE)).new_page()
        await show_qr(page, base, "CP-Q4", amount="100.00")
        await page.wait_for_selector("#expired", timeout=30_000)
        await page.screenshot(path=shot("pay-qrph-expired"), full_page=True)
    [intent] = fake.intents.values()
    await wait_for(lambda: intent["status"] == "cancelled", what="the intent cancelled at PayMongo")
    answer, _ = await fake.pay(intent["id"])  # paid all the same (a bank app that had the code open)
    assert answer.status_code == 200 and answer.json()["outcome"] == "unresolved"
    assert edge.query("SELECT outcome, amount_minor FROM pay_events") == [("unresolved", 10000)]
    assert charger.cp.asked == [] and edge.query("SELECT count(*) FROM ledger") == [(0,)]
    # the connector is free for the next driver
    async with chromium() as browser:
        page = await (await browser.new_context(**PHONE)).new_page()
        await page.goto(f"{base}/pay/CP-Q4/1")
        assert await page.locator("#pay-qrph").count() == 1
    # the owner sees it and credits it to the wallet of the phone it came with, once
    made = await asyncio.to_thread(admin, edge, "add", "desk", "--role", "operator", password="correct horse 1\n")
    assert made.returncode == 0, made.stderr
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1100, "height": 900})
        await login(page, base, "desk")
        await page.goto(f"{base}/payments")
        unresolved = await page.inner_text("#unresolved")
        assert "₱100.00" in unresolved and "+63 917 *** 4567" in unresolved and "expired" in unresolved
        assert "expired" in await page.inner_text("#pay-sessions")
        await page.screenshot(path=shot("payments-owner"), full_page=True)
        form = await page.locator("#unresolved input[name=event]").get_attribute("value")
        async with page.expect_navigation():
            await page.click("#unresolved button.credit")
        assert "Credited" in await page.inner_text("main")
        assert await page.locator("#unresolved button.credit").count() == 0
        again = await page.request.post(f"{base}/payments/events/credit", form={
            "csrf": await page.locator("form.logout input[name=csrf]").get_attribute("value"), "event": form},
            headers={"Accept": "text/html"})
        assert again.status == 409, "a second credit of the same payment is refused"
    assert wallet_of(edge) == (10000, 0, 1)
    assert edge.query("SELECT outcome FROM pay_events") == [("resolved",)]
    listed = json.loads(edge.http("/api/pay/sessions"))
    assert [(p["code"], p["state"], p["phone"]) for p in listed] == [
        (listed[0]["code"], "expired", "+63 917 *** 4567")] and "provider_qr" not in listed[0]
    assert json.loads(edge.http("/api/pay/events?unresolved=true")) == []
    try:
        edge.http("/api/pay/sessions", token="")
        raise AssertionError("answered without a token")
    except urllib.error.HTTPError as e:
        assert e.code == 401
    assert audit(edge) == []
    await charger.close()
    await fake.stop()


async def test_provider_unreachable_hides_qrph_and_the_wallet_works(edge_factory):
    fake, edge, base = await started(edge_factory)
    charger = await PayCharger(edge, "CP-Q5", "1.6").connect()
    await fake.stop()
    async with chromium() as browser:
        page = await (await browser.new_context(**PHONE)).new_page()
        await show_qr(page, base, "CP-Q5", amount="100.00")
        assert "QR payment is unavailable right now" in await page.inner_text("#message")
        assert await page.locator("#qrph-unavailable").count() == 1 and await page.locator("#pay-qrph").count() == 0
        assert await page.locator("#pay-wallet").count() == 1
        await page.screenshot(path=shot("pay-qrph-unavailable"), full_page=True)
    assert edge.query("SELECT state FROM pay_sessions") == [("expired",)], "the connector is not left reserved"
    await charger.close()


async def test_kill9_after_the_webhook_loses_and_doubles_nothing(edge_factory):
    fake, edge, base = await started(edge_factory)
    charger = await PayCharger(edge, "CP-Q6", "1.6", mode="silent").connect()
    async with chromium() as browser:
        page = await (await browser.new_context(**PHONE)).new_page()
        await show_qr(page, base, "CP-Q6", amount="200.00")
    [intent] = fake.intents.values()
    answer, event = await fake.pay(intent["id"])
    assert answer.json()["outcome"] == "applied"
    edge.kill9()  # between the committed hold and (perhaps) the start command
    await charger.close()
    told = list(charger.cp.asked)
    edge.start()
    assert (await fake.send(event)).json()["outcome"] == "replayed", "the same payment, after the restart"
    charger = await PayCharger(edge, "CP-Q6", "1.6", mode="silent").connect()
    if told:  # the charger had the command: the driver plugs in now, the session starts on the paid hold
        await charger.peer.start16(told[0][0], meter_start=5000)
        await wait_for(lambda: edge.query("SELECT state FROM pay_sessions") == [("charging",)], what="charging")
        assert wallet_of(edge) == (20000, 20000, 1)
    else:  # it never had it: the hold goes back to the wallet when the time is up
        await wait_for(lambda: edge.query("SELECT state FROM pay_sessions") == [("failed",)], timeout=30,
                       what="released")
        assert wallet_of(edge) == (20000, 0, 1)
    assert audit(edge) == []
    assert edge.query("SELECT count(*) FROM pay_events") == [(1,)]
    await charger.close()
    await fake.stop()
    await asyncio.sleep(0)
