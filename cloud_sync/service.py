"""`sitekeeper sync`: the MQTT bridge between the site's outbox and the cloud (paho-mqtt 2.x, MQTT v5).

Out: outbox records in `seq` order, QoS 1, on `<prefix>/<site>/records/<kind>`, with `key` and `seq` in the
payload and as user properties; at most `mqtt.max_inflight` unacknowledged at a time, read from the database
a page at a time (a days-long backlog drains without memory growth). PUBACK → *sent*; the cloud's
`<prefix>/<site>/ack` `{"seq": N}` → *done* up to N. After a reconnect or a restart, everything not done is
sent again (the same `key`: duplicates are re-sends, never new records). paho keeps its session in memory
only, so the outbox, not paho, is what survives.
Also: `<prefix>/<site>/status` retained (`{"online": ...}`, the last will sets it false) and
`<prefix>/<site>/chargers/<id>/status` retained (connector states).

In: `<prefix>/<site>/cmd/<kind>` with a persistent session (clean_start false, a session expiry), so the
broker keeps commands while the site is offline; each is applied once (`cloud_sync.commands`) inside the
message callback, before paho acknowledges it, and answered on `<prefix>/<site>/cmd_ack/<id>`.

A broker or network fault never touches charging: this is its own process, and it only reads and appends.
"""

from __future__ import annotations

import json
import logging
import queue
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cloud_sync import commands
from cloud_sync.diagnose import why_unreachable
from edge.billing import sessions as billing
from edge.clock import now_iso
from edge.config import Config
from edge.notify import Pinger, notify
from edge.store import outbox, reads
from edge.store.guard import Lock
from edge.store.sqlite import Store

log = logging.getLogger("sitekeeper.sync")
CONNACK_WAIT = 10.0  # seconds without a broker connection before the sync looks for why itself


