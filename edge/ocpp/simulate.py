"""`sitekeeper simulate`: simulated chargers (OCPP 1.6J or 2.0.1) that boot, report status, heartbeat and run
card sessions with meter values against an edge (or any CSMS), so that a new site shows life at once.

They behave as chargers do: each has a card with a real ISO 14443 UID (`--card` gives the site's own), a
RemoteStart / RequestStart it accepts starts a session (a cable plugged in), a closed connection (the edge
restarting) is reconnected with backoff, and a refused card is not tried again at once (backoff, up to a
minute), so that a `--forever` site with a bad card does not flood the edge.

Built directly on `websockets` so that it stays light enough to run a thousand chargers in one process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from edge.backoff import Backoff
from edge.security import basic_auth_header

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class SimStats:
    calls: int = 0
    errors: int = 0
    sessions: int = 0
    energy_wh: int = 0
    refused: int = 0
    notes: list[str] = field(default_factory=list)
    limit_a: float | None = None  # the least current the CSMS held a session to (a TxProfile), if it set one
    display: str = ""  # what its display last showed of the price or the cost (California pricing, CostUpdated)


class SimCharger:
    """One simulated charger with a single connector."""

    def __init__(self, url: str, charger_id: str, version: str = "1.6", *, password: str | None = None,
                 id_tag: str = "04A1B2C3D4E580", meter_interval: float = 1.0, power_w: int = 7400,
                 call_timeout: float = 30.0, tls: ssl.SSLContext | None = None):
        self.url = url.rstrip("/") + "/" + charger_id
        self.charger_id = charger_id
        self.version = version
        self.password = password
        self.tls = tls  # wss://: whom to trust and, for security profile 3, the charger's certificate
        self.id_tag = id_tag
        self.meter_interval = meter_interval
        self.power_w = power_w
        self.call_timeout = call_timeout
        self.meter_wh = random.randint(0, 1_000_000)
        self.ws: ClientConnection | None = None
        self.stats = SimStats()
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None
        self.transaction_id: int | str | None = None
        self.remote_stop = asyncio.Event()
        self.remote_starts: asyncio.Queue[str] = asyncio.Queue()
        self.plug = asyncio.Lock()  # one connector: one session at a time, card or remote
        self.limit_a: float | None = None  # the session's TxProfile (one phase at 230 V), until it ends

    async def connect(self) -> None:
        headers = {}
        if self.password is not None:
            headers["Authorization"] = basic_auth_header(self.charger_id, self.password)
        sub = "ocpp1.6" if self.version == "1.6" else "ocpp2.0.1"
        tls = {"ssl": self.tls} if self.tls is not None and self.url.startswith("wss://") else {}
        self.ws = await connect(self.url, subprotocols=[sub], additional_headers=headers,  # type: ignore[list-item]
                                proxy=None, open_timeout=30, ping_interval=None, **tls)
        self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()

    async def _read(self) -> None:
        assert self.ws is not None
        async for raw in self.ws:
            msg = json.loads(raw)
            if msg[0] == 2:
                answer = self._answer(msg[2], msg[3])
                if answer is None:
                    reply = [4, msg[1], "NotImplemented", f"the simulator does not do {msg[2]}", {}]
                else:
                    reply = [3, msg[1], answer]
                await self.ws.send(json.dumps(reply))
            elif msg[1] in self._pending:
                fut = self._pending.pop(msg[1])
                if not fut.done():
                    fut.set_result(msg)

    def _answer(self, action: str, payload: dict) -> dict | None:
        if action in ("RemoteStopTransaction", "RequestStopTransaction"):
            if self.transaction_id is None or payload.get("transactionId") != self.transaction_id:
                return {"status": "Rejected"}
            self.remote_stop.set()
            return {"status": "Accepted"}
        if action in ("RemoteStartTransaction", "RequestStartTransaction"):
            if self.transaction_id is not None or self.plug.locked():
                return {"status": "Rejected"}
            tag = payload.get("idTag") or (payload.get("idToken") or {}).get("idToken")
            self.remote_starts.put_nowait(tag)
            return {"status": "Accepted"}
        if action == "GetTransactionStatus":
            return {"messagesInQueue": False}
        if action == "DataTransfer":
            return self._cost_message(payload)
        if action == "CostUpdated":
            self.stats.display = f"{payload.get('totalCost')} so far"
            return {}
        if action == "SetChargingProfile":
            profile = payload.get("csChargingProfiles") or payload.get("chargingProfile") or {}
            schedule = profile.get("chargingSchedule")
            schedule = schedule[0] if isinstance(schedule, list) else schedule or {}
            periods = schedule.get("chargingSchedulePeriod") or [{}]
            if schedule.get("chargingRateUnit") == "A" and isinstance(periods[0].get("limit"), int | float):
                self.limit_a = float(periods[0]["limit"])
                seen = self.stats.limit_a
                self.stats.limit_a = self.limit_a if seen is None else min(seen, self.limit_a)
            return {"status": "Accepted"}
        return None

    def _cost_message(self, payload: dict) -> dict:
        """The OCA's California pricing messages (1.6 DataTransfer): what the display would show."""
        if payload.get("vendorId") != "org.openchargealliance.costmsg":
            return {"status": "UnknownVendorId"}
        try:
            data = json.loads(payload.get("data") or "{}")
        except ValueError:
            return {"status": "Rejected"}
        kind = payload.get("messageId")
        self.stats.display = data.get("priceText", "") if kind in ("SetUserPrice", "FinalCost") else \
            f"{data.get('cost')} so far" if kind == "RunningCost" else self.stats.display
        return {"status": "Accepted"}

    async def call(self, action: str, payload: dict) -> dict:
        assert self.ws is not None
        msg_id = str(next(self._ids))
        fut = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        await self.ws.send(json.dumps([2, msg_id, action, payload]))
        self.stats.calls += 1
        msg = await asyncio.wait_for(fut, self.call_timeout)
        if msg[0] == 4:
            self.stats.errors += 1
            raise RuntimeError(f"{action}: {msg[2]}: {msg[3]}")
        return msg[2]

    # -- the messages ----------------------------------------------------------------------------------
    async def boot(self) -> dict:
        if self.version == "1.6":
            return await self.call("BootNotification", {"chargePointVendor": "sitekeeper",
                                                        "chargePointModel": "sim", "chargePointSerialNumber":
                                                        self.charger_id})
        return await self.call("BootNotification", {"reason": "PowerUp", "chargingStation": {
            "vendorName": "sitekeeper", "model": "sim", "serialNumber": self.charger_id}})

    async def status(self, status: str) -> dict:
        if self.version == "1.6":
            return await self.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                                          "status": status, "timestamp": _now()})
        mapping = {"Available": "Available", "Preparing": "Occupied", "Charging": "Occupied",
                   "Finishing": "Occupied"}
        return await self.call("StatusNotification", {"timestamp": _now(), "connectorStatus": mapping[status],
                                                      "evseId": 1, "connectorId": 1})

    async def heartbeat(self) -> dict:
        return await self.call("Heartbeat", {})

    async def authorize(self) -> str:
        if self.version == "1.6":
            return (await self.call("Authorize", {"idTag": self.id_tag}))["idTagInfo"]["status"]
        res = await self.call("Authorize", {"idToken": {"idToken": self.id_tag, "type": "ISO14443"}})
        return res["idTokenInfo"]["status"]

    def _sample(self) -> list[dict]:
        unit = {"unit": "Wh"} if self.version == "1.6" else {"unitOfMeasure": {"unit": "Wh"}}
        return [{"timestamp": _now(), "sampledValue": [{"value": str(self.meter_wh) if self.version == "1.6"
                                                        else self.meter_wh,
                                                        "measurand": "Energy.Active.Import.Register",
                                                        "context": "Sample.Periodic", **unit}]}]

    async def start(self) -> str:
        self._seq = 0
        self.start_wh = self.meter_wh
        if self.version == "1.6":
            res = await self.call("StartTransaction", {"connectorId": 1, "idTag": self.id_tag,
                                                       "meterStart": self.meter_wh, "timestamp": _now()})
            self.transaction_id = res["transactionId"]
            return res["idTagInfo"]["status"]
        self.transaction_id = uuid.uuid4().hex[:20]
        res = await self.call("TransactionEvent", self._tx_event("Started", "Authorized"))
        return res.get("idTokenInfo", {}).get("status", "Accepted")

    def _tx_event(self, event: str, trigger: str, reason: str | None = None) -> dict:
        info: dict = {"transactionId": self.transaction_id}
        if reason:
            info["stoppedReason"] = reason
        payload = {"eventType": event, "timestamp": _now(), "triggerReason": trigger, "seqNo": self._seq,
                   "transactionInfo": info, "evse": {"id": 1, "connectorId": 1}, "meterValue": self._sample()}
        if event == "Started":
            payload["idToken"] = {"idToken": self.id_tag, "type": "ISO14443"}
        self._seq += 1
        return payload

    async def meter(self, seconds: float) -> None:
        power = self.power_w if self.limit_a is None else min(self.power_w, self.limit_a * 230)
        self.meter_wh += int(power * max(seconds, 60.0) / 3600)  # a sample stands for ≥ 1 minute
        if self.version == "1.6":
            await self.call("MeterValues", {"connectorId": 1, "transactionId": self.transaction_id,
                                            "meterValue": self._sample()})
        else:
            await self.call("TransactionEvent", self._tx_event("Updated", "MeterValuePeriodic"))

    async def stop(self, reason: str = "Local") -> None:
        if self.version == "1.6":
            await self.call("StopTransaction", {"transactionId": self.transaction_id, "idTag": self.id_tag,
                                                "meterStop": self.meter_wh, "timestamp": _now(), "reason": reason})
        else:
            await self.call("TransactionEvent", self._tx_event("Ended", "StopAuthorized", reason))
        self.stats.energy_wh += self.meter_wh - self.start_wh
        self.stats.sessions += 1
        self.transaction_id = None
        self.limit_a = None  # a TxProfile ends with its session

    async def serve_remote(self, meter_samples: int = 1000) -> None:
        """Charge whenever the CSMS asks (RemoteStart / RequestStart), until it asks to stop."""
        while True:
            tag = await self.remote_starts.get()
            async with self.plug:
                own, self.id_tag = self.id_tag, tag
                try:
                    await self._charge(meter_samples)
                finally:
                    self.id_tag = own

    async def session(self, meter_samples: int = 3) -> bool:
        """One card session: authorize, start, meter values, stop. False if the card was refused."""
        if await self.authorize() != "Accepted":
            self.stats.refused += 1
            return False
        await self._charge(meter_samples)
        return True

    async def _charge(self, meter_samples: int) -> None:
        """Start, send meter values every `meter_interval` (until the CSMS asks to stop), stop."""
        await self.status("Preparing")
        if await self.start() != "Accepted":
            self.stats.refused += 1
        await self.status("Charging")
        for _ in range(meter_samples):
            if self.remote_stop.is_set():
                break
            try:
                await asyncio.wait_for(self.remote_stop.wait(), self.meter_interval)
            except TimeoutError:
                await self.meter(self.meter_interval)
        await self.stop("Remote" if self.remote_stop.is_set() else "Local")
        self.remote_stop.clear()
        await self.status("Available")


