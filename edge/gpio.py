"""GPIO feedback at the kiosk: green and red LEDs, a buzzer and an optional relay, through gpiozero.

`Feedback(cfg.gpio)` drives the parts on the configured BCM pins (a pin of 0 is "not fitted" and skipped):

- `accepted()`: green LED on for 1.5 s and a short beep (0.1 s);
- `refused()`: red LED on for 1.5 s and a long beep (0.6 s);
- `working(on)`: green LED blinking while on (e.g. while a charger is asked to start);
- `relay_pulse()`: the relay on for `gpio.relay_seconds` (a door strike, a contactor's enable input);
- `close()`: release the pins.

Every method returns at once: the patterns run on gpiozero's background blink threads. gpiozero's pin
factories cover RPi.GPIO / lgpio, so the same code runs on a Pi 4 and a Pi 5; tests pass gpiozero's
`MockFactory` as `pin_factory`. With `gpio.enabled = false`, off a Pi (gpiozero finds no pin factory), or
with a bad pin in the config, one clear log line says so and every method is a no-op: feedback never
stops the edge. The relay is driven active-high (on = pin high).
"""

from __future__ import annotations

import logging
import threading
import warnings
from dataclasses import dataclass
from typing import Any

from edge.config import GpioConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Timings:
    """How long each pattern lasts, in seconds (tests shorten them)."""

    led: float = 1.5  # accepted / refused LED
    short_beep: float = 0.1  # accepted
    long_beep: float = 0.6  # refused
    blink: float = 0.25  # working: on, then off, this long each


class Feedback:
    """LEDs, buzzer and relay for the outcome of a tap. Safe to call from any thread; never raises."""

    def __init__(self, cfg: GpioConfig, pin_factory: Any = None, timings: Timings | None = None):
        self.cfg = cfg
        self.timings = timings or Timings()
        self.green: Any = None  # gpiozero.LED
        self.red: Any = None  # gpiozero.LED
        self.buzzer: Any = None  # gpiozero.Buzzer
        self.relay: Any = None  # gpiozero.DigitalOutputDevice
        self.enabled = False  # at least one part is driven
        self.reason = ""  # why not, when not (the log line)
        self._working = False
        self._lock = threading.Lock()
        self._failed_once = False
        if not cfg.enabled:
            self.reason = "gpio.enabled is false"
            log.info("GPIO feedback off: %s", self.reason)
            return
        try:
            self._open(pin_factory)
        except _Off as e:
            self._close_devices()
            self.reason = str(e)
            log.warning("GPIO feedback off: %s", self.reason)
            return
        parts = (("green LED", self.green, cfg.green_led), ("red LED", self.red, cfg.red_led),
                 ("buzzer", self.buzzer, cfg.buzzer), ("relay", self.relay, cfg.relay))
        fitted = [f"{what} GPIO{pin}" for what, dev, pin in parts if dev is not None]
        if not fitted:
            self.reason = "gpio.enabled is true but every pin is 0 (not fitted)"
            log.info("GPIO feedback off: %s", self.reason)
            return
        self.enabled = True
        factory = type(next(dev for _, dev, _ in parts if dev is not None).pin_factory).__name__
        log.info("GPIO feedback on (%s) via %s", ", ".join(fitted), factory)

    # -- patterns ---------------------------------------------------------------------------------------

    def accepted(self) -> None:
        """Green LED on ~1.5 s and a short beep."""
        t = self.timings
        with self._lock:
            self._working = False
            self._do("red", lambda d: d.off())
            self._do("green", lambda d: d.blink(on_time=t.led, off_time=0, n=1, background=True))
            self._do("buzzer", lambda d: d.beep(on_time=t.short_beep, off_time=0, n=1, background=True))

    def refused(self) -> None:
        """Red LED on ~1.5 s and a long beep."""
        t = self.timings
        with self._lock:
            self._working = False
            self._do("green", lambda d: d.off())
            self._do("red", lambda d: d.blink(on_time=t.led, off_time=0, n=1, background=True))
            self._do("buzzer", lambda d: d.beep(on_time=t.long_beep, off_time=0, n=1, background=True))

    def working(self, on: bool) -> None:
        """Green LED blinking while on; off again (only if still blinking for this) when on is false."""
        t = self.timings
        with self._lock:
            if on:
                self._working = True
                self._do("red", lambda d: d.off())
                self._do("green", lambda d: d.blink(on_time=t.blink, off_time=t.blink, n=None, background=True))
            elif self._working:
                self._working = False
                self._do("green", lambda d: d.off())

    def relay_pulse(self) -> None:
        """The relay on for `gpio.relay_seconds`, then off."""
        seconds = self.cfg.relay_seconds
        with self._lock:
            self._do("relay", lambda d: d.blink(on_time=seconds, off_time=0, n=1, background=True))

    def close(self) -> None:
        """Stop every pattern and release the pins; the methods are no-ops afterwards."""
        with self._lock:
            if self.enabled:
                self.reason = "closed"
            self.enabled = False
            self._close_devices()

    # -- inside ------------------------------------------------------------------------------------------

    def _open(self, pin_factory: Any) -> None:
        try:
            import gpiozero
            from gpiozero.exc import BadPinFactory, PinFactoryFallback
        except ImportError as e:
            raise _Off(f"gpiozero is not installed ({e})") from None
        cfg = self.cfg
        parts = (("green", "green_led", gpiozero.LED), ("red", "red_led", gpiozero.LED),
                 ("buzzer", "buzzer", gpiozero.Buzzer), ("relay", "relay", gpiozero.DigitalOutputDevice))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PinFactoryFallback)  # one line from us instead of one per factory
            for attr, key, kind in parts:
                pin = getattr(cfg, key)
                if pin == 0:
                    continue
                try:
                    device = kind(pin, active_high=True, initial_value=False, pin_factory=pin_factory)
                except BadPinFactory as e:
                    raise _Off(f"no GPIO on this machine (gpiozero: {e}); set gpio.enabled = false to say "
                               "so") from None
                except Exception as e:  # noqa: BLE001 - a pin in use, a pin that does not exist, no access
                    raise _Off(f"gpio.{key} = {pin}: {type(e).__name__}: {e}") from None
                setattr(self, attr, device)

    def _do(self, attr: str, action: Any) -> None:
        device = getattr(self, attr)
        if device is None or not self.enabled:
            return
        try:
            action(device)
        except Exception as e:  # noqa: BLE001 - feedback must never stop a tap
            if not self._failed_once:
                log.warning("GPIO feedback: the %s failed (%s: %s); carrying on", attr, type(e).__name__, e)
                self._failed_once = True

    def _close_devices(self) -> None:
        for attr in ("green", "red", "buzzer", "relay"):
            device = getattr(self, attr)
            setattr(self, attr, None)
            if device is not None:
                try:
                    device.close()
                except Exception:  # noqa: BLE001
                    pass


class _Off(Exception):
    """Why feedback is off (the one log line)."""
