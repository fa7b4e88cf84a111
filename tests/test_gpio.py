"""GPIO feedback (`edge.gpio.Feedback`) on gpiozero's MockFactory: which pin does what, for how long.

Each mock pin keeps its history in `.states` (PinState(timestamp = seconds since the previous change,
state)); the patterns run with shortened `Timings` so the suite stays fast.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterator

import pytest
from conftest import wait_until

gpiozero = pytest.importorskip("gpiozero")
from gpiozero import Device  # noqa: E402
from gpiozero.exc import PinFactoryFallback  # noqa: E402
from gpiozero.pins.mock import MockFactory  # noqa: E402

from edge.config import GpioConfig  # noqa: E402
from edge.gpio import Feedback, Timings  # noqa: E402

FAST = Timings(led=0.2, short_beep=0.04, long_beep=0.12, blink=0.03)
GREEN, RED, BUZZER, RELAY = 17, 27, 22, 23
SLACK = 0.25  # a loaded 2-core machine runs threads late, never early


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.close()


@pytest.fixture
def feedback(factory: MockFactory) -> Iterator[Feedback]:
    fb = Feedback(GpioConfig(enabled=True, green_led=GREEN, red_led=RED, buzzer=BUZZER, relay=RELAY,
                             relay_seconds=0.15), pin_factory=factory, timings=FAST)
    yield fb
    fb.close()


def states(factory: MockFactory, pin: int) -> list[bool]:
    return [s.state for s in factory.pin(pin).states]


def on_time(factory: MockFactory, pin: int) -> float:
    """How long the pin was high in a single False → True → False pulse."""
    history = factory.pin(pin).states
    assert [s.state for s in history] == [False, True, False], history
    return history[2].timestamp


def settled(factory: MockFactory, *pins: int) -> Callable[[], bool]:
    return lambda: all(factory.pin(p).states[-1].state is False and len(factory.pin(p).states) > 1
                       for p in pins)


def test_default_timings_are_the_specified_ones() -> None:
    t = Timings()
    assert (t.led, t.short_beep, t.long_beep) == (1.5, 0.1, 0.6)


def test_accepted_is_green_and_a_short_beep(factory: MockFactory, feedback: Feedback) -> None:
    assert feedback.enabled
    feedback.accepted()
    wait_until(lambda: factory.pin(GREEN).state is True)
    wait_until(settled(factory, GREEN, BUZZER))
    assert FAST.led <= on_time(factory, GREEN) < FAST.led + SLACK
    assert FAST.short_beep <= on_time(factory, BUZZER) < FAST.short_beep + SLACK
    assert states(factory, RED) == [False] and states(factory, RELAY) == [False]


def test_a_pattern_runs_in_the_background(factory: MockFactory, feedback: Feedback) -> None:
    """The caller (the reader loop) is not held for the pattern: it returns long before a 5 s light ends."""
    feedback.timings = Timings(led=5.0, short_beep=0.04, long_beep=0.12, blink=0.03)
    started = time.monotonic()
    feedback.accepted()
    assert time.monotonic() - started < 2.5
    wait_until(lambda: factory.pin(GREEN).state is True)


def test_refused_is_red_and_a_long_beep(factory: MockFactory, feedback: Feedback) -> None:
    feedback.refused()
    assert factory.pin(GREEN).state is False
    wait_until(lambda: factory.pin(RED).state is True)
    wait_until(settled(factory, RED, BUZZER))
    assert FAST.led <= on_time(factory, RED) < FAST.led + SLACK
    assert FAST.long_beep <= on_time(factory, BUZZER) < FAST.long_beep + SLACK
    assert states(factory, GREEN) == [False] and states(factory, RELAY) == [False]


def test_beeps_differ(factory: MockFactory) -> None:
    """The short beep is clearly shorter than the long one, with the real timings too (no waiting)."""
    t = Timings()
    assert t.long_beep >= 4 * t.short_beep and t.led > t.long_beep


def test_working_blinks_green_until_off(factory: MockFactory, feedback: Feedback) -> None:
    feedback.working(True)
    wait_until(lambda: len(factory.pin(GREEN).states) >= 7)  # three blinks and more
    feedback.working(False)
    assert factory.pin(GREEN).state is False
    history = states(factory, GREEN)
    assert history[:7] == [False, True, False, True, False, True, False]
    time.sleep(FAST.blink * 3)
    assert states(factory, GREEN) == history  # stopped for good
    feedback.working(False)  # again: nothing happens
    assert states(factory, GREEN) == history


def test_an_outcome_replaces_working(factory: MockFactory, feedback: Feedback) -> None:
    feedback.timings = Timings(led=5.0, short_beep=0.01, long_beep=0.01, blink=0.03)  # red stays on here
    feedback.working(True)
    wait_until(lambda: len(factory.pin(GREEN).states) >= 3)
    feedback.refused()
    assert factory.pin(GREEN).state is False
    wait_until(lambda: factory.pin(RED).state is True)
    before = len(factory.pin(GREEN).states)
    time.sleep(FAST.blink * 3)
    assert len(factory.pin(GREEN).states) == before  # the blinking stopped
    feedback.working(False)  # a late "done" does not cut the red pattern or touch green
    assert factory.pin(RED).state is True


def test_relay_pulse(factory: MockFactory, feedback: Feedback) -> None:
    feedback.relay_pulse()
    wait_until(lambda: factory.pin(RELAY).state is True)
    wait_until(settled(factory, RELAY))
    assert 0.15 <= on_time(factory, RELAY) < 0.15 + SLACK
    assert states(factory, GREEN) == [False] and states(factory, BUZZER) == [False]


def test_disabled_when_not_enabled(factory: MockFactory, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="edge.gpio"):
        fb = Feedback(GpioConfig(enabled=False), pin_factory=factory, timings=FAST)
    assert not fb.enabled
    assert [r.getMessage() for r in caplog.records] == ["GPIO feedback off: gpio.enabled is false"]
    fb.accepted(), fb.refused(), fb.working(True), fb.working(False), fb.relay_pulse(), fb.close()
    assert not factory.pins  # no pin was ever touched


def test_unfitted_pins_are_skipped(factory: MockFactory) -> None:
    fb = Feedback(GpioConfig(enabled=True, green_led=GREEN, red_led=0, buzzer=0, relay=0),
                  pin_factory=factory, timings=FAST)
    try:
        assert fb.enabled and fb.red is None and fb.buzzer is None and fb.relay is None
        assert {p.info.name for p in factory.pins.values()} == {"GPIO17"}
        fb.refused()  # nothing fitted for it: no error
        fb.relay_pulse()
        fb.accepted()
        wait_until(settled(factory, GREEN))
        assert FAST.led <= on_time(factory, GREEN)
    finally:
        fb.close()


def test_every_pin_zero_is_off(factory: MockFactory) -> None:
    fb = Feedback(GpioConfig(enabled=True, green_led=0, red_led=0, buzzer=0, relay=0), pin_factory=factory)
    assert not fb.enabled and not factory.pins
    fb.accepted()


def test_a_pin_used_twice_turns_feedback_off_naming_the_key(factory: MockFactory,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="edge.gpio"):
        fb = Feedback(GpioConfig(enabled=True, green_led=GREEN, red_led=RED, buzzer=GREEN), pin_factory=factory)
    assert not fb.enabled and fb.green is None and fb.red is None
    assert len(caplog.records) == 1 and caplog.records[0].getMessage().startswith(
        "GPIO feedback off: gpio.buzzer = 17:")
    fb.accepted(), fb.refused()  # no-ops
    again = Feedback(GpioConfig(enabled=True, green_led=GREEN, red_led=0, buzzer=0), pin_factory=factory)
    assert again.enabled  # the pins were released
    again.close()


def test_a_failing_part_does_not_stop_the_rest(factory: MockFactory, feedback: Feedback,
                                               monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_a: object, **_k: object) -> None:
        raise OSError("gpiochip went away")

    monkeypatch.setattr(feedback.buzzer, "beep", broken)
    with caplog.at_level(logging.WARNING, logger="edge.gpio"):
        feedback.accepted()
        feedback.accepted()
    wait_until(lambda: factory.pin(GREEN).state is True)
    assert len(caplog.records) == 1 and "buzzer failed" in caplog.records[0].getMessage()


def test_close_releases_and_silences(factory: MockFactory, feedback: Feedback) -> None:
    feedback.working(True)
    feedback.close()
    assert not feedback.enabled and feedback.green is None
    feedback.accepted(), feedback.working(True), feedback.relay_pulse()
    assert all(s is None for s in (feedback.red, feedback.buzzer, feedback.relay))


def _on_a_pi() -> bool:
    try:
        with open("/proc/device-tree/model", "rb") as f:
            return b"Raspberry Pi" in f.read()
    except OSError:
        return False


@pytest.mark.skipif(_on_a_pi(), reason="this is a Raspberry Pi: gpiozero finds a pin factory here")
def test_off_a_pi_is_one_line_and_no_ops(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(Device, "pin_factory", None)
    with caplog.at_level(logging.INFO, logger="edge.gpio"), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fb = Feedback(GpioConfig(enabled=True))
    assert not fb.enabled
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and messages[0].startswith("GPIO feedback off: no GPIO on this machine"), messages
    assert not [w for w in seen if issubclass(w.category, PinFactoryFallback)]
    fb.accepted(), fb.refused(), fb.working(True), fb.working(False), fb.relay_pulse(), fb.close()
