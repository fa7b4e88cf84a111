"""The local controller as a plain object: every protocol rule tested without sockets or a database."""

from __future__ import annotations

import itertools
import json

from edge.controller.authorize import Authorizer
from edge.controller.link import (
    LIVE,
    REPLAYING,
    ChargerLink,
    CloseCharger,
    EdgeCallDone,
    Learned,
    LinkSettings,
    LinkState,
    Notice,
    Persist,
    QueueItem,
    ResetUpstream,
    SendCharger,
    SendUpstream,
)
from edge.controller.records import ChargerBoot, Dequeue, Enqueue, TxMap, TxStart


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(version: str = "1.6", *, standalone: bool = False, strict: bool = False, state: LinkState | None = None,
         offline_accept: bool = False, clock: Clock | None = None) -> ChargerLink:
    ids = itertools.count(1)
    return ChargerLink("CP1", version, LinkSettings(standalone=standalone, strict=strict, call_timeout=5),
                       Authorizer(offline_accept_unknown=offline_accept), lambda prefer=None: next(ids), state,
                       clock=clock or Clock())


def sent(actions, kind) -> list:
    return [json.loads(a.text) for a in actions if isinstance(a, kind)]


def persisted(actions) -> list[type]:
    return [type(op) for a in actions if isinstance(a, Persist) for op in a.ops]


def call(msg_id: str, action: str, payload: dict) -> str:
    return json.dumps([2, msg_id, action, payload])


START = {"connectorId": 1, "idTag": "TAG1", "meterStart": 100, "timestamp": "2026-01-01T00:00:00Z"}


def stop(tx: int) -> dict:
    return {"transactionId": tx, "meterStop": 900, "timestamp": "2026-01-01T01:00:00Z"}


def meter(tx: int) -> dict:
    return {"connectorId": 1, "transactionId": tx,
            "meterValue": [{"timestamp": "2026-01-01T00:30:00Z", "sampledValue": [{"value": "500"}]}]}


def live_link(version: str = "1.6", **kw) -> ChargerLink:
    link = make(version, **kw)
    assert link.upstream_up() == []
    assert link.state == LIVE
    return link


# -- standalone ---------------------------------------------------------------------------------------
def test_standalone_answers_and_persists_before_answering():
    link = make(standalone=True)
    actions = link.from_charger(call("1", "StartTransaction", START))
    assert isinstance(actions[0], Persist) and actions[0].wait and isinstance(actions[1], SendCharger)
    reply = sent(actions, SendCharger)[0]
    assert reply[:2] == [3, "1"] and reply[2]["transactionId"] == 1 and reply[2]["idTagInfo"]["status"] == "Accepted"
    assert persisted(actions) == [TxStart]
    assert sent(actions, SendUpstream) == []


def test_standalone_201_transaction_event_and_unsupported_action():
    link = make("2.0.1", standalone=True)
    ev = {"eventType": "Started", "timestamp": "2026-01-01T00:00:00Z", "triggerReason": "Authorized", "seqNo": 0,
          "transactionInfo": {"transactionId": "T1"}, "idToken": {"idToken": "AA", "type": "ISO14443"}}
    reply = sent(link.from_charger(call("1", "TransactionEvent", ev)), SendCharger)[0]
    assert reply == [3, "1", {"idTokenInfo": {"status": "Accepted"}}]
    reply = sent(link.from_charger(call("2", "SignCertificate", {"csr": "x"})), SendCharger)[0]
    assert reply == [3, "2", {"status": "Rejected"}]


