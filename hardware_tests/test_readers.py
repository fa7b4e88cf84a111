"""Card readers on the real machine: each configured pcsc/mfrc522 reader reads a card, a held card is one
tap, and two readers give the same UID for the same card. A person taps the cards (asked through the TTY).
"""

from __future__ import annotations

import time
from contextlib import ExitStack

import pytest
from hwkit import (
    HARDWARE_BACKENDS,
    Person,
    need_person,
    opened_reader,
    reader_config,
    wait_for_card,
    wait_for_no_card,
)

from edge.config import Config
from edge.money import normalise_uid
from edge.rfid import TapDetector


def test_reads_a_card(site_config: Config, reader_name: str | None, person_or_none: Person | None,
                      tap_timeout: float) -> None:
    rc = reader_config(site_config, reader_name)
    with opened_reader(reader_name, rc) as reader:
        person = need_person(person_or_none)
        person.say(f"\n>>> Reader {reader_name} ({rc.backend}): take any card away, then tap one "
                   f"(within {tap_timeout:.0f} s).")
        wait_for_no_card(reader, rc, tap_timeout)
        uid = wait_for_card(reader, rc, tap_timeout)
        assert uid is not None, f"reader {reader_name} saw no card within {tap_timeout:.0f} s"
        assert normalise_uid(uid) == uid
        person.say(f"    read UID {uid} ({len(uid) // 2} bytes)")


def test_a_held_card_is_one_tap(site_config: Config, reader_name: str | None, person_or_none: Person | None,
                                tap_timeout: float) -> None:
    rc = reader_config(site_config, reader_name)
    with opened_reader(reader_name, rc) as reader:
        person = need_person(person_or_none)
        person.say(f"\n>>> Reader {reader_name}: put a card on it and HOLD it there until told (about 5 s).")
        wait_for_no_card(reader, rc, tap_timeout)
        first = wait_for_card(reader, rc, tap_timeout)
        assert first is not None, f"reader {reader_name} saw no card within {tap_timeout:.0f} s"
        detector = TapDetector()
        taps = [detector.feed(first)]
        seen = empty = 0
        end = time.monotonic() + 4.0
        while time.monotonic() < end:
            uid = reader.poll()
            seen, empty = seen + (uid is not None), empty + (uid is None)
            taps.append(detector.feed(uid))
            time.sleep(rc.poll_interval)
        person.say(f"    done, take the card away ({seen} polls saw it, {empty} did not)")
        assert [t for t in taps if t] == [first], "a card held on the reader made more than one tap"


def test_same_uid_on_every_reader(site_config: Config, person_or_none: Person | None,
                                  tap_timeout: float) -> None:
    names = [n for n, rc in site_config.reader.items() if rc.backend in HARDWARE_BACKENDS]
    if len(names) < 2:
        pytest.skip(f"UID agreement needs two pcsc/mfrc522 readers in the config; it has {len(names)}")
    with ExitStack() as stack:
        readers = {name: stack.enter_context(opened_reader(name, site_config.reader[name])) for name in names}
        person = need_person(person_or_none)
        person.say("\n>>> Take ONE card and tap it on each reader in turn, as asked.")
        uids: dict[str, str] = {}
        for name, reader in readers.items():
            rc = site_config.reader[name]
            person.say(f">>> Now tap the same card on reader {name} ({rc.backend}).")
            wait_for_no_card(reader, rc, tap_timeout)
            uid = wait_for_card(reader, rc, tap_timeout)
            assert uid is not None, f"reader {name} saw no card within {tap_timeout:.0f} s"
            uids[name] = uid
            person.say(f"    {name}: {uid}")
    assert len(set(uids.values())) == 1, f"the readers disagree on the same card's UID: {uids}"
