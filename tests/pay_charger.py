"""A real charger (the `ocpp` package, 1.6 or 2.0.1, over a real socket) for the pay tests: when told to start
it looks in the site's database for the pay session's hold (the start command must come only after the hold
is committed), answers as it is set to (`mode`: "start" accepts and starts as a plugged-in car would,
"reject" refuses, "silent" accepts and never starts: nobody plugs in), and is then driven by the test
(meter values, the stop)."""

from __future__ import annotations

import asyncio
import sqlite3
import time

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201
from peers import Charger, now


class _Told:
    """What the charger saw of the start command."""

    db_path: str
    mode: str
    asked: list  # (id tag, connector, hold rows committed when it came, monotonic time)
    started: asyncio.Event
    start_result: object

    def _saw(self, tag: str, connector: int) -> None:
        conn = sqlite3.connect(self.db_path, timeout=10)
        try:
            holds = conn.execute("SELECT count(*) FROM ledger l JOIN pay_sessions p ON p.id = l.pay_id"
                                 " WHERE l.kind = 'hold' AND 'PAY' || p.code = ?", (tag,)).fetchone()[0]
        finally:
            conn.close()
        self.asked.append((tag, connector, holds, time.monotonic()))


class Pay16(_Told, CP16):
    @on("RemoteStartTransaction")
    def remote_start(self, id_tag, **kw):
        self._saw(id_tag, kw.get("connector_id") or 0)
        return result16.RemoteStartTransaction(status="Rejected" if self.mode == "reject" else "Accepted")

    @after("RemoteStartTransaction")
    def plugged_in(self, id_tag, **kw):
        if self.mode == "start":
            asyncio.get_running_loop().create_task(self._start(id_tag, kw.get("connector_id") or 1))

    async def _start(self, id_tag: str, connector: int) -> None:
        await asyncio.sleep(0.2)
        self.start_result = await self.call(call16.StartTransaction(
            connector_id=connector, id_tag=id_tag, meter_start=10_000, timestamp=now()))
        self.started.set()

    @on("RemoteStopTransaction")
    def remote_stop(self, transaction_id, **kw):
        return result16.RemoteStopTransaction(status="Accepted")


class Pay201(_Told, CP201):
    @on("RequestStartTransaction")
    def request_start(self, id_token, remote_start_id, **kw):
        self._saw(id_token["id_token"], kw.get("evse_id") or 0)
        return result201.RequestStartTransaction(status="Rejected" if self.mode == "reject" else "Accepted")

    @after("RequestStartTransaction")
    def plugged_in(self, id_token, remote_start_id, **kw):
        if self.mode == "start":
            asyncio.get_running_loop().create_task(self._start(id_token, remote_start_id, kw.get("evse_id") or 1))

    async def _start(self, id_token: dict, remote_start_id: int, evse: int) -> None:
        await asyncio.sleep(0.2)
        self.start_result = await self.call(call201.TransactionEvent(
            event_type="Started", timestamp=now(), trigger_reason="RemoteStart", seq_no=0,
            transaction_info={"transaction_id": "PAYTX-1", "remote_start_id": remote_start_id},
            id_token=id_token, evse={"id": evse, "connector_id": 1},
            meter_value=[{"timestamp": now(), "sampled_value": [{"value": 10_000,
                                                                 "measurand": "Energy.Active.Import.Register"}]}]))
        self.started.set()

    @on("RequestStopTransaction")
    def request_stop(self, transaction_id, **kw):
        return result201.RequestStopTransaction(status="Accepted")


class PayCharger:
    """`await PayCharger(edge, "CP-1", "1.6").connect()`; `.mode`; after `started`: `meter(wh)`, `stop(wh)`."""

    def __init__(self, edge, charger_id: str, version: str = "1.6", mode: str = "start", cp_class: type | None = None):
        self.peer = Charger(edge.url, charger_id, version,
                            cp_class=cp_class or (Pay16 if version == "1.6" else Pay201))
        self.edge, self.version, self.charger_id = edge, version, charger_id
        self._mode = mode
        self.seq = 1

    async def connect(self) -> PayCharger:
        await self.peer.connect()
        cp = self.peer.cp
        cp.db_path, cp.mode, cp.asked, cp.started, cp.start_result = self.edge.db_path, self._mode, [], \
            asyncio.Event(), None
        if self.version == "1.6":
            await self.peer.boot16()
            await self.peer.status16("Available")
        else:
            await self.peer.boot201()
            await self.peer.call(call201.StatusNotification(timestamp=now(), connector_status="Available",
                                                            evse_id=1, connector_id=1))
        return self

    @property
    def cp(self):
        return self.peer.cp

    def set_mode(self, mode: str) -> None:
        self.cp.mode = mode

    async def wait_started(self, timeout: float = 15) -> object:
        await asyncio.wait_for(self.cp.started.wait(), timeout)
        return self.cp.start_result

    async def meter(self, wh: int) -> None:
        if self.version == "1.6":
            await self.peer.meter16(self.cp.start_result.transaction_id, wh)
        else:
            await self.peer.tx_event201("Updated", "PAYTX-1", self.seq, wh)
            self.seq += 1

    async def stop(self, wh: int) -> object:
        if self.version == "1.6":
            return await self.peer.stop16(self.cp.start_result.transaction_id, wh)
        self.seq += 1
        return await self.peer.tx_event201("Ended", "PAYTX-1", self.seq, wh)

    async def close(self) -> None:
        await self.peer.close()