# -- frames -------------------------------------------------------------------------------------------
def test_bad_frames_answered_with_version_codes():
    link16, link201 = make(standalone=True), make("2.0.1", standalone=True)
    assert sent(link16.from_charger("{oops"), SendCharger)[0][:3] == [4, "-1", "FormationViolation"]
    assert sent(link201.from_charger("{oops"), SendCharger)[0][:3] == [4, "-1", "FormatViolation"]
    assert sent(link201.from_charger("[2]"), SendCharger)[0][:3] == [4, "-1", "RpcFrameworkError"]
    assert sent(link16.from_charger(call("a", "StartTransaction", {**START, "connectorId": "x"})),
                SendCharger)[0][:3] == [4, "a", "TypeConstraintViolation"]
    assert sent(link16.from_charger(call("b", "StatusNotification",
                                         {"connectorId": 1, "errorCode": "NoError", "status": "Dancing"})),
                SendCharger)[0][:3] == [4, "b", "PropertyConstraintViolation"]
    # a bad CALLRESULT is never answered, only counted
    actions = link16.from_charger('[3, "zz", "not an object"]')
    assert [type(a) for a in actions] == [Notice] and actions[0].counter == "bad_frame"


def test_bad_frame_from_upstream_is_answered_upstream():
    link = live_link()
    actions = link.from_upstream("not json")
    assert sent(actions, SendUpstream)[0][:3] == [4, "-1", "FormationViolation"]
    assert sent(actions, SendCharger) == []


# -- proxy, upstream up ------------------------------------------------------------------------------
def test_live_forwards_original_text_and_reply():
    link = live_link()
    text = '[2,"h1","Heartbeat",{}]'
    actions = link.from_charger(text)
    assert [a.text for a in actions if isinstance(a, SendUpstream)] == [text]
    reply = '[3, "h1", {"currentTime": "2026-01-01T00:00:00Z"}]'
    assert [a.text for a in link.from_upstream(reply) if isinstance(a, SendCharger)] == [reply]


def test_live_start_gets_edge_id_mapped_and_ids_rewritten_both_ways():
    link = live_link()
    link.from_charger(call("s1", "StartTransaction", START))
    actions = link.from_upstream(json.dumps([3, "s1", {"transactionId": 777, "idTagInfo": {"status": "Accepted"}}]))
    assert persisted(actions)[-1] == TxStart
    assert isinstance(actions[-2], Persist) and actions[-2].wait  # mapping durable before the charger sees it
    local = sent(actions, SendCharger)[0][2]["transactionId"]
    assert local != 777
    up = sent(link.from_charger(call("m1", "MeterValues", meter(local))), SendUpstream)[0]
    assert up[1] == "m1" and up[3]["transactionId"] == 777
    down = sent(link.from_upstream(call("r1", "RemoteStopTransaction", {"transactionId": 777})), SendCharger)[0]
    assert down == [2, "r1", "RemoteStopTransaction", {"transactionId": local}]
    link.from_upstream('[3, "m1", {}]')
    up = sent(link.from_charger(call("x1", "StopTransaction", stop(local))), SendUpstream)[0]
    assert up[3]["transactionId"] == 777


def test_late_answer_is_used_not_lost():
    """Upstream answers a live 1.6 start after call_timeout: the charger was answered locally meanwhile, the
    link is not reset, the charger's next frames queue behind, and upstream's late answer maps the id and
    drops the queued copy, so upstream sees each frame once."""
    clock = Clock()
    link = live_link(clock=clock)
    link.from_charger(call("s1", "StartTransaction", START))
    clock.t += 6
    actions = link.tick()
    assert not any(isinstance(a, ResetUpstream) for a in actions)
    assert sent(actions, SendCharger)[0][2]["idTagInfo"]["status"] == "Invalid"  # unknown card, offline rule
    local = sent(actions, SendCharger)[0][2]["transactionId"]
    assert Enqueue in persisted(actions) and link.state == REPLAYING
    # the charger goes on; its meter values wait behind the start (upstream's id is not known yet)
    acts = link.from_charger(call("m1", "MeterValues", meter(local)))
    assert sent(acts, SendUpstream) == [] and sent(acts, SendCharger) == [[3, "m1", {}]]
    assert [q.action for q in link.replay.items] == ["StartTransaction", "MeterValues"]
    clock.t += 9  # 15 s after the start: upstream answers
    acts = link.from_upstream(json.dumps([3, "s1", {"transactionId": 4242, "idTagInfo": {"status": "Accepted"}}]))
    assert sent(acts, SendCharger) == []  # the charger had its answer long ago
    assert TxMap in persisted(acts) and Dequeue in persisted(acts)
    assert [m[1:3] for m in sent(acts, SendUpstream)] == [["m1", "MeterValues"]]
    assert sent(acts, SendUpstream)[0][3]["transactionId"] == 4242
    acts = link.from_upstream('[3, "m1", {}]')
    assert link.state == LIVE and not link.replay.items and link.tx.id_map[local] == 4242


