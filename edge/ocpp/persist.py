"""Carrying out the controller's `Persist` and `Ask` actions on a store connection.

`apply`: each record of `edge.controller.records` goes to its row writer in `edge.store.ops`, except
`CloseSession`, billing's rule for a session that ended (settle it once, queue its record for the cloud). All
in the caller's transaction, so a stop, its bill and its record commit together. `ask_billing`: a question
of the controller's put to `edge.billing.sessions`, its answer in the controller's words."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from edge.billing import price_text, sessions
from edge.controller import records as r
from edge.controller.actions import Decide, Decision, Running, RunningCost
from edge.store import ops

WRITERS: dict[type, Callable[[sqlite3.Connection, dict], None]] = {
    r.ChargerBoot: ops.charger_boot, r.ChargerConnected: ops.charger_connected,
    r.ChargerDisconnected: ops.charger_disconnected, r.StatusSeen: ops.status, r.ReplaySet: ops.replay_set,
    r.ReplayDone: ops.replay_done, r.Enqueue: ops.enqueue, r.Dequeue: ops.dequeue, r.TxStart: ops.tx_start,
    r.TxMap: ops.tx_map, r.TxUpstreamStatus: ops.tx_upstream_status, r.TxStop: ops.tx_stop,
    r.TxEvent: ops.tx_event, r.MeterRows: ops.meter, r.TransferStatus: ops.transfer_status, r.ReportRows: ops.report,
    r.EvNeeds: ops.ev_needs,
}


def apply(conn: sqlite3.Connection, records: Iterable[r.StoreOp]) -> None:
    """Write `records` in order on `conn`."""
    for op in records:
        if type(op) is r.CloseSession:
            sessions.close_session(conn, op.charger_id, op.tx_key)
            ops.ev_gone(conn, op.charger_id, op.tx_key)
        elif type(op) is r.AuthCache:
            ops.auth_cache(conn, op.row)
        else:
            writer: Any = WRITERS[type(op)]
            writer(conn, vars(op))


def _running(out: dict) -> Running:
    cost = out.get("running_minor")
    exponent = sessions.SETTINGS.exponent
    return Running(stop=bool(out.get("stop")), cost=None if cost is None else round(cost / 10**exponent, exponent),
                   meter_wh=out.get("meter_wh"))


def running_within_hold(conn: sqlite3.Connection, question: RunningCost) -> Running | None:
    """A read (no commit): the running cost while the session is still within its hold, with the samples that
    asked; None when the hold is used up. The usual answer to meter values, which thus keep sharing commits;
    only a used-up hold needs `ask_billing`'s write."""
    out = sessions.running(conn, charger_id=question.charger_id, tx_key=question.tx_key, pending=question.pending,
                           mark=False)
    return None if out.get("stop") else _running(out)


def ask_billing(conn: sqlite3.Connection, question: Decide | RunningCost) -> Decision | Running:
    """Put `question` to billing (in the caller's transaction) and give its answer as the link takes it."""
    if isinstance(question, RunningCost):
        return _running(sessions.running(conn, charger_id=question.charger_id, tx_key=question.tx_key,
                                         pending=question.pending))
    out = sessions.decide(conn, uid=question.uid, charger_id=question.charger_id, version=question.version,
                          kind=question.kind, tx=None if question.tx is None else vars(question.tx),
                          upstream_status=question.upstream_status)
    if not out.get("known"):
        return Decision(known=False)
    priced = question.price_texts and out["status"] == "Accepted" and out.get("kind") == "commercial"
    return Decision(known=True, status=out["status"], tx_id=out.get("tx_id"), hold_minor=out.get("hold_minor") or 0,
                    repeat=bool(out.get("repeat")), expiry=out.get("expires"), group=out.get("group"),
                    price_texts=price_text.tariff_texts(conn) if priced else ())
