"""Benchmark of `sitekeeper sync` (cloud_sync.service.SyncService): outbox → MQTT throughput and memory.

What it measures, in one run, against its own mosquitto (tests/broker.py: 127.0.0.1, a free port):

1. raw baselines: one paho-mqtt 2.x client (MQTT v5, QoS 1) publishes N payloads taken from a real outbox
   (`edge.store.outbox.page`: the same topics, JSON and sizes) with the service's user properties (key,
   seq), keeping at most `max_inflight` unacknowledged, until every PUBACK is in → records/s and CPU µs per
   record. Twice: building paho `Properties` per message as the service does (the reference for the
   target), and with the user properties pre-encoded (`PackedUserProperties`: what the transport alone
   costs, i.e. the ceiling);
2. the real thing: a fresh SQLite outbox with N ledger-like records (`edge.store.outbox.add` inside large
   `Store.write_now` transactions), then the real console script `sitekeeper sync` as a subprocess with a
   config TOML ([site], [store], [mqtt] host/port/max_inflight). Timed from just before the process is
   started until no outbox row is left in state 'new' (the service marks a row 'sent' once its PUBACK is
   in; polled every 20 ms in SQLite) → records/s including start-up (ratio to the raw baseline: target
   ≥ 0.5×), and "steady" records/s from the first 'sent' row on;
3. the sync process's peak RSS (psutil, every 50 ms) and VmHWM (/proc/PID/status, read just before it is
   stopped) at N=10,000 and N=100,000: the outbox is read a page at a time, so memory must be flat
   (target: peak RSS at the larger N ≤ 1.10× that at the smaller).

During every run a subscriber in its own process (mosquitto_sub; or this file with --subscribe, i.e. paho,
with --paho-subscriber) takes `<prefix>/<site>/records/#` at QoS 1 like the cloud would and checks that all
N distinct seqs arrive, in order. The broker queues without limit for it, so a slow subscriber loses nothing
and never slows a publisher.

Run (from the repo root):
    .venv/bin/python bench/sync.py              # N = 10,000 and 100,000 (a few minutes)
    .venv/bin/python bench/sync.py --quick      # N = 2,000 and 20,000
Options: --inflight 100 (mqtt.max_inflight and the baselines' window), --repeat R (the run with the median
sync/raw ratio is shown, every run's ratio too), --workdir DIR and --keep (broker, databases, logs).

Figures depend on the machine and on what else runs on it (on a shared box they are noisy): compare the
ratios from one run rather than absolute figures across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "tests")) if p not in sys.path]

import paho.mqtt.client as mqtt  # noqa: E402
import psutil  # noqa: E402
from broker import Broker  # noqa: E402  (tests/broker.py)
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties, VariableByteIntegers  # noqa: E402

SITEKEEPER = str(Path(sys.executable).parent / "sitekeeper")
PREFIX = "sitekeeper"  # mqtt.topic_prefix's default
FILL_BATCH = 5000  # outbox rows per write_now transaction while filling
PAGE = 1000  # rows per outbox.page call when reading the baseline's payloads
POLL_S = 0.02  # how often the outbox is polled for rows still 'new'
RSS_EVERY_S = 0.05
RUN_TIMEOUT_S = 900.0
TARGET_RATIO = 0.5
TARGET_RSS_RATIO = 1.10
MIB = 1024 * 1024


# -- the subscriber (a separate process, so that it is not the benchmark's bottleneck) ---------------------
def subscriber_main(host: str, port: int, topic: str, n: int, timeout: float) -> int:
    """Subscribe `topic` at QoS 1, print "ready", count records until N distinct seqs, print a JSON result."""
    seen: set[int] = set()
    stats = {"messages": 0, "out_of_order": 0, "last_seq": 0, "first_t": 0.0, "last_t": 0.0}
    done = threading.Event()
    subscribed = threading.Event()

    def on_connect(client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        client.subscribe(topic, qos=1)

    def on_subscribe(client: mqtt.Client, userdata: object, mid: int, codes: object, props: object) -> None:
        subscribed.set()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        seq = int(dict(getattr(msg.properties, "UserProperty", None) or []).get("seq", "0"))
        if not stats["messages"]:
            stats["first_t"] = now
        stats["messages"] += 1
        stats["last_t"] = now
        if seq <= stats["last_seq"]:
            stats["out_of_order"] += 1
        stats["last_seq"] = max(stats["last_seq"], seq)
        seen.add(seq)
        if len(seen) >= n:
            done.set()

    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"bench-sub-{os.getpid()}", protocol=mqtt.MQTTv5)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port, keepalive=60)
    client.loop_start()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    if not subscribed.wait(10):
        print(json.dumps({"error": "no SUBACK"}), flush=True)
        return 1
    print("ready", flush=True)
    done.wait(timeout)
    client.disconnect()
    client.loop_stop()
    print(json.dumps({**stats, "distinct": len(seen)}), flush=True)
    return 0


class SubscriberProcess:
    """A subscriber in its own process: mosquitto_sub (C, cheap) or, with `paho=True` or without
    mosquitto_sub, this file with --subscribe. `result()` waits until it has N records (or times out)."""

    def __init__(self, broker: Broker, topic: str, n: int, name: str, paho: bool = False) -> None:
        self.n = n
        self.out_path = broker.dir / f"{name}.sub"
        binary = shutil.which("mosquitto_sub")
        self.paho = paho or binary is None
        if self.paho:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--subscribe", broker.host, str(broker.port), topic, str(n),
                 str(RUN_TIMEOUT_S)], stdout=subprocess.PIPE, text=True)
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline().strip()
            if line != "ready":
                self.proc.kill()
                raise RuntimeError(f"subscriber did not start: {line!r}")
            return
        assert binary is not None
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                [binary, "-V", "5", "-h", broker.host, "-p", str(broker.port), "-i", name, "-q", "1", "-t", topic,
                 "-C", str(n), "-F", "%P\\n"], stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while f"{name} 1 {topic}" not in broker.log():  # the broker logs each subscription
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"mosquitto_sub did not subscribe: {self.out_path.read_text()!r}")
            time.sleep(0.02)

    def result(self, timeout: float = 120.0) -> dict:
        """{"messages", "distinct", "out_of_order", ...} once N records arrived (or what arrived by `timeout`)."""
        if self.paho:
            try:
                out, _ = self.proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGTERM)  # it prints what it got so far
                out, _ = self.proc.communicate(timeout=10)
            lines = [line for line in out.splitlines() if line.startswith("{")]
            return json.loads(lines[-1]) if lines else {"error": "no result", "distinct": 0}
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        seqs = [int(s) for s in re.findall(rb"seq:(\d+)", self.out_path.read_bytes())]
        unordered = sum(1 for a, b in zip(seqs, seqs[1:], strict=False) if b <= a)
        return {"messages": len(seqs), "distinct": len(set(seqs)), "out_of_order": unordered,
                "last_seq": max(seqs, default=0)}


# -- the outbox ---------------------------------------------------------------------------------------------
def fill_outbox(db: Path, n: int) -> float:
    """A fresh database with N ledger-like outbox records (topups on 200 accounts); returns seconds taken."""
    from edge.clock import now_iso
    from edge.store import outbox
    from edge.store.sqlite import Store

    t0 = time.perf_counter()
    store = Store.open(str(db))
    balances: dict[int, int] = {}
    try:
        for start in range(0, n, FILL_BATCH):
            def batch(conn: sqlite3.Connection, start: int = start) -> None:
                created = now_iso()
                for i in range(start, min(start + FILL_BATCH, n)):
                    account = 1 + i % 200
                    amount = 10_000 + (i * 7919) % 90_000
                    balances[account] = balances.get(account, 0) + amount
                    key = f"topup:CARD{account:08X}:{i}"
                    outbox.add(conn, "ledger", f"ledger:{key}", {
                        "entry_id": i + 1, "entry_key": key, "account_id": account, "entry_kind": "topup",
                        "amount_minor": amount, "signed_minor": amount, "currency": "PHP",
                        "session_id": None, "note": None, "created": created,
                        "balance_minor": balances[account]})
            store.write_now(batch)
    finally:
        store.close()
    return time.perf_counter() - t0


@dataclass
class Message:
    topic: str
    payload: bytes
    key: str
    seq: int


def read_payloads(db: Path, site: str) -> list[Message]:
    """Every record as `sitekeeper sync` would publish it (outbox.page): topic, payload, key and seq."""
    from edge.store import outbox

    conn = sqlite3.connect(db)
    out: list[Message] = []
    try:
        cursor = 0
        while page := outbox.page(conn, site, cursor, PAGE):
            out += [Message(f"{PREFIX}/{site}/records/{rec.kind}", rec.payload, rec.key, rec.seq) for rec in page]
            cursor = page[-1].seq
    finally:
        conn.close()
    return out


# -- 1. raw paho baselines ----------------------------------------------------------------------------------
def _utf8(s: str) -> bytes:
    data = s.encode()
    return struct.pack("!H", len(data)) + data


class PackedUserProperties(Properties):
    """PUBLISH properties with only user properties, encoded once here. paho's `Properties` costs tens of µs
    to build and again to `pack()` (it rebuilds its name tables per instance and scans them per attribute);
    paho only ever calls `pack()` on the properties of an outgoing PUBLISH (and `str()` when logging)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        object.__setattr__(self, "packetType", PacketTypes.PUBLISH)
        body = b"".join(b"\x26" + _utf8(k) + _utf8(v) for k, v in pairs)  # 0x26: User Property
        object.__setattr__(self, "_packed", VariableByteIntegers.encode(len(body)) + body)
        object.__setattr__(self, "_pairs", pairs)

    def pack(self) -> bytes:
        return self._packed  # type: ignore[no-any-return]

    def __str__(self) -> str:
        return f"[UserProperty : {self._pairs}]"


