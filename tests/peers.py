"""Real OCPP peers for the tests, built on the `ocpp` package over real sockets.

`Csms`: an upstream CSMS for 1.6 and 2.0.1 that records every raw frame it receives and sends, assigns
1.6 transaction ids from 1000 up, and can be stopped and restarted on the same port. It can be made to
behave as real clouds were seen to: answer a CALL late (`answer_delay`), refuse starts (`start_zero`,
`concurrent_tx` with `close_delay`: a Stop closes its session only a little later, so the same card's next
Start meets ConcurrentTx), accept the WebSocket and close it at once (`close_at_once`), or hold a frame and never answer
it (`hold`, to restart it or kill the edge in the middle of a replay).
`Charger`: a charger for either version (the `ocpp` package's ChargePoint) that also records raw frames and
can send raw text.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import ssl as ssl_module
from dataclasses import dataclass, field
from datetime import UTC, datetime

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint as CP16
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v201 import ChargePoint as CP201
from ocpp.v201 import call as call201
from ocpp.v201 import call_result as result201


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class RecordingConnection:
    """Wraps a websockets connection; keeps every text received and sent. `hold(text)`: if true, the frame
    is recorded but never handed on (never answered)."""

    def __init__(self, ws, received: list, sent: list, hold=None):
        self.ws = ws
        self.received = received
        self.sent = sent
        self.hold = hold

    async def recv(self):
        while True:
            text = await self.ws.recv()
            self.received.append(text)
            if self.hold is None or not self.hold(text):
                return text

    async def send(self, text):
        self.sent.append(text)
        await self.ws.send(text)

    @property
    def subprotocol(self):
        return self.ws.subprotocol


@dataclass
class CsmsPeer:
    charger_id: str
    subprotocol: str | None
    received: list = field(default_factory=list)
    sent: list = field(default_factory=list)
    cp: object = None
    ws: object = None
    headers: dict = field(default_factory=dict)
    connected_at: float = 0.0  # the event loop's time of the handshake


class Upstream16(CP16):
    def __init__(self, id, conn, csms: Csms):
        super().__init__(id, conn)
        self.csms = csms

    @on("BootNotification")
    def boot(self, **kw):
        return result16.BootNotification(current_time=now(), interval=300, status="Accepted")

    @on("Heartbeat")
    def heartbeat(self, **kw):
        return result16.Heartbeat(current_time=now())

    @on("StatusNotification")
    def status(self, **kw):
        return result16.StatusNotification()

    @on("Authorize")
    def authorize(self, id_tag, **kw):
        return result16.Authorize(id_tag_info={"status": self.csms.status_of(id_tag)})

    @on("StartTransaction")
    async def on_start(self, id_tag, meter_start, **kw):
        await self.csms.maybe_late("StartTransaction")
        status = self.csms.status_of(id_tag)
        if self.csms.concurrent_tx and id_tag in self.csms.open_cards:
            return result16.StartTransaction(transaction_id=0, id_tag_info={"status": "ConcurrentTx"})
        tx = 0 if self.csms.start_zero else next(self.csms.tx_ids)
        if tx:
            self.csms.transactions[tx] = {"charger_id": self.id, "id_tag": id_tag, "meter_start": meter_start}
            self.csms.open_cards.add(id_tag)
        return result16.StartTransaction(transaction_id=tx, id_tag_info={"status": status})

    @on("StopTransaction")
    async def on_stop(self, transaction_id, meter_stop, **kw):
        await self.csms.maybe_late("StopTransaction")
        tx = self.csms.transactions.get(transaction_id)
        if tx is not None:
            tx["meter_stop"] = meter_stop
            tx["stops"] = tx.get("stops", 0) + 1
            if self.csms.close_delay:  # the cloud closes the session a little later (asynchronously)
                asyncio.get_running_loop().call_later(self.csms.close_delay, self.csms.open_cards.discard,
                                                      tx["id_tag"])
            else:
                self.csms.open_cards.discard(tx["id_tag"])
        return result16.StopTransaction()

    @on("MeterValues")
    def meter(self, **kw):
        return result16.MeterValues()

    @on("DataTransfer")
    def data(self, **kw):
        return result16.DataTransfer(status="Accepted")


class Upstream201(CP201):
    def __init__(self, id, conn, csms: Csms):
        super().__init__(id, conn)
        self.csms = csms

    @on("BootNotification")
    def boot(self, **kw):
        return result201.BootNotification(current_time=now(), interval=300, status="Accepted")

    @on("Heartbeat")
    def heartbeat(self, **kw):
        return result201.Heartbeat(current_time=now())

    @on("StatusNotification")
    def status(self, **kw):
        return result201.StatusNotification()

    @on("Authorize")
    def authorize(self, id_token, **kw):
        return result201.Authorize(id_token_info={"status": self.csms.status_of(id_token["id_token"])})

    @on("TransactionEvent")
    async def tx_event(self, **kw):
        await self.csms.maybe_late("TransactionEvent")
        token = kw.get("id_token")
        if token:
            return result201.TransactionEvent(id_token_info={"status": self.csms.status_of(token["id_token"])})
        return result201.TransactionEvent()

    @on("MeterValues")
    def meter(self, **kw):
        return result201.MeterValues()

    @on("DataTransfer")
    def data(self, **kw):
        return result201.DataTransfer(status="Accepted")


class Csms:
    """An upstream CSMS on a fixed port; `stop()` and `start()` make it go away and come back."""

    def __init__(self, port: int, subprotocols=("ocpp1.6", "ocpp2.0.1"),
                 ssl: ssl_module.SSLContext | None = None):
        self.port = port
        self.ssl = ssl  # a server context: serve TLS (wss://)
        self.subprotocols = list(subprotocols)
        self.peers: dict[str, CsmsPeer] = {}
        self.history: list[CsmsPeer] = []
        self.tx_ids = itertools.count(1000)
        self.tag_status: dict[str, str] = {}  # an idTag's status; "*": every tag not named (default Accepted)
        self.start_zero = False
        self.silent = False  # receive but never answer
        self.close_at_once = False  # accept the WebSocket, then close it straight away
        self.answer_delay: dict[str, float] = {}  # action → seconds: the next such CALL is answered that late
        self.concurrent_tx = False  # refuse (ConcurrentTx, id 0) a Start for a card whose session is open
        self.close_delay = 0.0  # seconds after a Stop before its card's session is closed
        self.hold = None  # hold(text) -> bool: record the frame and never answer it
        self.transactions: dict[int, dict] = {}  # 1.6: the sessions this CSMS opened, with their meter readings
        self.open_cards: set[str] = set()
        self.server = None

    @property
    def url(self) -> str:
        return f"{'wss' if self.ssl is not None else 'ws'}://127.0.0.1:{self.port}/csms"

    def status_of(self, id_tag: str) -> str:
        return self.tag_status.get(id_tag, self.tag_status.get("*", "Accepted"))

    async def start(self) -> Csms:
        self.server = await websockets.serve(self._handler, "127.0.0.1", self.port,
                                             subprotocols=self.subprotocols, ssl=self.ssl)
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def maybe_late(self, action: str) -> None:
        delay = self.answer_delay.pop(action, 0)
        if delay:
            await asyncio.sleep(delay)

    @property
    def open_connections(self) -> int:
        return sum(1 for p in self.history if p.ws.state.name in ("CONNECTING", "OPEN", "CLOSING"))

    async def _handler(self, ws):
        charger_id = ws.request.path.rstrip("/").split("/")[-1]
        peer = CsmsPeer(charger_id, ws.subprotocol, headers=dict(ws.request.headers),
                        connected_at=asyncio.get_running_loop().time())
        peer.ws = ws
        self.peers[charger_id] = peer
        self.history.append(peer)
        if self.close_at_once:
            await ws.close()
            return
        conn = RecordingConnection(ws, peer.received, peer.sent, self.hold)
        if self.silent:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for text in ws:
                    peer.received.append(text)
            return
        cls = Upstream16 if ws.subprotocol == "ocpp1.6" else Upstream201
        peer.cp = cls(charger_id, conn, self)
        with contextlib.suppress(websockets.ConnectionClosed):
            await peer.cp.start()

    def calls(self, charger_id: str, action: str | None = None) -> list[list]:
        """Every CALL upstream received from `charger_id`, over all its connections, in order."""
        out = []
        for peer in self.history:
            if peer.charger_id != charger_id:
                continue
            for text in peer.received:
                msg = json.loads(text)
                if msg[0] == 2 and (action is None or msg[2] == action):
                    out.append(msg)
        return out


class Charger:
    """A charger on the `ocpp` package, recording raw frames."""

    def __init__(self, url: str, charger_id: str, version: str = "1.6", headers: dict | None = None,
                 ssl: ssl_module.SSLContext | None = None, cp_class: type | None = None):
        self.url = url.rstrip("/") + "/" + charger_id
        self.ssl = ssl  # a client context for wss:// (None: websockets' default for wss, none for ws)
        self.cp_class = cp_class  # a ChargePoint subclass with handlers for the CSMS's calls
        self.charger_id = charger_id
        self.version = version
        self.headers = headers or {}
        self.received: list[str] = []
        self.sent: list[str] = []
        self.ws = None
        self.cp = None
        self._task = None

    async def connect(self) -> Charger:
        sub = "ocpp1.6" if self.version == "1.6" else "ocpp2.0.1"
        tls = {"ssl": self.ssl} if self.ssl is not None else {}
        self.ws = await websockets.connect(self.url, subprotocols=[sub], additional_headers=self.headers,
                                           proxy=None, open_timeout=10, **tls)
        conn = RecordingConnection(self.ws, self.received, self.sent)
        cls = self.cp_class or (CP16 if self.version == "1.6" else CP201)
        self.cp = cls(self.charger_id, conn, response_timeout=15)
        self._task = asyncio.create_task(self.cp.start())
        return self

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    async def call(self, payload):
        return await self.cp.call(payload, suppress=False)

    # 1.6 conveniences
    async def boot16(self):
        return await self.call(call16.BootNotification(charge_point_model="test", charge_point_vendor="tests"))

    async def start16(self, id_tag: str, meter_start: int = 1000, connector_id: int = 1):
        return await self.call(call16.StartTransaction(connector_id=connector_id, id_tag=id_tag,
                                                       meter_start=meter_start, timestamp=now()))

    async def meter16(self, tx_id: int, wh: int, connector_id: int = 1):
        return await self.call(call16.MeterValues(connector_id=connector_id, transaction_id=tx_id, meter_value=[
            {"timestamp": now(), "sampledValue": [{"value": str(wh), "measurand": "Energy.Active.Import.Register",
                                                   "unit": "Wh"}]}]))

    async def stop16(self, tx_id: int, meter_stop: int, id_tag: str | None = None):
        return await self.call(call16.StopTransaction(transaction_id=tx_id, meter_stop=meter_stop, timestamp=now(),
                                                      id_tag=id_tag, reason="Local"))

    async def status16(self, status: str, connector_id: int = 1):
        return await self.call(call16.StatusNotification(connector_id=connector_id, error_code="NoError",
                                                         status=status, timestamp=now()))

    # 2.0.1 conveniences
    async def boot201(self):
        return await self.call(call201.BootNotification(
            charging_station={"model": "test", "vendor_name": "tests"}, reason="PowerUp"))

    async def tx_event201(self, event: str, tx_id: str, seq: int, wh: int, id_tag: str | None = None):
        kw = {}
        if id_tag:
            kw["id_token"] = {"id_token": id_tag, "type": "ISO14443"}
        return await self.call(call201.TransactionEvent(
            event_type=event, timestamp=now(), trigger_reason="Authorized" if event == "Started" else "MeterValuePeriodic",
            seq_no=seq, transaction_info={"transaction_id": tx_id}, evse={"id": 1, "connector_id": 1},
            meter_value=[{"timestamp": now(), "sampled_value": [{"value": wh,
                                                                 "measurand": "Energy.Active.Import.Register"}]}],
            **kw))

    async def raw(self, text: str, timeout: float = 5.0) -> list:
        """Send raw text and return the next frame the edge sends back, parsed."""
        n = len(self.received)
        await self.ws.send(text)
        self.sent.append(text)
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) == n:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("no answer")
            await asyncio.sleep(0.01)
        return json.loads(self.received[n])
