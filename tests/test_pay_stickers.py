"""The pay QR stickers, read back: `sitekeeper pay stickers` and the owner's download write an A4 sheet whose
QR codes, drawn by Chromium and read by a real QR decoder (zbar), are each connector's pay address on
`pay.public_url`; and the owner sets a wallet PIN on the user page, with which a driver then pays."""

from __future__ import annotations

import asyncio
import subprocess

from browser import chromium, shot
from conftest import SITEKEEPER, wait_for
from ocpp.routing import on
from ocpp.v201 import call_result as result201
from pay_charger import Pay201, PayCharger
from test_pay_wallet import PHONE, UID, available, pay
from test_taps import add_card
from test_web_login import admin
from test_web_users import login

PUBLIC = "http://192.168.50.2:8080"


async def decoded(browser, svg: str, name: str) -> list[str]:
    """The QR codes a decoder reads in `svg` as Chromium draws it (the sheet as printed)."""
    page = await browser.new_page(viewport={"width": 1240, "height": 1754})  # A4 at 150 dpi
    await page.set_content(f"<html><body style='margin:0'>{svg.split('?>', 1)[-1]}</body></html>")
    await page.evaluate("document.querySelector('svg').setAttribute('width', '1240px')")
    await page.evaluate("document.querySelector('svg').removeAttribute('height')")
    path = shot(name)
    await page.screenshot(path=path, full_page=True)
    out = subprocess.run(["zbarimg", "--quiet", "--raw", path], capture_output=True, text=True, timeout=60)
    return sorted(line for line in out.stdout.splitlines() if line)


async def test_stickers_carry_each_connectors_pay_address(edge_factory, tmp_path):
    edge = edge_factory({"pay": {"public_url": PUBLIC}})
    chargers = [await PayCharger(edge, "CP-S1", "1.6").connect(), await PayCharger(edge, "CP-S2", "2.0.1").connect()]
    await chargers[0].peer.status16("Available", connector_id=2)
    out = tmp_path / "stickers.svg"
    made = await asyncio.to_thread(subprocess.run, [SITEKEEPER, "--config", str(edge.config_path), "pay",
                                                    "stickers", "--out", str(out)], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert "3 pay sticker(s)" in made.stdout
    bad = subprocess.run([SITEKEEPER, "--config", str(edge.config_path), "pay", "urls", "--connector", "CP-S1"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--connector: expected" in bad.stderr
    want = [f"{PUBLIC}/pay/CP-S1/1", f"{PUBLIC}/pay/CP-S1/2", f"{PUBLIC}/pay/CP-S2/1"]
    made_by = await asyncio.to_thread(admin, edge, "add", "desk", "--role", "viewer", password="correct horse 1\n")
    assert made_by.returncode == 0
    async with chromium() as browser:
        assert await decoded(browser, out.read_text(), "pay-stickers") == want
        page = await browser.new_page()
        await login(page, f"http://127.0.0.1:{edge.web_port}", "desk")
        answer = await page.request.get(f"http://127.0.0.1:{edge.web_port}/payments/stickers.svg")
        assert answer.status == 200 and answer.headers["content-type"].startswith("image/svg+xml")
        assert await decoded(browser, await answer.text(), "pay-stickers-web") == want
        anonymous = await (await browser.new_context()).request.get(
            f"http://127.0.0.1:{edge.web_port}/payments/stickers.svg", max_redirects=0)
        assert anonymous.status == 303, "no login, no sheet"
    for charger in chargers:
        await charger.close()


async def test_owner_sets_the_wallet_pin_then_the_driver_pays(edge_factory):
    edge = edge_factory({"billing": {"min_start_balance": "50.00", "max_hold": "200.00"}})
    add_card(edge, UID, "commercial", topup=30_000)
    made = await asyncio.to_thread(admin, edge, "add", "desk", "--role", "operator", password="correct horse 1\n")
    assert made.returncode == 0
    charger = await PayCharger(edge, "CP-S3", "1.6").connect()
    base = f"http://127.0.0.1:{edge.web_port}"
    account = edge.query("SELECT account_id FROM cards WHERE uid = ?", (UID,))[0][0]
    async with chromium() as browser:
        page = await browser.new_page()
        await login(page, base, "desk")
        await page.goto(f"{base}/users/{account}")
        assert "not set" in await page.inner_text("#pin h2")
        await page.fill("#pin input[name=pin]", "4321")
        await page.fill("#pin input[name=pin2]", "4322")
        async with page.expect_navigation():
            await page.click("#pin button")
        assert "differ" in await page.inner_text("main")
        await page.fill("#pin input[name=pin]", "4321")
        await page.fill("#pin input[name=pin2]", "4321")
        async with page.expect_navigation():
            await page.click("#pin button")
        assert "The PIN is set" in await page.inner_text("main") and "set" in await page.inner_text("#pin h2")
        assert edge.query("SELECT what, who FROM changes WHERE what = 'user.pin'") == [("user.pin", "desk")]
        assert "4321" not in str(edge.query("SELECT pin_hash FROM accounts")), "kept hashed"
        phone = await (await browser.new_context(**PHONE)).new_page()
        await pay(phone, base, "CP-S3", UID, "4321")
        await charger.wait_started()
    assert available(edge) == (10_000, 20_000)
    await charger.close()


class Display201(Pay201):
    """A 2.0.1 charger with a display (`uri`: it can show a URI as a QR code)."""

    uri = True

    @on("SetDisplayMessage")
    def show(self, message, **kw):
        self.shown = [*getattr(self, "shown", []), message]
        fmt = message["message"]["format"]
        return result201.SetDisplayMessage(status="Accepted" if fmt != "URI" or self.uri else "NotSupportedMessageFormat")


class TextOnly201(Display201):
    uri = False


async def test_chargers_with_a_display_get_the_pay_qr_and_the_price(edge_factory):
    edge = edge_factory({"pay": {"public_url": PUBLIC}})
    qr = await PayCharger(edge, "CP-D1", "2.0.1", cp_class=Display201).connect()
    text = await PayCharger(edge, "CP-D2", "2.0.1", cp_class=TextOnly201).connect()
    blind = await PayCharger(edge, "CP-D3", "2.0.1").connect()  # no display: answers NotImplemented
    await wait_for(lambda: len(getattr(qr.cp, "shown", [])) >= 2 and len(getattr(text.cp, "shown", [])) >= 3,
                   timeout=20, what="the display messages")
    price, shown = qr.cp.shown[0], qr.cp.shown[1]
    assert price["message"]["format"] == "UTF8" and "₱15.00 per kWh" in price["message"]["content"]
    assert shown["message"] == {"format": "URI", "language": "en", "content": f"{PUBLIC}/pay/CP-D1/1"}
    assert text.cp.shown[2]["message"]["content"] == f"Pay: {PUBLIC}/pay/CP-D2/1", "a URI refused: sent as text"
    await asyncio.sleep(6)  # another round of the display loop: nobody is asked twice for the same boot
    assert len(qr.cp.shown) == 2 and len(text.cp.shown) == 3
    asked = edge.query("SELECT charger_id, count(*) FROM operations WHERE action = 'SetDisplayMessage'"
                       " GROUP BY charger_id ORDER BY charger_id")
    assert asked == [("CP-D1", 2), ("CP-D2", 3), ("CP-D3", 1)]
    for charger in (qr, text, blind):
        await charger.close()