def test_a_link_silent_for_stall_timeout_is_reset_and_the_frame_in_flight_goes_again_with_its_id():
    clock = Clock()
    link = live_link(clock=clock)
    link.from_charger(call("s1", "StartTransaction", START))
    for _ in range(59):
        clock.t += 1
        assert not any(isinstance(a, ResetUpstream) for a in link.tick())
    clock.t += 1.5
    assert any(isinstance(a, ResetUpstream) for a in link.tick())
    assert link.upstream_down() == []  # already down
    acts = link.upstream_up()
    assert sent(acts, SendUpstream)[0][:3] == [2, "s1", "StartTransaction"]  # at least once: the same id


def test_late_boot_is_not_replayed_twice_but_is_after_a_failed_link():
    clock = Clock()
    link = live_link(clock=clock)
    link.from_charger(call("b1", "BootNotification", {"chargePointModel": "m", "chargePointVendor": "v"}))
    clock.t += 6
    assert sent(link.tick(), SendCharger)[0][2]["status"] == "Accepted"
    acts = link.from_upstream(json.dumps([3, "b1", {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z",
                                                    "interval": 60}]))
    assert sent(acts, SendUpstream) == [] and link.state == LIVE
    # the same, but the link fails before the late answer: the boot is replayed on return
    link.from_charger(call("b2", "BootNotification", {"chargePointModel": "m", "chargePointVendor": "v"}))
    clock.t += 6
    link.tick()
    link.upstream_down()
    assert sent(link.upstream_up(), SendUpstream)[0][:2] == [2, "b2"]


def test_upstream_calls_go_before_edge_calls_one_at_a_time():
    link = live_link()
    edge_id, actions = link.call("TriggerMessage", {"requestedMessage": "Heartbeat"})
    assert sent(actions, SendCharger)[0][1] == edge_id
    # upstream's call waits while the edge's is outstanding
    assert link.from_upstream(call("u1", "Reset", {"type": "Soft"})) == []
    second_id, actions = link.call("ClearCache", {})
    assert actions == []
    actions = link.from_charger(json.dumps([3, edge_id, {"status": "Accepted"}]))
    assert isinstance(actions[0], EdgeCallDone) and actions[0].result == {"status": "Accepted"}
    assert sent(actions, SendUpstream) == []  # the edge's own reply is never forwarded
    assert sent(actions, SendCharger)[0][1] == "u1"  # upstream's next, before the edge's second
    actions = link.from_charger('[3, "u1", {"status": "Accepted"}]')
    assert sent(actions, SendUpstream) == [[3, "u1", {"status": "Accepted"}]]
    assert sent(actions, SendCharger)[0][1] == second_id


