"""The kiosk's screens as a plain object (no pygame, no edge): each flow a driver takes, the refusals in plain
words, the time-outs with their warning, and every screen laid out in every language and panel size with
big enough targets and text, nothing outside the screen and no character the font cannot draw."""

from __future__ import annotations

import os

import pytest

from kiosk_ui import layout
from kiosk_ui.screens import WARN, Kiosk, Request
from kiosk_ui.text import catalog, translators

SIZES = [(800, 480, 0), (1024, 600, 0), (1280, 720, 0), (480, 800, 0), (720, 1280, 0), (800, 480, 90)]


def site(state="Available", session=None, pay_state=None, **extra) -> dict:
    return {"site": "Depot 7", "currency": "PHP", "min_start": "₱50.00", "pay": True, "qrph": True,
            "prices": {"per_kwh": "₱15.00", "per_minute": "₱0.50", "session_fee": "₱10.00", "idle_per_minute": "₱5.00",
                       "idle_grace_minutes": 15, "bands": [], "band_now": {"start": "18:00", "end": "22:00",
                                                                          "per_kwh": "₱18.00"}},
            "connectors": [{"charger": "CP-1", "connector": 1, "state": state, "connected": True,
                            "pay_url": "http://192.168.1.10:8080/pay/CP-1/1", "pay_state": pay_state,
                            "session": session},
                           {"charger": "CP-2", "connector": 1, "state": "Faulted", "connected": True,
                            "pay_url": "http://192.168.1.10:8080/pay/CP-2/1", "pay_state": None, "session": None}],
            **extra}


TAP = {"type": "tap", "reader": "kiosk", "known": True, "uid_masked": "****11BB", "kind": "commercial",
       "name": "Maria Santos", "available": "₱500.00", "result": "accepted", "status": "Accepted", "tap_ref": "r1"}
SESSION = {"tx_id": 7, "energy_wh": 2500, "cost_minor": 3750, "cost": "₱37.50", "minutes": 12, "power_w": 7200,
           "card_masked": "****11BB"}


def kiosk() -> Kiosk:
    k = Kiosk(translators=translators())
    k.site(site(), 0.0)
    return k


def texts(k: Kiosk) -> str:
    v = k.view()
    return "\n".join([v.title] + [t.text for t in v.texts] + [b.label for b in v.buttons])


def test_card_choose_start_charge_stop_receipt():
    k = kiosk()
    assert "Tap your card" in texts(k) and "Now 18:00–22:00: ₱18.00 per kWh" in texts(k)
    assert "CP-2 · 1: out of order" in texts(k), "state in words, not colour alone"
    k.tap(TAP, 1.0)
    assert k.screen == "card" and "Hello, Maria" in texts(k) and "Balance: ₱500.00" in texts(k)
    assert [b.id for b in k.view().buttons] == ["connector:CP-1:1", "cancel"], "only the free connector"
    assert k.press("connector:CP-1:1", 2.0) == [Request("start", {"tap_ref": "r1", "charger": "CP-1", "connector": 1})]
    assert k.screen == "starting" and "Plug in your car" in texts(k)
    k.site(site("Charging", SESSION), 3.0)
    assert k.screen == "charging" and "2.50 kWh" in texts(k) and "₱37.50" in texts(k) and "7.2 kW" in texts(k)
    k.press("stop", 4.0)
    assert k.screen == "stop_tap"
    assert k.tap({**TAP, "tap_ref": "r2"}, 5.0) == [Request("stop", {"tap_ref": "r2", "charger": "CP-1",
                                                                       "connector": 1})]
    assert k.site(site("Finishing", None), 6.0) == [Request("receipt", {"tx_id": 7})]
    k.answer(Request("receipt", {"tx_id": 7}), {"energy_wh": 3000, "minutes": 14, "cost": "₱45.00",
                                                "balance": "₱455.00", "receipt_url": "http://x/receipt/AB"}, 7.0)
    v = k.view()
    assert k.screen == "receipt" and v.qr == "http://x/receipt/AB" and "Balance now: ₱455.00" in texts(k)
    assert "(code AB)" in texts(k), "the receipt code, to type in if the QR cannot be scanned"
    k.press("done", 8.0)
    assert k.screen == "idle" and k.card is None, "nothing personal left"