@dataclass
class RawResult:
    seconds: float
    cpu_s: float
    failures: int
    received: dict


def raw_publish(broker: Broker, msgs: list[Message], window: int, client_id: str, paho_sub: bool,
                packed: bool = False) -> RawResult:
    """Publish `msgs` at QoS 1 from one paho client, ≤ `window` unacknowledged; time connect → last PUBACK.

    The user properties (key, seq) are built per message in the timed loop: with paho's `Properties`, or,
    with `packed`, pre-encoded by `PackedUserProperties` (what the transport alone costs).
    """
    sem = threading.BoundedSemaphore(window)
    done = threading.Event()
    connected = threading.Event()
    counts = {"acked": 0, "failed": 0}

    def on_connect(client: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        connected.set()

    def on_publish(client: mqtt.Client, userdata: object, mid: int, reason: mqtt.ReasonCode,
                   props: object) -> None:
        counts["acked"] += 1
        if reason.is_failure:
            counts["failed"] += 1
        sem.release()
        if counts["acked"] == len(msgs):
            done.set()

    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    client.on_connect = on_connect
    client.on_publish = on_publish
    host, port = broker.host, broker.port
    sub = SubscriberProcess(broker, msgs[0].topic.rsplit("/", 1)[0] + "/#", len(msgs), f"{client_id}-sub",
                            paho_sub)
    cpu0, t0 = time.process_time(), time.perf_counter()
    client.connect(host, port, keepalive=60)
    client.loop_start()
    if not connected.wait(10):
        raise RuntimeError("baseline client: no CONNACK")
    for m in msgs:
        sem.acquire()
        props: Properties
        if packed:
            props = PackedUserProperties([("key", m.key), ("seq", str(m.seq))])
        else:  # as cloud_sync.service does, and any v5 publisher of per-message user properties with paho's API
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("key", m.key), ("seq", str(m.seq))]
        info = client.publish(m.topic, m.payload, qos=1, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"baseline publish failed: {mqtt.error_string(info.rc)}")
    if not done.wait(RUN_TIMEOUT_S):
        raise RuntimeError(f"baseline: only {counts['acked']} of {len(msgs)} PUBACKs")
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    client.disconnect()
    client.loop_stop()
    return RawResult(seconds, cpu, counts["failed"], sub.result())