# -- proxy, upstream down and replay ----------------------------------------------------------------
def test_offline_session_queued_then_replayed_in_order_with_rewrites():
    link = make()
    acts = link.from_charger(call("b1", "BootNotification", {"chargePointModel": "m", "chargePointVendor": "v"}))
    assert sent(acts, SendCharger)[0][2]["status"] == "Accepted"
    link.from_charger(call("st1", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                                        "status": "Preparing"}))
    link.from_charger(call("st2", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                                        "status": "Charging"}))
    acts = link.from_charger(call("s1", "StartTransaction", START))
    assert persisted(acts) == [TxStart, Enqueue] and acts[0].wait
    local = sent(acts, SendCharger)[0][2]["transactionId"]
    link.from_charger(call("m1", "MeterValues", meter(local)))
    link.from_charger(call("x1", "StopTransaction", stop(local)))
    link.from_charger('[2,"h1","Heartbeat",{}]')  # not queued
    assert [q.action for q in link.replay.items] == ["StartTransaction", "MeterValues", "StopTransaction"]

    # upstream returns: boot, latest status, then the queue, one at a time
    upstream = []
    acts = link.upstream_up()
    assert link.state == REPLAYING
    for expect in ["BootNotification", "StatusNotification", "StartTransaction", "MeterValues", "StopTransaction"]:
        msg = sent(acts, SendUpstream)
        assert len(msg) == 1 and msg[0][2] == expect, (expect, msg)
        upstream.append(msg[0])
        reply = {"BootNotification": {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": 1},
                 "StartTransaction": {"transactionId": 4242, "idTagInfo": {"status": "Accepted"}}}.get(expect, {})
        acts = link.from_upstream(json.dumps([3, msg[0][1], reply]))
        assert sent(acts, SendCharger) == []  # the charger was answered long ago
    assert link.state == LIVE and not link.replay.items
    assert upstream[1][3]["status"] == "Charging"  # only the latest status
    assert [m[1] for m in upstream] == ["b1", "st2", "s1", "m1", "x1"]  # original message ids
    assert upstream[3][3]["transactionId"] == 4242 and upstream[4][3]["transactionId"] == 4242


def test_replay_refused_with_zero_still_sends_the_rest_with_that_id_and_says_so():
    link = make()
    local = sent(link.from_charger(call("s1", "StartTransaction", START)), SendCharger)[0][2]["transactionId"]
    link.from_charger(call("m1", "MeterValues", meter(local)))
    link.from_charger(call("x1", "StopTransaction", stop(local)))
    link.upstream_up()
    acts = link.from_upstream(json.dumps([3, "s1", {"transactionId": 0, "idTagInfo": {"status": "Invalid"}}]))
    notices = [a for a in acts if isinstance(a, Notice)]
    assert [n.counter for n in notices] == ["upstream_refused_replay"] and "transactionId 0" in notices[0].text
    up = sent(acts, SendUpstream)
    assert up[0][:3] == [2, "m1", "MeterValues"] and up[0][3]["transactionId"] == 0
    acts = link.from_upstream('[3, "m1", {}]')
    assert sent(acts, SendUpstream)[0][:3] == [2, "x1", "StopTransaction"]
    assert sent(acts, SendUpstream)[0][3]["meterStop"] == 900
    link.from_upstream('[3, "x1", {}]')
    assert link.state == LIVE and not link.replay.items
    # a session still running when upstream refused its replayed start: its live frames go up, not answered
    # by the edge
    link.upstream_down()
    running = sent(link.from_charger(call("s2", "StartTransaction", START)), SendCharger)[0][2]["transactionId"]
    link.upstream_up()
    link.from_upstream(json.dumps([3, "s2", {"transactionId": 0, "idTagInfo": {"status": "ConcurrentTx"}}]))
    assert link.state == LIVE
    assert sent(link.from_charger(call("m2", "MeterValues", meter(running))), SendUpstream)[0][3]["transactionId"] == 0
    assert sent(link.from_charger(call("x2", "StopTransaction", stop(running))), SendUpstream)[0][1] == "x2"


def test_replayed_start_refused_concurrent_right_after_its_cards_stop_is_retried_once():
    clock = Clock()
    link = make(clock=clock)
    first = sent(link.from_charger(call("s1", "StartTransaction", START)), SendCharger)[0][2]["transactionId"]
    link.from_charger(call("x1", "StopTransaction", {**stop(first), "idTag": "TAG1"}))
    second = sent(link.from_charger(call("s2", "StartTransaction", START)), SendCharger)[0][2]["transactionId"]
    link.from_charger(call("x2", "StopTransaction", stop(second)))
    link.upstream_up()
    link.from_upstream(json.dumps([3, "s1", {"transactionId": 7, "idTagInfo": {"status": "Accepted"}}]))
    acts = link.from_upstream('[3, "x1", {}]')
    assert sent(acts, SendUpstream)[0][1] == "s2"
    refused = json.dumps([3, "s2", {"transactionId": 0, "idTagInfo": {"status": "ConcurrentTx"}}])
    acts = link.from_upstream(refused)
    assert [a.counter for a in acts if isinstance(a, Notice)] == ["replay_retried"]
    assert sent(acts, SendUpstream) == [] and Dequeue not in persisted(acts)
    assert link.waiting and sent(link.tick(), SendUpstream) == []  # a short pause first
    clock.t += 2.5
    again = sent(link.tick(), SendUpstream)
    assert again[0][2] == "StartTransaction" and again[0][1] not in ("s1", "s2")  # a new CALL, a new id
    acts = link.from_upstream(json.dumps([3, again[0][1], {"transactionId": 8, "idTagInfo": {"status": "Accepted"}}]))
    assert sent(acts, SendUpstream)[0][3]["transactionId"] == 8  # its stop goes with the id of the retry
    # refused again after a retry: not retried a second time, and said
    link2 = make(clock=clock)
    a = sent(link2.from_charger(call("s1", "StartTransaction", START)), SendCharger)[0][2]["transactionId"]
    link2.from_charger(call("x1", "StopTransaction", stop(a)))
    link2.from_charger(call("s2", "StartTransaction", START))
    link2.upstream_up()
    link2.from_upstream(json.dumps([3, "s1", {"transactionId": 7, "idTagInfo": {"status": "Accepted"}}]))
    link2.from_upstream('[3, "x1", {}]')
    link2.from_upstream(refused)
    clock.t += 2.5
    retry_id = sent(link2.tick(), SendUpstream)[0][1]
    acts = link2.from_upstream(json.dumps([3, retry_id, {"transactionId": 0, "idTagInfo": {"status": "ConcurrentTx"}}]))
    assert [a.counter for a in acts if isinstance(a, Notice)] == ["upstream_refused_replay"]
    assert link2.state == LIVE


def test_201_events_the_cloud_did_not_get_live_are_replayed_marked_offline():
    clock = Clock()
    link = make("2.0.1", clock=clock)
    ev = {"eventType": "Started", "timestamp": "2026-01-01T00:00:00Z", "triggerReason": "Authorized", "seqNo": 0,
          "transactionInfo": {"transactionId": "T9"}, "offline": False}
    link.from_charger(call("e1", "TransactionEvent", ev))
    replayed = sent(link.upstream_up(), SendUpstream)[0]
    assert replayed[1] == "e1" and replayed[3]["offline"] is True and replayed[3]["seqNo"] == 0
    link.from_upstream('[3, "e1", {}]')
    # live, then late: the cloud got that one live (only late); it keeps its own text
    link.from_charger(call("e2", "TransactionEvent", {**ev, "eventType": "Updated", "seqNo": 1,
                                                      "triggerReason": "MeterValuePeriodic"}))
    clock.t += 6
    link.tick()
    link.upstream_down()
    assert sent(link.upstream_up(), SendUpstream)[0][3]["offline"] is False


def test_replay_survives_a_new_link_from_stored_state():
    link = make()
    local = sent(link.from_charger(call("s1", "StartTransaction", START)), SendCharger)[0][2]["transactionId"]
    link.from_charger(call("x1", "StopTransaction", stop(local)))
    # the daemon dies; the store holds the queue and the open mapping
    state = LinkState(queue=[QueueItem(q.seq, q.msg_id, q.action, q.frame, q.tx_id) for q in link.replay.items],
                      tx_map={local: None})
    fresh = make(state=state)
    acts = fresh.upstream_up()
    assert sent(acts, SendUpstream)[0][1] == "s1"
    acts = fresh.from_upstream(json.dumps([3, "s1", {"transactionId": 9, "idTagInfo": {"status": "Accepted"}}]))
    assert sent(acts, SendUpstream)[0][3]["transactionId"] == 9


def test_upstream_drop_mid_call_answers_locally_and_strict_closes():
    link = live_link()
    link.from_charger('[2,"h1","Heartbeat",{}]')
    acts = link.upstream_down()
    assert sent(acts, SendCharger)[0][:2] == [3, "h1"]
    strict = live_link(strict=True)
    strict.from_charger('[2,"h1","Heartbeat",{}]')
    assert any(isinstance(a, CloseCharger) for a in strict.upstream_down())
    assert any(isinstance(a, CloseCharger) for a in strict.from_charger('[2,"h2","Heartbeat",{}]'))


def test_offline_authorization_uses_cache_learned_online():
    link = live_link()
    link.from_charger(call("a1", "Authorize", {"idTag": "GOOD"}))
    actions = link.from_upstream(json.dumps([3, "a1", {"idTagInfo": {"status": "Accepted"}}]))
    (learned,) = [a for a in actions if isinstance(a, Learned)]
    assert "GOOD" not in link.authorizer.cache, "the link hands the shared cache's change to its shell"
    link.authorizer.remember(learned.row)  # as the shell does
    link.upstream_down()
    assert sent(link.from_charger(call("a2", "Authorize", {"idTag": "GOOD"})), SendCharger)[0][2] == \
        {"idTagInfo": {"status": "Accepted"}}
    assert sent(link.from_charger(call("a3", "Authorize", {"idTag": "NEVER-SEEN"})), SendCharger)[0][2] == \
        {"idTagInfo": {"status": "Invalid"}}
    lenient = make(offline_accept=True)
    assert sent(lenient.from_charger(call("a4", "Authorize", {"idTag": "NEVER-SEEN"})), SendCharger)[0][2] == \
        {"idTagInfo": {"status": "Accepted"}}


def test_201_get_transaction_status_counts_what_edge_holds():
    link = make("2.0.1")
    ev = {"eventType": "Started", "timestamp": "2026-01-01T00:00:00Z", "triggerReason": "Authorized", "seqNo": 0,
          "transactionInfo": {"transactionId": "T9"}}
    link.from_charger(call("e1", "TransactionEvent", ev))
    acts = link.upstream_up()  # replay starts: the event is on its way, not yet confirmed
    assert sent(acts, SendUpstream)[0][2] == "TransactionEvent"
    assert sent(acts, SendUpstream)[0][3]["seqNo"] == 0  # untouched
    acts = link.from_upstream(call("g1", "GetTransactionStatus", {"transactionId": "T9"}))
    assert sent(acts, SendCharger) == [[2, "g1", "GetTransactionStatus", {"transactionId": "T9"}]]
    acts = link.from_charger('[3, "g1", {"messagesInQueue": false}]')
    assert sent(acts, SendUpstream) == [[3, "g1", {"messagesInQueue": True}]]


def test_every_local_answer_passes_its_schema():
    """What the edge answers itself must be valid OCPP: check each action a charger may send, both versions."""
    from edge.controller.answers import answer
    from edge.controller.wire import parse as parse_frame
    from edge.controller.wire import result_problem

    for version in ("1.6", "2.0.1"):
        for action in ("BootNotification", "Heartbeat", "StatusNotification", "Authorize", "StartTransaction",
                       "StopTransaction", "MeterValues", "DataTransfer", "TransactionEvent", "NotifyEvent",
                       "SecurityEventNotification", "SignCertificate", "FirmwareStatusNotification",
                       "LogStatusNotification", "NotifyEVChargingNeeds", "Get15118EVCertificate",
                       "GetCertificateStatus", "NotifyReport", "DiagnosticsStatusNotification"):
            frame = parse_frame(call("1", action, {"idTag": "X", "idToken": {"idToken": "X", "type": "Central"}}))
            for offline in (False, True):
                payload = answer(frame, version, heartbeat_interval=60, transaction_id=7, offline=offline)
                if payload is not None:
                    assert result_problem(action, payload, version) is None, (version, action, payload)


def test_restarted_upstream_reusing_an_id_targets_the_running_session():
    """A CSMS that numbers transactions afresh after a restart hands out an id again: RemoteStop must reach
    the session that is running, not a finished one that once had that id."""
    link = live_link()
    link.from_charger(call("s1", "StartTransaction", START))
    first = sent(link.from_upstream(json.dumps([3, "s1", {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}])),
                 SendCharger)[0][2]["transactionId"]
    link.upstream_down()
    link.from_charger(call("x1", "StopTransaction", stop(first)))  # offline stop, queued
    link.upstream_up()
    link.from_upstream('[3, "x1", {}]')  # replayed
    assert link.state == LIVE
    link.from_charger(call("s2", "StartTransaction", START))
    second = sent(link.from_upstream(json.dumps([3, "s2", {"transactionId": 1,
                                                             "idTagInfo": {"status": "Accepted"}}])),
                  SendCharger)[0][2]["transactionId"]
    down = sent(link.from_upstream(call("r1", "RemoteStopTransaction", {"transactionId": 1})), SendCharger)[0]
    assert down[3] == {"transactionId": second} and second != first
    assert first not in link.tx.id_map


def test_forwarded_stop_is_durable_before_the_charger_hears_back():
    link = live_link()
    acts = link.from_charger(call("x1", "StopTransaction", stop(5)))
    assert isinstance(acts[0], Persist) and not acts[0].wait  # recorded without delaying the forward
    acts = link.from_upstream('[3, "x1", {}]')
    assert isinstance(acts[0], Persist) and acts[0].wait and isinstance(acts[1], SendCharger)


def test_the_link_reads_time_only_through_the_clocks_it_is_given():
    """Deadlines on its monotonic clock, the CSMS's currentTime, recorded times and the cache's expiry on its
    wall clock: a link built with fake clocks answers with their time, whatever the machine's."""
    new_year = 1767225600.0  # 2026-01-01T00:00:00Z
    link = ChargerLink("CP1", "1.6", LinkSettings(standalone=True), Authorizer(), lambda prefer=None: 1,
                       clock=Clock(), wall=lambda: new_year + 0.25)
    assert sent(link.from_charger('[2, "h1", "Heartbeat", {}]'), SendCharger)[0][2] == {
        "currentTime": "2026-01-01T00:00:00.250Z"}
    boot = link.from_charger(call("b1", "BootNotification", {"chargePointModel": "m", "chargePointVendor": "v"}))
    assert sent(boot, SendCharger)[0][2]["currentTime"] == "2026-01-01T00:00:00.250Z"
    assert [op.ts for a in boot if isinstance(a, Persist) for op in a.ops if isinstance(op, ChargerBoot)] == [
        "2026-01-01T00:00:00.250Z"]
    proxy = ChargerLink("CP2", "1.6", LinkSettings(standalone=False), Authorizer(cache_ttl_s=60),
                        lambda prefer=None: 1, clock=Clock(), wall=lambda: new_year)
    proxy.upstream_up()
    proxy.from_charger(call("a1", "Authorize", {"idTag": "T1"}))
    learned = proxy.from_upstream(json.dumps([3, "a1", {"idTagInfo": {"status": "Accepted"}}]))
    assert [a.row["expires"] for a in learned if isinstance(a, Learned)] == [new_year + 60]