class SyncService:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.mq = cfg.mqtt
        self.site = cfg.site.id
        self.prefix = f"{self.mq.topic_prefix}/{self.site}"
        self.lock = Lock(cfg.store.path, "sync")  # one sync per site: two would knock each other off the broker
        self.lock.acquire()
        self.store = Store.open(cfg.store.path, create=False)
        billing.configure(billing.settings_from_config(cfg))
        self.events: queue.Queue[tuple] = queue.Queue()
        self.connected = False
        self.cursor = 0  # the last seq published on this connection
        self.inflight: dict[int, int] = {}  # paho mid → seq
        self.published_status: dict[str, str] = {}
        self.client: mqtt.Client | None = None
        self.published = 0
        self._last_error = ""
        self._down_since = 0.0  # when the broker connection was last lost (0: diagnosed already, or up)

    # -- paho callbacks (its network thread): hand over to the main loop, except commands ----------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.events.put(("connect", reason.is_failure, f"broker refused: {reason}"))

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        """paho could not connect and does not say why: ask DNS, TCP and TLS in turn."""
        self.events.put(("connect", True, why_unreachable(self.mq.host, self.mq.port, self._tls_context())))

    def _tls_context(self) -> ssl.SSLContext | None:
        if not (self.mq.tls or self.mq.ca_file or self.mq.cert_file):
            return None
        ctx = ssl.create_default_context(cafile=self.mq.ca_file or None)
        if self.mq.cert_file:
            ctx.load_cert_chain(self.mq.cert_file, self.mq.key_file or None)
        return ctx

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.events.put(("disconnect", str(reason)))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        self.events.put(("puback", mid, reason.is_failure, str(reason)))

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        topic = msg.topic
        if topic == f"{self.prefix}/ack":
            self.events.put(("ack", bytes(msg.payload)))
            return
        kind = topic.rsplit("/", 1)[-1]
        # Applied here, before paho sends the PUBACK: a crash before the commit means the broker re-sends.
        answer = self.store.write_now(lambda conn: commands.apply(conn, kind, bytes(msg.payload)))
        log.info("command %s %s: %s", kind, answer.get("id"), "ok" if answer["ok"] else answer["error"])
        ack_topic = f"{self.prefix}/cmd_ack/{answer['id'] if answer.get('id') else 'invalid'}"
        client.publish(ack_topic, json.dumps(answer), qos=1)

    # -- setup -------------------------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client_id = self.mq.client_id or f"sitekeeper-{self.site}"
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)
        if self.mq.username:
            client.username_pw_set(self.mq.username, self.mq.password or None)
        if self.mq.tls or self.mq.ca_file or self.mq.cert_file:
            client.tls_set(ca_certs=self.mq.ca_file or None, certfile=self.mq.cert_file or None,
                           keyfile=self.mq.key_file or None, cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(f"{self.prefix}/status", json.dumps({"online": False, "site": self.site}), qos=1,
                        retain=True)
        client.max_inflight_messages_set(self.mq.max_inflight)
        client.max_queued_messages_set(0)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- main loop ---------------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        self.store.write_now(lambda c: outbox.set_meta(
            c, connected="0", heartbeat=now_iso(), broker=f"{self.mq.host}:{self.mq.port}" if self.mq.host else "",
            error="" if self.mq.host else "no [mqtt] host configured: records wait in the outbox"))
        notify("READY=1")
        ping = Pinger()
        if not self.mq.host:
            log.warning("no [mqtt] host configured: cloud sync is idle; records wait in the outbox")
            while not stop.wait(1):
                ping()
                self.store.write_now(lambda c: outbox.set_meta(c, heartbeat=now_iso()))
            return
        self.client = self._make_client()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(self.mq.session_expiry_hours * 3600)
        self.client.connect_async(self.mq.host, self.mq.port, keepalive=self.mq.keepalive, clean_start=False,
                                  properties=props)
        self.client.loop_start()
        log.info("cloud sync: broker %s:%d, topics under %s/", self.mq.host, self.mq.port, self.prefix)
        last_beat = last_prune = last_status = 0.0
        self._down_since = time.monotonic()
        try:
            while not stop.is_set():
                ping()
                sent = self._handle_events(timeout=0.2)
                if not self.connected and self._down_since and time.monotonic() - self._down_since > CONNACK_WAIT:
                    # TCP up but no MQTT answer (a plain client on a TLS port waits for ever): say why, once
                    self._down_since = 0.0
                    why = why_unreachable(self.mq.host, self.mq.port, self._tls_context())
                    self._connected(failed=True, reason=f"no MQTT answer in {CONNACK_WAIT:g} s: {why}")
                if self.connected:
                    self._publish_more()  # refill the window first: the marks' fsync need not hold it up
                if sent:
                    self.store.write_now(lambda c, sent=sent: outbox.mark_sent(c, sent))
                now = time.monotonic()
                if self.connected and now - last_status >= 1.0:
                    last_status = now
                    self._publish_charger_status()
                if now - last_beat > 5:
                    last_beat = now
                    self.store.write_now(lambda c: outbox.set_meta(c, heartbeat=now_iso(),
                                                                    connected="1" if self.connected else "0"))
                if now - last_prune > 3600:
                    last_prune = now
                    self.store.write_now(lambda c: outbox.prune(c, self.mq.retention_days))
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        if self.client is not None:
            if self.connected:
                info = self.client.publish(f"{self.prefix}/status",
                                           json.dumps({"online": False, "site": self.site}), qos=1, retain=True)
                info.wait_for_publish(3)
            self.client.disconnect()
            self.client.loop_stop()
        self.store.write_now(lambda c: outbox.set_meta(c, connected="0", heartbeat=now_iso()))
        self.store.close()

    def _handle_events(self, timeout: float) -> list[int]:
        """Handle what paho reported; return the seqs PUBACKed (for the caller to mark sent)."""
        sent: list[int] = []
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            return sent
        while True:
            kind = event[0]
            if kind == "connect":
                self._connected(failed=event[1], reason=event[2])
            elif kind == "disconnect":
                if self.connected:
                    log.warning("broker connection lost: %s", event[1])
                    self._down_since = time.monotonic()
                self.connected = False
                self.inflight.clear()
                self.store.write_now(lambda c: outbox.set_meta(c, connected="0"))
            elif kind == "puback":
                seq = self.inflight.pop(event[1], None)
                if seq is not None and not event[2]:
                    sent.append(seq)
                elif seq is not None:
                    log.warning("broker refused record %d: %s (re-sent after reconnect)", seq, event[3])
            elif kind == "ack":
                self._cloud_ack(event[1])
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
        return sent

    def _connected(self, failed: bool, reason: str) -> None:
        if failed:
            self._down_since = 0.0  # the reason is known: no need to look for it
            said = reason
            if said != self._last_error:  # said once until it changes (paho retries every few seconds)
                log.error("cannot connect to the broker %s:%d: %s", self.mq.host, self.mq.port, said)
                self._last_error = said
            self.store.write_now(lambda c: outbox.set_meta(c, connected="0", error=said))
            return
        self._last_error = ""
        self._down_since = 0.0
        assert self.client is not None
        self.connected = True
        self.inflight.clear()
        self.published_status.clear()
        self.cursor = outbox.first_not_done(self.store.db.conn)  # re-send everything not done
        self.client.subscribe([(f"{self.prefix}/ack", 1), (f"{self.prefix}/cmd/+", 1)])
        self.client.publish(f"{self.prefix}/status", json.dumps({"online": True, "site": self.site,
                                                                 "since": now_iso()}), qos=1, retain=True)
        self.store.write_now(lambda c: outbox.set_meta(c, connected="1", error=""))
        log.info("connected to the broker; resuming after seq %d", self.cursor)

    def _cloud_ack(self, payload: bytes) -> None:
        try:
            upto = json.loads(payload)["seq"]
            if isinstance(upto, bool) or not isinstance(upto, int):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed ack: %r", payload[:100])
            return
        sent = max(self.cursor, outbox.last_sent(self.store.db.conn))
        if upto > sent:
            log.warning("refused an ack up to seq %d: only up to seq %d was sent (nothing marked done)", upto, sent)
            return
        self.store.write_now(lambda c: outbox.mark_done(c, upto))

    def _publish_more(self) -> None:
        assert self.client is not None
        room = self.mq.max_inflight - len(self.inflight)
        if room <= 0:
            return
        for rec in outbox.page(self.store.db.conn, self.site, self.cursor, room):
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("key", rec.key), ("seq", str(rec.seq))]
            info = self.client.publish(f"{self.prefix}/records/{rec.kind}", rec.payload, qos=1, properties=props)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break  # disconnected meanwhile: resume from the cursor after the reconnect
            self.inflight[info.mid] = rec.seq
            self.cursor = rec.seq
            self.published += 1

    def _publish_charger_status(self) -> None:
        assert self.client is not None
        for cid, st in reads.charger_statuses(self.store.db.conn).items():
            body = json.dumps({"charger": cid, **st}, separators=(",", ":"))
            if self.published_status.get(cid) != body:
                self.client.publish(f"{self.prefix}/chargers/{cid}/status", body, qos=1, retain=True)
                self.published_status[cid] = body


def run(cfg: Config) -> None:
    """Run until SIGTERM / SIGINT."""
    import signal

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    SyncService(cfg).run(stop)