# -- 2./3. the real `sitekeeper sync` -----------------------------------------------------------------------
@dataclass
class SyncResult:
    seconds: float  # process start → no row left 'new'
    startup: float  # process start → the first row 'sent'
    cpu_s: float
    peak_rss: int
    vm_hwm: int | None
    rss_samples: list[tuple[float, int]] = field(default_factory=list)
    received: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    exit_code: int | None = None

    @property
    def steady_seconds(self) -> float:
        return self.seconds - self.startup


class RssSampler(threading.Thread):
    """psutil RSS of one process every 50 ms; `peak` and the samples (t, rss)."""

    def __init__(self, pid: int, t0: float) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.t0 = t0
        self.peak = 0
        self.samples: list[tuple[float, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            try:
                rss = self.proc.memory_info().rss
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            self.samples.append((time.perf_counter() - self.t0, rss))
            self.halt.wait(RSS_EVERY_S)


def vm_hwm(pid: int) -> int | None:
    """The kernel's peak RSS of `pid` (VmHWM, bytes), or None where /proc does not tell."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def run_sync(workdir: Path, db: Path, site: str, broker: Broker, n: int, window: int, paho_sub: bool) -> SyncResult:
    from conftest import to_toml

    host, port = broker.host, broker.port
    config = workdir / f"{site}.toml"
    config.write_text(to_toml({"site": {"id": site}, "store": {"path": str(db)},
                               "mqtt": {"host": host, "port": port, "max_inflight": window}}))
    sub = SubscriberProcess(broker, f"{PREFIX}/{site}/records/#", n, f"bench-sub-{site}", paho_sub)
    poll = sqlite3.connect(db, timeout=30)
    log = open(workdir / f"{site}.log", "ab")  # noqa: SIM115 (closed below)
    t0 = time.perf_counter()
    proc = subprocess.Popen([SITEKEEPER, "--config", str(config), "sync"], stdout=log, stderr=subprocess.STDOUT)
    sampler = RssSampler(proc.pid, t0)
    sampler.start()
    startup = end = 0.0
    try:
        deadline = t0 + RUN_TIMEOUT_S
        while True:
            now = time.perf_counter()
            if proc.poll() is not None:
                raise RuntimeError(f"sitekeeper sync exited with {proc.returncode}; see {log.name}")
            if now > deadline:
                raise RuntimeError(f"sitekeeper sync did not drain {n} records in {RUN_TIMEOUT_S:.0f} s")
            if not startup and poll.execute("SELECT 1 FROM outbox WHERE state = 'sent' LIMIT 1").fetchone():
                startup = now - t0
            if startup and not poll.execute("SELECT 1 FROM outbox WHERE state = 'new' LIMIT 1").fetchone():
                end = now - t0
                break
            time.sleep(POLL_S)
        hwm = vm_hwm(proc.pid)
        p = psutil.Process(proc.pid)
        cpu = sum(p.cpu_times()[:2])
    finally:
        sampler.halt.set()
        sampler.join()
        poll.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(5)
        log.close()
    out = subprocess.run([SITEKEEPER, "--config", str(config), "sync", "--status", "--json"],
                         capture_output=True, text=True, timeout=60)
    status = json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr.strip()}
    return SyncResult(end, startup, cpu, sampler.peak, hwm, sampler.samples, sub.result(), status, code)


# -- the run ------------------------------------------------------------------------------------------------
@dataclass
class SizeResult:
    n: int
    payload_bytes: float
    fill_s: float
    raw: RawResult
    packed: RawResult
    sync: SyncResult

    @property
    def ratio(self) -> float:
        return rate(self.n, self.sync.seconds) / rate(self.n, self.raw.seconds)


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def bench_size(workdir: Path, broker: Broker, n: int, window: int, run: int, paho_sub: bool) -> SizeResult:
    site = f"bench{n}r{run}"
    db = workdir / f"{site}.db"
    fill_s = fill_outbox(db, n)
    msgs = read_payloads(db, site)
    assert len(msgs) == n, (len(msgs), n)
    size = sum(len(m.payload) for m in msgs) / n
    raw = raw_publish(broker, msgs, window, f"bench-raw-{site}", paho_sub)
    packed = raw_publish(broker, msgs, window, f"bench-packed-{site}", paho_sub, packed=True)
    del msgs
    sync = run_sync(workdir, db, site, broker, n, window, paho_sub)
    return SizeResult(n, size, fill_s, raw, packed, sync)


def check(r: SizeResult) -> list[str]:
    """Problems seen in one size's runs (lost or unordered records, a bad exit, status disagreeing)."""
    problems = []
    for name, got in (("raw", r.raw.received), ("raw pre-encoded", r.packed.received), ("sync", r.sync.received)):
        if got.get("distinct") != r.n:
            problems.append(f"N={r.n} {name}: subscriber got {got.get('distinct')} of {r.n} distinct records"
                            f" ({got})")
        elif got.get("out_of_order"):
            problems.append(f"N={r.n} {name}: {got['out_of_order']} records out of order or duplicated")
    for name, res in (("raw", r.raw), ("raw pre-encoded", r.packed)):
        if res.failures:
            problems.append(f"N={r.n} {name}: {res.failures} PUBACKs with a failure reason code")
    if r.sync.status.get("unsent") != 0:
        problems.append(f"N={r.n} sync --status --json after the run: {r.sync.status}")
    if r.sync.exit_code not in (0, None):
        problems.append(f"N={r.n} sitekeeper sync exited with {r.sync.exit_code} after SIGTERM")
    return problems


def median_run(runs: list[SizeResult]) -> SizeResult:
    """Of repeated runs of one size, the one with the median sync/raw ratio (the run itself when R = 1)."""
    ordered = sorted(runs, key=lambda r: r.ratio)
    return ordered[(len(ordered) - 1) // 2]


def report(sizes: list[SizeResult], all_runs: list[list[SizeResult]], window: int, port: int, workdir: Path,
           load: tuple[float, float, float]) -> None:
    col = 16
    print(f"sitekeeper sync benchmark: mosquitto 127.0.0.1:{port}, QoS 1, MQTT v5, max_inflight={window}, "
          f"ledger records ~{sizes[0].payload_bytes:.0f} B JSON + user properties key/seq, db in {workdir}")
    repeat = len(all_runs[0])
    print(f"host: {os.cpu_count()} CPUs shared with other work, load avg {load[0]:.2f} before / "
          f"{os.getloadavg()[0]:.2f} after: figures are noisy"
          + (f"; median of {repeat} runs per size" if repeat > 1 else ""))
    print()

    def row(label: str, cells: list[str], target: str = "") -> None:
        print(f"{label:<46}" + "".join(f"{c:>{col}}" for c in cells) + (f"   {target}" if target else ""))

    def ok(value: float, good: bool) -> str:
        return f"{value:.2f}x {'ok' if good else 'NO'}"

    row("", [f"N={r.n:,}" for r in sizes])
    print("-" * (46 + col * len(sizes)))
    row("raw paho, Properties per message   rec/s", [f"{rate(r.n, r.raw.seconds):,.0f}" for r in sizes])
    row("raw paho, user props pre-encoded   rec/s", [f"{rate(r.n, r.packed.seconds):,.0f}" for r in sizes])
    row("sitekeeper sync, incl. start-up    rec/s", [f"{rate(r.n, r.sync.seconds):,.0f}" for r in sizes])
    row("  ratio to raw paho", [ok(r.ratio, r.ratio >= TARGET_RATIO) for r in sizes],
        f"target ≥ {TARGET_RATIO:.1f}x")
    row("sitekeeper sync, steady (1st PUBACK on) rec/s",
        [f"{rate(r.n, r.sync.steady_seconds):,.0f}" for r in sizes])
    row("  ratio to raw paho", [f"{rate(r.n, r.sync.steady_seconds) / rate(r.n, r.raw.seconds):.2f}x"
                                 for r in sizes])
    row("  ratio to raw paho, pre-encoded", [f"{rate(r.n, r.sync.steady_seconds) / rate(r.n, r.packed.seconds):.2f}x"
                                              for r in sizes])
    row("start-up: process start → 1st row 'sent'  s", [f"{r.sync.startup:.2f}" for r in sizes])
    row("CPU µs/record: raw / pre-encoded / sync",
        [f"{r.raw.cpu_s / r.n * 1e6:.0f}/{r.packed.cpu_s / r.n * 1e6:.0f}/{r.sync.cpu_s / r.n * 1e6:.0f}"
         for r in sizes])
    if repeat > 1:
        row("  sync/raw ratio of each run", [" ".join(f"{x.ratio:.2f}" for x in runs) for runs in all_runs])
    print()
    mib = MIB
    row("sync process peak RSS (psutil, 50 ms)   MiB", [f"{r.sync.peak_rss / mib:.1f}" for r in sizes])
    row("sync process VmHWM (/proc, at the end)  MiB",
        [f"{r.sync.vm_hwm / mib:.1f}" if r.sync.vm_hwm else "n/a" for r in sizes])
    row("sync process RSS at the end             MiB",
        [f"{r.sync.rss_samples[-1][1] / mib:.1f}" if r.sync.rss_samples else "n/a" for r in sizes])
    small, large = sizes[0], sizes[-1]
    rss_ratio = large.sync.peak_rss / small.sync.peak_rss
    hwm = (f", VmHWM {large.sync.vm_hwm / small.sync.vm_hwm:.2f}x" if small.sync.vm_hwm and large.sync.vm_hwm
           else "")
    print(f"peak RSS N={large.n:,} / N={small.n:,}: {ok(rss_ratio, rss_ratio <= TARGET_RSS_RATIO)}{hwm}"
          f"   target ≤ {TARGET_RSS_RATIO:.2f}x (flat)")
    print()
    print("raw = connect → last PUBACK; sync = process start (interpreter, imports, connect) → no outbox row 'new';"
          "\nsteady = from the first row marked 'sent'. A subscriber (mosquitto_sub, own process) checks every record"
          f"\narrives. Outbox fill: {', '.join(f'{r.fill_s:.1f} s' for r in sizes)}.")
    problems = [p for runs in all_runs for r in runs for p in check(r)]
    print("problems: " + ("none" if not problems else "\n  " + "\n  ".join(problems)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="N = 2,000 and 20,000 instead of 10,000 and 100,000")
    p.add_argument("--inflight", type=int, default=100, help="mqtt.max_inflight, also the baseline's window")
    p.add_argument("--repeat", type=int, default=1, help="runs per size; the run with the median ratio is shown")
    p.add_argument("--workdir", type=Path, help="where the broker, databases and logs go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--paho-subscriber", action="store_true",
                   help="subscribe with paho in a Python process instead of mosquitto_sub")
    p.add_argument("--subscribe", nargs=5, metavar=("HOST", "PORT", "TOPIC", "N", "TIMEOUT"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.subscribe:
        host, port, topic, n, timeout = args.subscribe
        return subscriber_main(host, int(port), topic, int(n), float(timeout))

    load = os.getloadavg()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-sync-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # no limit on the messages queued for a subscriber that lags: it must get every record
    broker = Broker(workdir / "mosquitto", extra_config="max_queued_messages 0").start()
    sizes = (2_000, 20_000) if args.quick else (10_000, 100_000)
    try:
        all_runs: list[list[SizeResult]] = []
        for n in sizes:
            runs = []
            for run in range(args.repeat):
                r = bench_size(workdir, broker, n, args.inflight, run, args.paho_subscriber)
                print(f"  N={n:,} run {run + 1}: raw {rate(n, r.raw.seconds):,.0f}/s, pre-encoded "
                      f"{rate(n, r.packed.seconds):,.0f}/s, sync {rate(n, r.sync.seconds):,.0f}/s ({r.ratio:.2f}x, "
                      f"start-up {r.sync.startup:.2f} s), peak RSS {r.sync.peak_rss / MIB:.1f} MiB", file=sys.stderr, flush=True)
                runs.append(r)
            all_runs.append(runs)
        report([median_run(runs) for runs in all_runs], all_runs, args.inflight, broker.port, workdir, load)
    finally:
        broker.stop()
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