def tls_context(ca: str | None, cert: str | None, key: str | None, charger_id: str) -> ssl.SSLContext:
    """A client TLS context: trust `ca` (else the system's CAs) and present `cert`/`key`, in which ``{id}``
    stands for the charger id (security profile 3: each charger has a certificate of its own)."""
    ctx = ssl.create_default_context(cafile=ca or None)
    if cert:
        ctx.load_cert_chain(cert.replace("{id}", charger_id), key.replace("{id}", charger_id) if key else None)
    return ctx


def iso14443_uid(i: int) -> str:
    """The card of simulated charger `i`: a 7-byte ISO 14443 UID (NXP's 04 first) in 14 hex digits, as a
    strict CSMS expects (4- or 7-byte UIDs only)."""
    return f"04{i:012X}"


async def run_site(url: str, chargers: int, version: str, *, sessions: int = 1, prefix: str = "SIM",
                   meter_interval: float = 1.0, password: str | None = None, forever: bool = False,
                   ca: str | None = None, cert: str | None = None, key: str | None = None,
                   cards: list[str] | None = None, reconnect_min: float = 1.0,
                   refused_max: float = 60.0) -> list[SimStats]:
    """Run `chargers` simulated chargers, each doing `sessions` card sessions (or forever) with its card
    (`cards`, in turn; else a UID of its own), and any session the CSMS starts remotely meanwhile."""

    async def one(i: int) -> SimStats:
        charger_id = f"{prefix}{i:04d}"
        try:
            tls = tls_context(ca, cert, key, charger_id) if url.startswith("wss://") else None
        except (OSError, ssl.SSLError) as e:
            return SimStats(notes=[f"TLS material: {e}"])
        card = cards[(i - 1) % len(cards)] if cards else iso14443_uid(i)
        sim = SimCharger(url, charger_id, version, password=password, id_tag=card, meter_interval=meter_interval,
                         tls=tls)
        reconnect, refused = Backoff(reconnect_min, 30.0), Backoff(2.0, refused_max)
        done = 0

        async def card_sessions() -> None:
            nonlocal done
            while done < sessions or (forever and sessions > 0):
                await sim.heartbeat()
                async with sim.plug:
                    accepted = await sim.session()
                done += 1
                if accepted:
                    refused.reset()
                else:  # a charger does not try a refused card again at once
                    await asyncio.sleep(refused.next())
            if forever:  # sessions 0: only what the CSMS starts
                await asyncio.Event().wait()

        reconnects = 0
        while True:
            try:
                await sim.connect()
                await sim.boot()
                await sim.status("Available")
            except (OSError, TimeoutError, WebSocketException, RuntimeError) as e:
                await sim.close()
                if not forever and done == 0 and reconnects == 0:
                    sim.stats.notes.append(f"{type(e).__name__}: {e}")
                    return sim.stats
                reconnects += 1
                await asyncio.sleep(reconnect.next())
                continue
            reconnect.reset()
            assert sim.ws is not None
            work = asyncio.create_task(card_sessions())
            remote = asyncio.create_task(sim.serve_remote())
            closed = asyncio.create_task(sim.ws.wait_closed())
            try:
                await asyncio.wait([work, closed], return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (work, remote, closed):
                    task.cancel()
                await asyncio.gather(work, remote, closed, return_exceptions=True)
            lost = sim.ws.close_code is not None or (closed.done() and not closed.cancelled())
            if work.done() and not work.cancelled() and (work.exception() is None or not lost):
                if work.exception() is not None:  # a failure of its own, not the connection's
                    sim.stats.notes.append(f"{type(work.exception()).__name__}: {work.exception()}")
                await sim.close()
                return sim.stats
            await sim.close()
            log.info("simulated charger %s: connection lost; reconnecting", charger_id)
            reconnects += 1
            await asyncio.sleep(reconnect.next())

    return await asyncio.gather(*(one(i) for i in range(1, chargers + 1)))
