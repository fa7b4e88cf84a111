"""GPIO feedback on the real Pi: each LED blinks, the buzzer sounds, the relay clicks, and the two outcome
patterns run; the person confirms each (y/n through the TTY). Without a TTY the parts still run, then skip.
Stop the edge service first (`sudo systemctl stop sitekeeper-edge`): it holds the same pins.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hwkit import Person, confirm, require_gpio

from edge.config import Config
from edge.gpio import Feedback


@pytest.fixture(scope="module")
def feedback(request: pytest.FixtureRequest) -> Iterator[Feedback]:
    require_gpio()  # before the config: "not a Pi" is the reason that matters most
    site_config: Config = request.getfixturevalue("site_config")
    if not site_config.gpio.enabled:
        pytest.skip("gpio.enabled is false in the site config")
    fb = Feedback(site_config.gpio)
    if not fb.enabled:
        pytest.skip(f"GPIO feedback is off: {fb.reason} (is the sitekeeper-edge service holding the pins?)")
    yield fb
    fb.close()


def say(person: Person | None, text: str) -> None:
    if person is None:
        print(text)
    else:
        person.say(text)


@pytest.mark.parametrize("part", ["green", "red"])
def test_led_blinks(feedback: Feedback, person_or_none: Person | None, part: str) -> None:
    pin = getattr(feedback.cfg, f"{part}_led")
    if getattr(feedback, part) is None:
        pytest.skip(f"no {part} LED fitted (gpio.{part}_led = 0)")
    say(person_or_none, f"\n>>> Watch the {part} LED (GPIO{pin}): it blinks 3 times.")
    getattr(feedback, part).blink(on_time=0.4, off_time=0.4, n=3, background=False)
    confirm(person_or_none, f"Did the {part} LED blink 3 times?")


def test_buzzer_sounds(feedback: Feedback, person_or_none: Person | None) -> None:
    if feedback.buzzer is None:
        pytest.skip("no buzzer fitted (gpio.buzzer = 0)")
    say(person_or_none, f"\n>>> Listen (buzzer on GPIO{feedback.cfg.buzzer}): a short beep, then a long one.")
    feedback.buzzer.beep(on_time=feedback.timings.short_beep, off_time=0.8, n=1, background=False)
    feedback.buzzer.beep(on_time=feedback.timings.long_beep, off_time=0.2, n=1, background=False)
    confirm(person_or_none, "Did you hear a short beep, then a long one?")


def test_relay_pulses(feedback: Feedback, person_or_none: Person | None) -> None:
    if feedback.relay is None:
        pytest.skip("no relay fitted (gpio.relay = 0)")
    seconds = feedback.cfg.relay_seconds
    say(person_or_none, f"\n>>> The relay (GPIO{feedback.cfg.relay}) switches on for {seconds:g} s, then off.")
    feedback.relay_pulse()
    time.sleep(seconds + 0.5)
    assert not feedback.relay.is_active
    confirm(person_or_none, f"Did the relay switch on and, {seconds:g} s later, off again?")


def test_outcome_patterns(feedback: Feedback, person_or_none: Person | None) -> None:
    t = feedback.timings
    say(person_or_none, "\n>>> 'accepted' (green + short beep), then 'refused' (red + long beep), then "
        "'working' (green blinking for 2 s).")
    feedback.accepted()
    time.sleep(t.led + 0.8)
    feedback.refused()
    time.sleep(t.led + 0.8)
    feedback.working(True)
    time.sleep(2.0)
    feedback.working(False)
    confirm(person_or_none, "Did you see green + a short beep, then red + a long beep, then green blinking?")
