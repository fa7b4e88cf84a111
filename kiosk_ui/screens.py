"""The kiosk's screens as a plain object fed events, like the OCPP controller: no pygame, no sockets, no clock
of its own. The shell (`kiosk_ui.shell`) feeds it what happened and carries out the requests it returns;
`view()` says what to draw.

Events: `site(state)` (the edge's /api/kiosk/state, every couple of seconds), `edge_down()` (it could not be
asked), `tap(event)` (the kiosk reader's tap from the event stream), `press(button)` (a touch on a button the
view named), `answer(request, result)` (what a request came back with), `tick(now)`.

Screens:

    idle ──tap──► card ──connector──► starting ──session seen──► charging ──Stop──► stop_tap ──tap──► stopping
     │  └─tap refused─► refused                                      │ ▲                                  │
     │                                                               │ └── a tap of the card while charging  │
     └─Pay by QR─► qr_choose ──connector──► qr ──session seen──► charging (stop from the car or the phone)  │
                                                 session ended ─────────────────────────► receipt ◄─────────┘

Every screen but idle goes back to idle after its time, with a warning `WARN` seconds before and a button to
have more; nothing personal stays on screen then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

WARN = 20.0  # seconds of warning before a screen times out (at least 20 s to ask for more)
TIMEOUTS = {"card": 60.0, "refused": 30.0, "starting": 150.0, "charging": 90.0, "stop_tap": 45.0,
            "stopping": 60.0, "receipt": 60.0, "qr_choose": 60.0, "qr": 300.0}
USABLE = ("Available", "Preparing", None)  # connector states a new session may start on (None: not told yet)


@dataclass(frozen=True)
class Request:
    kind: str  # "start", "stop" (POST with tap_ref, charger, connector) or "receipt" (GET, tx_id)
    args: dict


@dataclass(frozen=True)
class Text:
    text: str
    size: str = "body"  # "title", "big" (money and kWh), "body", "small"
    tone: str = "normal"  # "normal", "ok", "alert"


@dataclass(frozen=True)
class Button:
    id: str
    label: str
    main: bool = False


@dataclass
class View:
    screen: str
    title: str
    texts: list[Text] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)
    languages: list[Button] = field(default_factory=list)  # only on the first screen
    qr: str | None = None  # a URL to show as a QR code
    banner: str | None = None
    warning: Text | None = None


LANGUAGES = {"en": "English", "fil": "Filipino", "zh": "中文"}


def _state_word(state: str | None) -> str:
    return "state." + (state or "unknown").lower()


class Kiosk:
    def __init__(self, t: Callable[..., str] | None = None, lang: str = "en", translators: dict | None = None):
        """`translators`: language → `t(key, **values)`; the kiosk starts in `lang`."""
        self.translators = translators or {}
        self.lang = lang
        self._t = t
        self.screen = "idle"
        self.site_state: dict | None = None
        self.offline = False
        self.card: dict | None = None  # the tap event of the driver at the kiosk
        self.refusal = ""
        self.connector: tuple[str, int] | None = None
        self.tx_id: int | None = None
        self.by_qr = False
        self.receipt: dict | None = None
        self.now = 0.0
        self.deadline: float | None = None
        self.message = ""

    # -- helpers -------------------------------------------------------------------------------------------
    def t(self, key: str, **values: object) -> str:
        fn = self.translators.get(self.lang) or self._t
        return fn(key, **values) if fn else key

    def _go(self, screen: str) -> None:
        self.screen = screen
        self.message = ""
        self.deadline = None if screen == "idle" else self.now + TIMEOUTS[screen]
        if screen == "idle":
            self.card, self.connector, self.tx_id, self.receipt, self.by_qr, self.refusal = \
                None, None, None, None, False, ""

    def _connectors(self) -> list[dict]:
        return list((self.site_state or {}).get("connectors") or [])

    def _mine(self) -> dict | None:
        if self.connector is None:
            return None
        return next((c for c in self._connectors() if (c["charger"], c["connector"]) == self.connector), None)

    def _free(self) -> list[dict]:
        """The connectors a new session may start on: connected, available, nobody charging or paying there."""
        return [c for c in self._connectors() if c.get("connected") and c.get("state") in USABLE
                and not c.get("session") and not c.get("pay_state")]

    # -- events ----------------------------------------------------------------------------------------------
    def site(self, state: dict, now: float) -> list[Request]:
        """The edge's state: follow the driver's connector (its session starts, or ends)."""
        self.now, self.site_state, self.offline = now, state, False
        mine = self._mine()
        session = (mine or {}).get("session")
        if self.screen in ("starting", "qr") and session:
            self.tx_id = session["tx_id"]
            self.by_qr = self.screen == "qr"
            self._go("charging")
        elif self.screen in ("charging", "stop_tap", "stopping") and self.tx_id is not None and \
                (session is None or session["tx_id"] != self.tx_id):
            tx = self.tx_id
            self._go("receipt")
            self.tx_id = tx
            return [Request("receipt", {"tx_id": tx})]
        return []

    def edge_down(self, now: float) -> list[Request]:
        self.now, self.offline = now, True
        return []

    def tap(self, event: dict, now: float) -> list[Request]:
        """A tap on the kiosk's reader."""
        self.now = now
        if self.screen == "stop_tap" and self.connector is not None:
            self._go("stopping")
            return [Request("stop", {"tap_ref": event.get("tap_ref"), "charger": self.connector[0],
                                     "connector": self.connector[1]})]
        if self.screen not in ("idle", "card", "refused", "receipt", "charging", "qr_choose"):
            return []  # in the middle of a start or a QR payment: a stray tap changes nothing
        self.card = event
        if event.get("result") != "accepted":
            self.refusal = self._why(event)
            self._go("refused")
            self.card = event
            return []
        running = event.get("running")
        if running:
            self.connector = (running["charger_id"], running["connector_id"])
            mine = self._mine()
            self._go("charging")
            self.card = event
            self.tx_id = ((mine or {}).get("session") or {}).get("tx_id")
            return []
        self._go("card")
        self.card = event
        return []

    def _why(self, event: dict) -> str:
        """A refusal in plain words (the edge's `reason`: blocked, expired, low_balance, not_here)."""
        if not event.get("known"):
            return self.t("k.refused.unknown")
        reason = event.get("reason")
        if reason == "low_balance":
            return self.t("k.refused.balance", minimum=(self.site_state or {}).get("min_start", ""),
                          balance=event.get("available", ""))
        if reason in ("blocked", "expired", "not_here"):
            return self.t(f"k.refused.{reason}")
        return self.t("k.refused.other")

    def press(self, button: str, now: float) -> list[Request]:
        self.now = now
        if button.startswith("lang:"):
            if button[5:] in LANGUAGES:
                self.lang = button[5:]
            return []
        if button == "more":
            if self.deadline is not None:
                self.deadline = now + TIMEOUTS[self.screen]
            return []
        if button in ("home", "done", "cancel"):
            self._go("idle")
            return []
        if button == "qr":
            self._go("qr_choose")
            return []
        if button == "stop" and self.screen == "charging" and not self.by_qr:
            self._go("stop_tap")
            return []
        if button == "back" and self.screen == "stop_tap":
            self._go("charging")
            return []
        if button.startswith("connector:"):
            charger, _, number = button[len("connector:"):].rpartition(":")
            self.connector = (charger, int(number))
            if self.screen == "card" and self.card is not None:
                self._go("starting")
                return [Request("start", {"tap_ref": self.card.get("tap_ref"), "charger": charger,
                                          "connector": int(number)})]
            if self.screen == "qr_choose":
                self._go("qr")
        return []

    def answer(self, request: Request, result: dict | None, now: float) -> list[Request]:
        """What the edge answered to a request (None: it could not be reached)."""
        self.now = now
        if request.kind == "receipt" and self.screen == "receipt":
            self.receipt = result
        elif request.kind in ("start", "stop") and (result is None or result.get("result") == "refused"):
            reason = (result or {}).get("reason")
            self.refusal = self.t("k.refused.tap_again") if reason == "tap_again" else \
                self.t("k.refused.not_yours") if reason == "not_yours" else \
                self.t("k.refused.charger") if request.kind == "start" else self.t("k.refused.other")
            back_to = "refused" if request.kind == "start" else "charging"
            self._go(back_to)
            if back_to == "charging":
                self.message = self.refusal
        return []

    def tick(self, now: float) -> list[Request]:
        self.now = now
        if self.deadline is not None and now >= self.deadline:
            self._go("idle")
        return []

    # -- what to draw --------------------------------------------------------------------------------------
    def _prices(self) -> list[Text]:
        p = (self.site_state or {}).get("prices")
        if not p:
            return []
        out = [Text(self.t("k.price.per_kwh", price=p["per_kwh"]))]
        if p.get("band_now"):
            b = p["band_now"]
            out = [Text(self.t("k.price.band_now", price=b["per_kwh"], start=b["start"], end=b["end"]))]
        out += [Text(self.t("k.price.others", minute=p["per_minute"], fee=p["session_fee"], idle=p["idle_per_minute"],
                            grace=p["idle_grace_minutes"]), "small")]
        return out

    def view(self) -> View:
        t = self.t
        s = self.site_state or {}
        banner = t("k.offline") if self.offline else t("k.uplink_away") if s.get("provider_away") \
            or s.get("upstream_away") else t("k.clock_unsynced") if s.get("clock_synced") is False else None
        v = View(self.screen, s.get("site") or "", banner=banner)
        getattr(self, f"_view_{self.screen}")(v)
        if self.deadline is not None and self.deadline - self.now <= WARN:  # one button then: more time
            v.warning = Text(t("k.timeout", seconds=max(0, int(self.deadline - self.now + 0.999))), "body", "alert")
            v.buttons = [Button("more", t("k.more_time"), main=True)]
        return v

    def _connector_name(self, c: dict | tuple) -> str:
        charger, number = (c["charger"], c["connector"]) if isinstance(c, dict) else c
        return self.t("k.connector", charger=charger, n=number)

    def _view_idle(self, v: View) -> None:
        t = self.t
        v.title = v.title or t("k.title")
        v.languages = [Button(f"lang:{code}", name) for code, name in LANGUAGES.items()]
        v.texts.append(Text(t("k.tap_card"), "title"))
        v.texts += self._prices()
        for c in self._connectors():
            word = t(_state_word(c.get("state") if c.get("connected") else "unavailable"))
            v.texts.append(Text(t("k.connector_state", name=self._connector_name(c), state=word), "body",
                                "ok" if c.get("state") == "Available" and c.get("connected") else "normal"))
        if (self.site_state or {}).get("pay"):
            v.buttons.append(Button("qr", t("k.pay_by_qr"), main=True))

    def _view_card(self, v: View) -> None:
        t, card = self.t, self.card or {}
        first = (card.get("name") or "").split(" ")[0]
        v.title = t("k.hello", name=first) if first else t("k.hello_anon")
        v.texts.append(Text(t("k.card", card=card.get("uid_masked", ""))))
        if card.get("kind") == "commercial":
            v.texts.append(Text(t("k.available", amount=card.get("available", "")), "big"))
        else:
            v.texts.append(Text(t("k.personal"), "body", "ok"))
        v.texts += self._prices()
        free = self._free()
        v.texts.append(Text(t("k.choose") if free else t("k.none_free"), "body", "normal" if free else "alert"))
        v.buttons += [Button(f"connector:{c['charger']}:{c['connector']}", self._connector_name(c)) for c in free]
        v.buttons.append(Button("cancel", t("k.cancel")))

    def _view_refused(self, v: View) -> None:
        v.title = self.t("k.refused.title")
        if self.card and self.card.get("uid_masked"):
            v.texts.append(Text(self.t("k.card", card=self.card["uid_masked"])))
        v.texts.append(Text(self.refusal, "body", "alert"))
        v.buttons.append(Button("done", self.t("k.ok"), main=True))

    def _view_starting(self, v: View) -> None:
        v.title = self.t("k.plug_in")
        if self.connector:
            v.texts.append(Text(self._connector_name(self.connector), "big"))
        v.texts.append(Text(self.t("k.waiting_charger")))
        v.buttons.append(Button("home", self.t("k.back_home")))

    def _view_charging(self, v: View) -> None:
        t = self.t
        v.title = t("k.charging")
        session = (self._mine() or {}).get("session") or {}
        if self.connector:
            v.texts.append(Text(self._connector_name(self.connector)))
        v.texts.append(Text(t("k.energy", kwh=f"{(session.get('energy_wh') or 0) / 1000:.2f}"), "big"))
        v.texts.append(Text(t("k.cost", cost=session.get("cost", "")), "big"))
        power = session.get("power_w")
        v.texts.append(Text(t("k.time_power", minutes=session.get("minutes", 0),
                              power="—" if power is None else f"{power / 1000:.1f}")))
        if self.message:
            v.texts.append(Text(self.message, "body", "alert"))
        if self.by_qr:
            v.texts.append(Text(t("k.stop_elsewhere"), "small"))
        else:
            v.buttons.append(Button("stop", t("k.stop"), main=True))
        v.buttons.append(Button("home", t("k.back_home")))

    def _view_stop_tap(self, v: View) -> None:
        v.title = self.t("k.stop_tap")
        v.texts.append(Text(self.t("k.stop_tap_how")))
        v.buttons.append(Button("back", self.t("k.keep_charging")))

    def _view_stopping(self, v: View) -> None:
        v.title = self.t("k.stopping")
        v.texts.append(Text(self.t("k.unplug")))

    def _view_receipt(self, v: View) -> None:
        t, r = self.t, self.receipt
        v.title = t("k.thanks")
        if r:
            v.texts.append(Text(t("k.energy", kwh=f"{(r.get('energy_wh') or 0) / 1000:.2f}"), "big"))
            v.texts.append(Text(t("k.paid", cost=r.get("cost", "")), "big"))
            v.texts.append(Text(t("k.minutes", minutes=r.get("minutes", 0))))
            if r.get("balance") is not None:
                v.texts.append(Text(t("k.balance", amount=r["balance"])))
            if r.get("receipt_url"):
                v.qr = r["receipt_url"]
                v.texts.append(Text(t("k.receipt_qr", code=r["receipt_url"].rsplit("/", 1)[-1]), "small"))
        else:
            v.texts.append(Text(t("k.receipt_wait")))
        v.buttons.append(Button("done", t("k.done"), main=True))

    def _view_qr_choose(self, v: View) -> None:
        v.title = self.t("k.pay_by_qr")
        free = self._free()
        v.texts.append(Text(self.t("k.choose") if free else self.t("k.none_free"), "body",
                            "normal" if free else "alert"))
        v.buttons += [Button(f"connector:{c['charger']}:{c['connector']}", self._connector_name(c)) for c in free]
        v.buttons.append(Button("cancel", self.t("k.cancel")))

    def _view_qr(self, v: View) -> None:
        t = self.t
        mine = self._mine() or {}
        v.title = t("k.scan", name=self._connector_name(self.connector)) if self.connector else t("k.pay_by_qr")
        v.qr = mine.get("pay_url")
        v.texts += self._prices()
        step = mine.get("pay_state")
        v.texts.append(Text(t(f"k.qr.{step or 'open'}"), "body", "ok" if step == "starting" else "normal"))
        if not (self.site_state or {}).get("qrph"):
            v.texts.append(Text(t("k.qr.wallet_only"), "small"))
        v.buttons.append(Button("cancel", t("k.cancel")))
