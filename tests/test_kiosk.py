"""The kiosk end to end, headless (SDL's dummy video driver): a real edge, a real 1.6 charger, the sim reader
(`sitekeeper tap`), touches posted as the panel's FINGERDOWN events. Tap, choose a connector, the charger
starts, live figures, stop with the same card, the receipt; an unknown card and a refused one; pay by QR to
the end with the local PayMongo; the edge killed and started again under the kiosk. Every screen drawn is
saved (test-artifacts/kiosk/) and checked not blank."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

os.environ["SDL_VIDEODRIVER"] = "dummy"

import httpx  # noqa: E402
import pygame  # noqa: E402
from browser import ARTIFACTS  # noqa: E402
from conftest import SITEKEEPER, free_port  # noqa: E402
from pay_charger import PayCharger  # noqa: E402
from paymongo_fake import SECRET_KEY, WEBHOOK_SECRET, FakePayMongo  # noqa: E402
from test_taps import add_card  # noqa: E402

from edge.config import load  # noqa: E402
from kiosk_ui.main import build  # noqa: E402

UID, POOR = "04C1C2C3", "04D1D2D3"


def site(**extra) -> dict:
    return {"site": {"name": "Depot 7", "timezone": "Asia/Manila"},
            "billing": {"min_start_balance": "50.00", "max_hold": "200.00"}, **extra}


class Kiosk:
    """The kiosk's shell and client on this test's loop: `pump` turns it until something is so."""

    def __init__(self, edge, name: str):
        self.shots = ARTIFACTS / "kiosk" / name
        for old in self.shots.glob("*.png") if self.shots.exists() else []:
            old.unlink()
        self.shell, self.client = build(load(edge.config_path), windowed=True, screenshot_dir=str(self.shots))
        self.client.poll = 0.3
        self.client.start()
        self.presses: list[str] = []
        press = self.shell.kiosk.press
        self.shell.kiosk.press = lambda button, now: (self.presses.append(button), press(button, now))[1]

    @property
    def k(self):
        return self.shell.kiosk

    def text(self) -> str:
        return " ".join(i.text for i in self.shell.placed.items)

    async def pump(self, until, timeout: float = 20, what: str = "") -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            self.shell.step()
            if until():
                return
            assert asyncio.get_running_loop().time() < deadline, f"kiosk never got to {what}: {self.k.screen}\n{self.text()}"
            await asyncio.sleep(0.03)

    def touch(self, button: str, twice_by_sdl: bool = True) -> None:
        """A finger on `button`; SDL also makes a mouse click of it (marked touch), which must not count."""
        [item] = [i for i in self.shell.placed.items if i.button is not None and i.button.id == button]
        x, y = item.box.x + item.box.w / 2, item.box.y + item.box.h / 2
        w, h = self.shell.panel
        pygame.event.post(pygame.event.Event(pygame.FINGERDOWN, x=x / w, y=y / h, touch_id=1, finger_id=0, dx=0,
                                             dy=0, pressure=1.0))
        if twice_by_sdl:
            pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(int(x), int(y)), button=1, touch=True))

    def close(self) -> None:
        self.client.stop()
        pygame.display.quit()


async def tap(edge, uid: str) -> None:
    proc = await asyncio.create_subprocess_exec(SITEKEEPER, "--config", str(edge.config_path), "tap", uid,
                                                "--reader", "kiosk", stdout=asyncio.subprocess.DEVNULL)
    assert await proc.wait() == 0


def not_blank(path: Path) -> bool:
    surf = pygame.image.load(str(path))
    colours = {tuple(surf.get_at((x, y))) for x in range(0, surf.get_width(), 7) for y in range(0, surf.get_height(), 7)}
    return len(colours) >= 3


async def test_tap_choose_charge_stop_with_the_same_card_receipt(edge_factory):
    edge = edge_factory(site())
    add_card(edge, UID, "commercial", topup=50_000)
    add_card(edge, POOR, "commercial", topup=2_000)
    charger = await PayCharger(edge, "CP-K1", "1.6").connect()
    token = Path(edge.db_path).parent / "kiosk-api.token"
    assert oct(token.stat().st_mode & 0o777) == "0o640", "the kiosk's own token, for the service's group"
    kiosk = Kiosk(edge, "card-flow")
    try:
        await kiosk.pump(lambda: "CP-K1 · 1: available" in kiosk.text(), what="the idle screen")
        assert "Tap your card" in kiosk.text() and "₱15.00 per kWh" in kiosk.text()
        await tap(edge, "04EEEEEE")
        await kiosk.pump(lambda: kiosk.k.screen == "refused", what="an unknown card")
        assert "Please ask the attendant" in kiosk.text()
        kiosk.touch("done")
        await kiosk.pump(lambda: kiosk.k.screen == "idle")
        await tap(edge, POOR)
        await kiosk.pump(lambda: kiosk.k.screen == "refused", what="a card short of money")
        assert "you need at least ₱50.00 (you have ₱20.00)" in kiosk.text()
        kiosk.touch("done")
        await kiosk.pump(lambda: kiosk.k.screen == "idle")
        kiosk.touch("lang:fil")
        await kiosk.pump(lambda: "Itapat ang iyong card" in kiosk.text(), what="Filipino")
        assert kiosk.presses == ["done", "done", "lang:fil"], "each touch once, not again as a mouse click"
        kiosk.touch("lang:en")
        await tap(edge, UID)
        await kiosk.pump(lambda: kiosk.k.screen == "card", what="the card screen")
        assert "Balance: ₱500.00" in kiosk.text() and "****C2C3" in kiosk.text() and UID not in kiosk.text()
        kiosk.touch("connector:CP-K1:1")
        await kiosk.pump(lambda: charger.cp.started.is_set(), what="the charger started")
        assert charger.cp.asked[0][0] == UID
        await kiosk.pump(lambda: kiosk.k.screen == "charging", what="charging")
        await charger.meter(12_000)
        await kiosk.pump(lambda: "2.00 kWh" in kiosk.text() and "₱30.00" in kiosk.text(), what="live figures")
        kiosk.touch("stop")
        await kiosk.pump(lambda: kiosk.k.screen == "stop_tap")
        await tap(edge, POOR)  # not the card that is charging
        await kiosk.pump(lambda: kiosk.k.screen == "charging" and "not the one charging" in kiosk.text())
        kiosk.touch("stop")
        await kiosk.pump(lambda: kiosk.k.screen == "stop_tap")
        await tap(edge, UID)
        await kiosk.pump(lambda: kiosk.k.screen == "stopping", what="stopping")
        await charger.stop(13_000)  # the charger stops, as RemoteStopTransaction asked
        await kiosk.pump(lambda: kiosk.k.screen == "receipt" and kiosk.k.receipt is not None, what="the receipt")
        text = kiosk.text()
        assert "3.00 kWh" in text and "Paid: ₱45.00" in text and "Balance now: ₱455.00" in text
        receipt = kiosk.k.view().qr
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/receipt/[0-9A-Z]{10}", receipt), receipt
        page = httpx.get(receipt.replace("127.0.0.1", "127.0.0.1"))
        assert page.status_code == 200 and "₱45.00" in page.text and "CP-K1" in page.text, "the QR's page"
        kiosk.touch("done")
        await kiosk.pump(lambda: kiosk.k.screen == "idle")
        shots = sorted(kiosk.shots.glob("*.png"))
        screens = {p.name.split("-")[1] for p in shots}
        assert {"idle", "refused", "card", "charging", "stop_tap", "stopping", "receipt"} <= screens, screens
        assert all(not_blank(p) for p in shots)
    finally:
        kiosk.close()
        await charger.close()


async def test_pay_by_qr_at_the_kiosk_and_the_edge_restarting_under_it(edge_factory):
    fake = await FakePayMongo(free_port()).start()
    edge = edge_factory(site(pay={"provider": "paymongo", "public_url": "http://192.168.50.2:8080",
                                  "paymongo": {"secret_key": SECRET_KEY, "webhook_secret": WEBHOOK_SECRET,
                                               "api_base": fake.url}}))
    fake.webhook_url = f"http://127.0.0.1:{edge.web_port}/pay/webhooks/paymongo"
    charger = await PayCharger(edge, "CP-K2", "1.6").connect()
    kiosk = Kiosk(edge, "qr-flow")
    try:
        await kiosk.pump(lambda: "Pay by QR" in kiosk.text(), what="idle")
        kiosk.touch("qr")
        await kiosk.pump(lambda: kiosk.k.screen == "qr_choose")
        kiosk.touch("connector:CP-K2:1")
        await kiosk.pump(lambda: kiosk.k.screen == "qr" and "Scan the code" in kiosk.text())
        assert kiosk.k.view().qr == "http://192.168.50.2:8080/pay/CP-K2/1"
        base = f"http://127.0.0.1:{edge.web_port}"
        async with httpx.AsyncClient() as phone:  # the phone that scanned it
            page = await phone.get(f"{base}/pay/CP-K2/1")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
            await phone.post(f"{base}/pay/CP-K2/1/qrph", data={"csrf": csrf, "phone": "0917 555 0101",
                                                                 "amount": "100.00"})
        await kiosk.pump(lambda: "Waiting for your payment" in kiosk.text(), what="paying")
        [intent] = fake.intents
        await fake.pay(intent)
        await kiosk.pump(lambda: charger.cp.started.is_set(), what="the charger started")
        await kiosk.pump(lambda: kiosk.k.screen == "charging", what="charging by QR")
        assert "Stop from your car or from your phone" in kiosk.text()
        edge.kill9()
        await kiosk.pump(lambda: "cannot reach the charging system" in kiosk.text(), what="the offline banner")
        edge.start()
        await charger.close()
        charger = await PayCharger(edge, "CP-K2", "1.6").connect()
        await kiosk.pump(lambda: "cannot reach" not in kiosk.text() and kiosk.k.screen == "charging", timeout=30,
                         what="back by itself")
        await charger.peer.stop16(1, 12_000)  # the car is full: the charger ends the session itself
        await kiosk.pump(lambda: kiosk.k.screen == "receipt" and kiosk.k.receipt is not None, what="the receipt")
        code = edge.query("SELECT code FROM pay_sessions")[0][0]
        assert kiosk.k.view().qr == f"http://192.168.50.2:8080/receipt/{code}", "the pay session's own receipt"
        assert "Paid: ₱30.00" in kiosk.text() and "Balance now: ₱70.00" in kiosk.text()
    finally:
        kiosk.close()
        await charger.close()
        await fake.stop()