@pytest.mark.parametrize("event, words", [
    ({"known": False, "uid_masked": "****0001", "result": "refused"}, "not registered here. Please ask the attendant"),
    ({**TAP, "result": "refused", "status": "Blocked", "reason": "low_balance", "available": "₱20.00"},
     "you need at least ₱50.00 (you have ₱20.00)"),
    ({**TAP, "result": "refused", "status": "Blocked", "reason": "blocked"}, "This card is blocked"),
    ({**TAP, "result": "refused", "status": "Expired", "reason": "expired"}, "This card has expired"),
])
def test_refusals_in_plain_words(event, words):
    k = kiosk()
    k.tap(event, 1.0)
    assert k.screen == "refused" and words in texts(k)


def test_timeouts_warn_twenty_seconds_ahead_and_can_be_extended():
    k = kiosk()
    k.tap(TAP, 0.0)
    k.tick(60.0 - WARN - 1)
    assert k.view().warning is None
    k.tick(60.0 - WARN + 1)
    v = k.view()
    assert v.warning is not None and "closes in 19 s" in v.warning.text and [b.id for b in v.buttons] == ["more"]
    k.press("more", 50.0)
    k.tick(100.0)
    assert k.screen == "card"
    k.tick(111.0)
    assert k.screen == "idle" and k.card is None


def test_pay_by_qr_follows_the_phone_and_a_stray_tap_changes_nothing():
    k = kiosk()
    k.press("qr", 1.0)
    k.press("connector:CP-1:1", 2.0)
    v = k.view()
    assert k.screen == "qr" and v.qr == "http://192.168.1.10:8080/pay/CP-1/1" and "Scan the code" in texts(k)
    k.site(site(pay_state="paying"), 3.0)
    assert "Waiting for your payment" in texts(k)
    assert k.tap(TAP, 3.5) == [] and k.screen == "qr"
    k.site(site("Charging", SESSION, pay_state="charging"), 4.0)
    assert k.screen == "charging" and "stop" not in [b.id for b in k.view().buttons]
    assert "Stop from your car or from your phone" in texts(k)


def test_a_tapped_card_that_is_charging_goes_to_its_session_and_banners_say_what_is_away_or_wrong():
    k = kiosk()
    k.site(site("Charging", SESSION), 0.5)
    k.tap({**TAP, "running": {"charger_id": "CP-1", "connector_id": 1}}, 1.0)
    assert k.screen == "charging" and k.tx_id == 7
    k.edge_down(2.0)
    assert "cannot reach the charging system" in k.view().banner
    k.site(site(provider_away=True), 3.0)
    assert k.view().banner == "Charging works; QR payment is unavailable right now."
    k.site(site(clock_synced=False), 4.0)
    assert k.view().banner == "The clock is not set yet: times shown may be wrong. Charging works."
    k.site(site(clock_synced=True), 5.0)
    assert k.view().banner is None
    k.site(site(clock_synced=False, provider_away=True), 6.0)
    assert "QR payment is unavailable" in k.view().banner, "what a driver can do comes first"


def test_catalogs_have_every_text_in_three_languages():
    en, fil, zh = catalog("en"), catalog("fil"), catalog("zh")
    assert set(en) == set(fil) == set(zh) and all(fil.values()) and all(zh.values())


def _every_view():
    """Each screen of a long day, as (name, Kiosk) in the state it is drawn in."""
    k = kiosk()
    yield "idle", k
    k = kiosk()
    k.tap(TAP, 1.0)
    yield "card", k
    k = kiosk()
    k.tap({"known": False, "uid_masked": "****0001", "result": "refused"}, 1.0)
    yield "refused", k
    k = kiosk()
    k.tap(TAP, 1.0)
    k.press("connector:CP-1:1", 1.0)
    yield "starting", k
    k.site(site("Charging", SESSION), 2.0)
    k.edge_down(2.0)
    yield "charging-offline", k
    k.tick(2.0 + 90 - 10)
    yield "charging-warning", k
    k = kiosk()
    k.press("qr", 1.0)
    yield "qr_choose", k
    k.press("connector:CP-1:1", 1.0)
    yield "qr", k
    k = kiosk()
    k.site(site("Charging", SESSION), 1.0)
    k.tap({**TAP, "running": {"charger_id": "CP-1", "connector_id": 1}}, 1.0)
    k.press("stop", 1.0)
    yield "stop_tap", k
    k.site(site(), 2.0)
    k.answer(Request("receipt", {"tx_id": 7}), {"energy_wh": 3000, "minutes": 14, "cost": "₱45.00",
                                                "balance": "₱455.00", "receipt_url": "http://x/receipt/AB"}, 2.0)
    yield "receipt", k


@pytest.fixture(scope="module")
def fonts():
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from kiosk_ui.shell import Fonts

    return Fonts()


