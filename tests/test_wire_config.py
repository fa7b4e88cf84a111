"""Frame parsing (with Hypothesis: nothing a charger sends can crash the controller) and config checking."""

from __future__ import annotations

import itertools
import json
import subprocess

import pytest
from conftest import SITEKEEPER
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import config
from edge.controller.authorize import Authorizer
from edge.controller.link import ChargerLink, LinkSettings, SendCharger
from edge.controller.wire import Call, CallError, CallResult, FrameError, parse
from edge.security import check_password, hash_password

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20)

frames = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    st.tuples(st.sampled_from([2, 3, 4, 5, "2"]), st.text(max_size=40) | st.integers(),
              st.sampled_from(["Heartbeat", "BootNotification", "StartTransaction", "TransactionEvent",
                               "StatusNotification", "MeterValues", "Authorize", "X"]),
              json_values).map(lambda t: json.dumps(list(t))),
)


@given(frames)
@settings(max_examples=400, deadline=None)
def test_parse_only_ever_raises_frame_error(text):
    try:
        frame = parse(text)
    except FrameError as e:
        assert e.reply("1.6").startswith("[4,") and e.reply("2.0.1").startswith("[4,")
    else:
        assert isinstance(frame, Call | CallResult | CallError)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
@pytest.mark.parametrize("standalone", [True, False])
@given(texts=st.lists(frames, min_size=1, max_size=8))
@settings(max_examples=100, deadline=None)
def test_controller_survives_anything_and_answers_every_call(version, standalone, texts):
    ids = itertools.count(1)
    link = ChargerLink("FUZZ", version, LinkSettings(standalone=standalone), Authorizer(), lambda prefer=None: next(ids))
    for text in texts:
        actions = link.from_charger(text)
        for a in actions:
            if isinstance(a, SendCharger):
                reply = json.loads(a.text)
                assert reply[0] in (2, 3, 4)
        try:
            frame = parse(text)
        except FrameError:
            continue
        if isinstance(frame, Call) and (standalone or link.state == "down"):
            replies = [json.loads(a.text) for a in actions if isinstance(a, SendCharger)]
            assert [r[1] for r in replies] == [frame.msg_id], "every CALL gets exactly one answer"


def test_1_6_float_precision_quirk_is_handled():
    from edge.controller.wire import validate_call

    call = parse(json.dumps([2, "1", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 21.4}]}}}]))
    validate_call(call, "1.6")  # 21.4 is a multiple of 0.1 (as a decimal, not as a float)


def test_passwords_are_hashed_and_checked():
    stored = hash_password("pw-1")
    assert "pw-1" not in stored and check_password("pw-1", stored) and not check_password("pw-2", stored)
    assert hash_password(stored) == stored
    assert not check_password("x", "garbage")


def test_defaults_start_a_standalone_site():
    cfg = config.load(None)
    assert cfg.upstream.mode == "standalone" and cfg.ocpp.port == 9000 and cfg.store.path == "sitekeeper.db"


@pytest.mark.parametrize("text, message", [
    ("[ocpp]\nprot = 1\n", "ocpp.prot: unknown key"),
    ("[ocpp]\nport = \"abc\"\n", "ocpp.port: expected an integer"),
    ("[ocpp]\nport = 70000\n", "ocpp.port: expected 1..65535"),
    ("[upstream]\nmode = \"cloud\"\n", "upstream.mode: expected 'standalone' or 'proxy'"),
    ("[upstream]\nmode = \"proxy\"\n", "upstream.url: proxy mode needs"),
    ("[uptream]\nmode = \"proxy\"\n", "uptream: unknown section"),
    ("[ocpp.chargers.CP1]\npasword = \"x\"\n", "ocpp.chargers.CP1.pasword: unknown key"),
    ("[ocpp]\nsecurity_profile = 2\n", "ocpp.tls_cert: security profile 2 needs"),
    ("[ocpp]\nallow_unknown_chargers = \"yes\"\n", "ocpp.allow_unknown_chargers: expected true or false"),
    ("not toml at all [", "not valid TOML"),
    ("[pay]\nprovider = \"stripe\"\n", "pay.provider: expected ''"),
    ("[pay]\nprovider = \"paymongo\"\n", "pay.paymongo.secret_key: QR Ph through PayMongo needs"),
    ("[pay.paymongo]\nsecret = \"x\"\n", "pay.paymongo.secret: unknown key"),
    ("[pay]\namounts = \"100, abc\"\n", "pay.amounts: "),
    ("[pay]\namounts = \"5000.00\"\n", "pay.amounts: 5000.00 is outside pay.min_amount..pay.max_amount"),
    ("[pay]\npublic_url = \"192.168.1.10\"\n", "pay.public_url: expected an http:// or https:// address"),
    ("[pay]\nstart_timeout = 5\n", "pay.start_timeout: expected 10..600 seconds"),
    ("[site]\nmax_current_a = 4\n", "site.max_current_a: expected 0"),
    ("[ocpp.chargers.CP1]\nmax_current_a = \"16\"\n", "ocpp.chargers.CP1.max_current_a: expected a number"),
    ("[ocpp.chargers.CP1]\ncost_messages = 1\n", "ocpp.chargers.CP1.cost_messages: expected true or false"),
])
def test_bad_config_names_the_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        config.load(path)


def test_bad_config_stops_start_up_with_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[web]\nprot = 1\n")
    out = subprocess.run([SITEKEEPER, "--config", str(path), "run"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == ["sitekeeper: config: web.prot: unknown key (known: host, port, tls_cert, tls_key, metrics_token)"]
    assert not (tmp_path / "sitekeeper.db").exists()


@pytest.mark.parametrize("text, message", [
    ('[tariff]\nper_kwh = "fifteen"\n', "tariff.per_kwh"),
    ('[billing]\nmax_hold = "-5"\n', "billing.max_hold"),
    ('[site]\ntimezone = "Mars/Olympus"\n', "site.timezone: unknown time zone"),
])
def test_bad_billing_keys_stop_start_up_with_one_line(tmp_path, text, message):
    """Billing's own keys are checked by billing (config knows no money rules), before anything starts."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = subprocess.run([SITEKEEPER, "--config", str(path), "run"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"sitekeeper: config: {message}"), lines
    assert not (tmp_path / "sitekeeper.db").exists()


def test_without_a_store_path_a_service_keeps_its_database_in_its_state_directory(tmp_path, monkeypatch):
    """The default once put the database beside the config (/etc/sitekeeper, read-only under the unit)."""
    from edge.config import load

    cfg_file = tmp_path / "etc" / "sitekeeper.toml"
    cfg_file.parent.mkdir()
    cfg_file.write_text('[site]\nid = "s1"\n')
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert load(cfg_file).store.path == str(tmp_path / "etc" / "sitekeeper.db")
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    assert load(cfg_file).store.path == str(tmp_path / "state" / "site.db")
    assert load(None).store.path == str(tmp_path / "state" / "site.db")
    cfg_file.write_text('[site]\nid = "s1"\n[store]\npath = "/data/x.db"\n')
    assert load(cfg_file).store.path == "/data/x.db", "a path the owner gave wins"