@pytest.mark.parametrize("lang", ["en", "fil", "zh"])
@pytest.mark.parametrize("width, height, rotate", SIZES)
def test_every_screen_fits_every_panel_in_every_language(fonts, lang, width, height, rotate):
    w, h = (height, width) if rotate in (90, 270) else (width, height)
    px_per_mm = max(width, height) / 154
    for name, k in _every_view():
        k.lang = lang
        view = k.view()
        placed = layout.place(view, w, h, fonts.measure, px_per_mm)
        where = f"{name} in {lang} at {width}x{height}"
        assert not placed.overflow, f"{where}: left off {placed.overflow}"
        for item in placed.items:
            b = item.box
            assert b.x >= 0 and b.y >= 0 and b.x + b.w <= w and b.y + b.h <= h, f"{where}: {item} off screen"
            if item.kind == "button":
                assert b.h >= max(52, 10 * px_per_mm) - 1 and b.w >= 52, f"{where}: {item.text} too small"
                assert fonts.measure(item.text, item.px) <= b.w, f"{where}: {item.text} wider than its button"
            if item.kind == "text":
                assert fonts.measure(item.text, item.px) <= b.w + 1, f"{where}: {item.text!r} runs over"
                assert not fonts.missing(item.text), f"{where}: no glyph for {fonts.missing(item.text)}"
                if "kWh" in item.text or "₱" in item.text and item.bold:
                    assert item.px >= 34 or not item.bold, f"{where}: money too small"
        buttons = [i for i in placed.items if i.kind == "button"]
        for i, a in enumerate(buttons):  # no two targets overlap: a touch names one button
            for c in buttons[i + 1:]:
                assert not (a.box.x < c.box.x + c.box.w and c.box.x < a.box.x + a.box.w and
                            a.box.y < c.box.y + c.box.h and c.box.y < a.box.y + a.box.h), f"{where}: overlap"


@pytest.mark.parametrize("rotate", [0, 90, 180, 270])
def test_touch_is_turned_with_the_screen(rotate):
    panel = (800, 480)
    logical = (480, 800) if rotate in (90, 270) else (800, 480)
    import pygame

    surf = pygame.Surface(logical)
    surf.fill((0, 0, 0))
    surf.set_at((100, 30), (255, 0, 0))  # a mark at logical (100, 30)
    turned = pygame.transform.rotate(surf, -rotate)
    assert turned.get_size() == panel
    [(px, py)] = [(x, y) for x in range(panel[0]) for y in range(panel[1]) if turned.get_at((x, y))[0] == 255]
    assert layout.to_logical(px, py, rotate, *panel) == (100, 30)


@pytest.mark.parametrize("width, height, rotate", SIZES)
def test_every_screen_drawn_and_saved(fonts, width, height, rotate):
    """Each screen in each language at this panel size, drawn by the real shell and saved for people to look at
    (test-artifacts/kiosk/screens/): none blank, the Chinese drawn in CJK glyphs."""
    import pygame
    from browser import ARTIFACTS

    from kiosk_ui.shell import Shell

    folder = ARTIFACTS / "kiosk" / "screens"
    folder.mkdir(parents=True, exist_ok=True)

    class NoClient:
        out = None

        def send(self, request):
            pass

    for lang in ("en", "fil", "zh"):
        for name, k in _every_view():
            k.lang = lang
            shell = Shell(k, NoClient(), width=width, height=height, rotate=rotate, fullscreen=False)
            shell._draw(k.view())
            path = folder / f"{width}x{height}r{rotate}-{lang}-{name}.png"
            pygame.image.save(shell.display, str(path))
            surf = pygame.image.load(str(path))
            assert surf.get_size() == (width, height)
            colours = {tuple(surf.get_at((x, y))) for x in range(0, width, 5) for y in range(0, height, 5)}
            assert len(colours) > 3, f"{path.name} is blank"


def _luminance(rgb: tuple) -> float:
    def part(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = rgb[:3]
    return 0.2126 * part(r) + 0.7152 * part(g) + 0.0722 * part(b)


def test_every_colour_pair_has_a_contrast_of_at_least_4_5():
    from kiosk_ui import shell

    pairs = [(shell.FG, shell.BG), (shell.BUTTON_FG, shell.BUTTON_BG), (shell.MAIN_FG, shell.MAIN_BG),
             (shell.TONES["alert"], shell.BAR_BG)] + [(tone, shell.BG) for tone in shell.TONES.values()]
    for fg, bg in pairs:
        hi, lo = sorted((_luminance(fg), _luminance(bg)), reverse=True)
        assert (hi + 0.05) / (lo + 0.05) >= 4.5, (fg, bg)
