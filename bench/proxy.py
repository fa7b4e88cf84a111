"""Benchmark of the edge as an OCPP 1.6J proxy and as a standalone CSMS (not a test: it prints figures).

Everything runs on 127.0.0.1, free ports, each process on its own: the edge is `sitekeeper run` (a fresh
database per run), the CSMS is bench/light_csms.py, the bare relay bench/relay.py, the chargers come from
bench/loadgen.py.

A. Round-trip latency, one charger per setup, sequential CALLs: Heartbeat and StartTransaction p50/p99
   (1) direct to the CSMS, (2) through a bare WebSocket relay, (3) through the edge in proxy mode, with the
   ratios to direct next to the targets p50 ≤ 1.3× and p99 ≤ 1.5×. The three setups are interleaved call
   by call, so that other work on the machine falls on all three alike.
B. Throughput with N chargers per setup (50, 200, 1,000), each sending back to back with one CALL
   outstanding (Heartbeat, Status, Start, 4× MeterValues, Stop, Status): CALLs answered per second and
   p50/p99 latency, direct vs through the bare relay vs the edge in proxy mode (target ≥ 0.7× direct) vs the
   edge in standalone mode (it persists to SQLite; target at 1,000 chargers: ≥ 1,500 msg/s, p99 ≤ 1 s, edge
   RSS ≤ 150 MB). All setups' chargers stay connected and the setups take turns (order rotating per round).
C. 2,000 chargers connected to a standalone edge for 30 s with a Heartbeat each every 10 s, then one more
   each on the same connection: errors, chargers still there, edge RSS.

Next to each figure: CPU use over exactly the measured window (psutil cpu_times / wall; 100% = one core) of
the load generator, of the relay or edge under test and of the CSMS, what the rest of the machine used, and
how long the edge's threads waited for a CPU (Linux schedstat), so that a saturated generator or a busy
machine shows; "µs/msg" is the relay's or edge's CPU time per CALL, the figure that least depends on other
load. Edge RSS is the peak of psutil samples every 0.2 s. Every figure comes from the same run as its
baseline.

Run::

    .venv/bin/python bench/proxy.py --quick     # about 1.5 minutes: 500 calls, 50/200 chargers, short turns
    .venv/bin/python bench/proxy.py             # full: about 7-8 minutes
    .venv/bin/python bench/proxy.py --only B --counts 1000 --rounds 1 --py-spy /tmp/prof
    .venv/bin/python bench/proxy.py --only A --csms-delay 20    # the CSMS answers 20 ms late, like a cloud

``--py-spy DIR`` records each edge with py-spy (``.venv/bin/pip install py-spy``; not a project dependency)
while it is under load, GIL-holding samples only (``PYSPY_ARGS=" "`` for every thread's CPU samples), one file
of collapsed stacks per turn. ``--json PATH``
saves every figure (with per-action latencies); ``--keep`` keeps the databases and logs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from benchutil import READY, free_port, raise_nofile

HERE = Path(__file__).resolve().parent
PY = sys.executable
SITEKEEPER = Path(sys.executable).parent / "sitekeeper"

LAT_P50_MAX, LAT_P99_MAX = 1.3, 1.5  # × direct
PROXY_RATE_MIN = 0.7  # × direct
SA_RATE_MIN, SA_P99_MAX_MS, SA_RSS_MAX_MB, SA_TARGET_AT = 1500.0, 1000.0, 150.0, 1000


# -- processes -------------------------------------------------------------------------------------------
_SERVICES: list[Service] = []  # every service started, so that none outlives the benchmark


@dataclass
class Service:
    """A helper process (CSMS, relay or edge) that we started and must stop."""

    name: str
    popen: subprocess.Popen
    port: int
    log: Path
    ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.popen.pid)
        _SERVICES.append(self)

    def url(self, path: str = "/ocpp") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def stop(self) -> int | None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode

    def log_problems(self) -> list[str]:
        """Lines of the service's log that speak of trouble (errors, tracebacks)."""
        if not self.log.exists():
            return []
        return [ln for ln in self.log.read_text(errors="replace").splitlines()
                if " ERROR " in ln or "Traceback" in ln or " CRITICAL " in ln]


def start_helper(name: str, argv: list[str], workdir: Path, timeout: float = 20.0) -> Service:
    """Start a bench/ script that prints ``ready port=N`` on stdout once it listens."""
    log = workdir / f"{name}.log"
    with open(log, "a") as err:
        popen = subprocess.Popen([PY, *argv], stdout=subprocess.PIPE, stderr=err, text=True, cwd=HERE)
    assert popen.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = popen.stdout.readline()
        if line.startswith(READY):
            return Service(name, popen, int(line[len(READY):]), log)
        if not line and popen.poll() is not None:
            break
    popen.kill()
    raise RuntimeError(f"{name} did not start:\n{log.read_text()}")


def _toml(tables: dict[str, dict[str, Any]]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        return json.dumps(str(v))

    return "".join(f"[{name}]\n" + "".join(f"{k} = {value(v)}\n" for k, v in table.items()) + "\n"
                   for name, table in tables.items())


def start_edge(name: str, workdir: Path, upstream: str | None, timeout: float = 30.0) -> Service:
    """`sitekeeper run` with a fresh database: proxy mode toward `upstream`, or standalone when None."""
    d = workdir / name
    d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = {
        "site": {"id": f"bench-{name}"},
        "store": {"path": str(d / "site.db")},
        "ocpp": {"host": "127.0.0.1", "port": port, "security_profile": 0, "allow_unknown_chargers": True},
        "upstream": {"mode": "proxy", "url": upstream} if upstream else {"mode": "standalone"},
        "web": {"host": "127.0.0.1", "port": free_port()},
    }
    (d / "sitekeeper.toml").write_text(_toml(cfg))
    log = d / "edge.log"
    cmd = [str(SITEKEEPER)] if SITEKEEPER.exists() else [PY, "-m", "edge.cli.main"]
    with open(log, "a") as out:
        popen = subprocess.Popen([*cmd, "--config", str(d / "sitekeeper.toml"), "run"], stdout=out,
                                 stderr=subprocess.STDOUT, cwd=d)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"edge exited with {popen.returncode}:\n{log.read_text()}")
        if "ready: ocpp=" in log.read_text(errors="replace"):
            return Service(f"edge-{name}", popen, port, log)
        time.sleep(0.05)
    popen.kill()
    raise RuntimeError(f"edge did not start:\n{log.read_text()}")


class RssSampler(threading.Thread):
    """Samples a process's RSS every `period` seconds and keeps the peak."""

    def __init__(self, ps: psutil.Process, period: float = 0.2):
        super().__init__(daemon=True)
        self.ps = ps
        self.period = period
        self.peak = 0
        self._stop_evt = threading.Event()

    def run(self) -> None:
        while not self._stop_evt.is_set():
            try:
                self.peak = max(self.peak, self.ps.memory_info().rss)
            except psutil.Error:
                return
            self._stop_evt.wait(self.period)

    def stop(self) -> float:
        self._stop_evt.set()
        self.join()
        try:
            self.peak = max(self.peak, self.ps.memory_info().rss)
        except psutil.Error:
            pass
        return self.peak / 2**20


def _cpu(ps: psutil.Process) -> float:
    try:
        t = ps.cpu_times()
        return t.user + t.system
    except psutil.Error:
        return float("nan")


def _runq_wait(ps: psutil.Process) -> float:
    """Seconds the process's threads have spent runnable but waiting for a CPU (Linux schedstat)."""
    total = 0.0
    try:
        for tid in os.listdir(f"/proc/{ps.pid}/task"):
            with open(f"/proc/{ps.pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return float("nan")
    return total


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent not idle (steal counts as busy: someone else ran)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)


def _snapshot(procs: dict[str, psutil.Process]) -> dict[str, float]:
    snap = {n: _cpu(p) for n, p in procs.items()}
    snap["machine"] = _machine_busy()
    for n, p in procs.items():
        if n != "gen":
            snap[f"{n} rq"] = _runq_wait(p)
            try:
                snap[f"{n} sys"] = p.cpu_times().system
            except psutil.Error:
                snap[f"{n} sys"] = float("nan")
    return snap


def _window(c0: dict[str, float], c1: dict[str, float], procs: dict[str, psutil.Process],
            wall: float) -> dict[str, float]:
    """% of one core over the window: each process, the machine, the rest of the machine ('other')."""
    out = {k: 100 * (c1[k] - c0[k]) / wall for k in c0}
    out["other"] = out["machine"] - sum(out[n] for n in procs if n in out)
    out["wall"] = wall
    return out


@dataclass
class GenRun:
    result: dict[str, Any]
    cpu: dict[str, dict[str, float]]  # window label → process name (or "other", "edge… rq") → % of one core
    rss_mb: dict[str, float]  # peak RSS of each process asked for
    wall: float

    def cpu_of(self, name: str) -> dict[str, float]:
        """CPU use over all windows labelled `name` or `name#round`, weighted by their length."""
        wins = [w for label, w in self.cpu.items() if label == name or label.split("#")[0] == name]
        wall = sum(w["wall"] for w in wins)
        keys = {k for w in wins for k in w} - {"wall"}
        return {k: sum(w.get(k, 0.0) * w["wall"] for w in wins) / wall for k in keys} if wall else {}


def run_loadgen(args: list[str], watch: dict[str, psutil.Process], workdir: Path, *,
                rss_of: dict[str, psutil.Process] | None = None, limit_s: float = 600.0,
                profile: dict[str, tuple[psutil.Process, Path]] | None = None) -> GenRun:
    """Run bench/loadgen.py; measure the CPU of it and of `watch` over each window it announces.

    `profile`: window name → (process, path prefix): py-spy records that process during those windows, into
    ``<prefix>-<window label>.txt``."""
    log = workdir / "loadgen.log"
    t_start = time.perf_counter()
    with open(log, "a") as err:
        popen = subprocess.Popen([PY, str(HERE / "loadgen.py"), *args], stdout=subprocess.PIPE, stderr=err,
                                 text=True, cwd=HERE)
    assert popen.stdout is not None
    procs = {"gen": psutil.Process(popen.pid), **watch}
    samplers = {n: RssSampler(p) for n, p in (rss_of or {}).items()}
    for sampler in samplers.values():
        sampler.start()
    killer = threading.Timer(limit_s, popen.kill)
    killer.start()
    spy: subprocess.Popen | None = None
    begun: dict[str, tuple[float, dict[str, float]]] = {}
    cpu: dict[str, dict[str, float]] = {}
    result: dict[str, Any] = {}
    try:
        for line in popen.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            now = time.perf_counter()
            label = ev.get("label", "")
            if ev.get("event") == "start":
                begun[label] = (now, _snapshot(procs))
                target = (profile or {}).get(label.split("#")[0])
                if target is not None:
                    ps, out = target
                    spy = _start_py_spy(ps, out.with_name(f"{out.name}-{label.replace('#', '-r')}.txt"))
            elif ev.get("event") == "end" and label in begun:
                t0, c0 = begun[label]
                cpu[label] = _window(c0, _snapshot(procs), procs, now - t0)
                _stop_py_spy(spy)
                spy = None
            elif ev.get("event") == "result":
                result = ev
        popen.wait()
    finally:
        killer.cancel()
        _stop_py_spy(spy)
        if popen.poll() is None:
            popen.kill()
            popen.wait()
    rss = {n: s.stop() for n, s in samplers.items()}
    if not result:
        raise RuntimeError(f"loadgen failed (exit {popen.returncode}):\n{log.read_text()[-3000:]}")
    return GenRun(result, cpu, rss, time.perf_counter() - t_start)


def _start_py_spy(ps: psutil.Process, out: Path) -> subprocess.Popen | None:
    spy = shutil.which("py-spy", path=str(Path(PY).parent)) or shutil.which("py-spy")
    if spy is None:
        print("  (py-spy not found: no profile)", flush=True)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([spy, "record", "--pid", str(ps.pid), "--rate", "250", "--nonblocking", *os.environ.get("PYSPY_ARGS", "--gil").split(),
                             "--format", "raw", "-o", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _stop_py_spy(spy: subprocess.Popen | None) -> None:
    if spy is None:
        return
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(30)
    except subprocess.TimeoutExpired:
        spy.kill()


# -- formatting --------------------------------------------------------------------------------------------
def pct(v: float | None) -> str:
    return "-" if v is None or v != v else f"{v:.0f}%"


def num(v: float | None, digits: int = 2) -> str:
    return "-" if v is None or v != v else f"{v:.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b and a == a and b == b else None


def ok(flag: bool) -> str:
    return "ok" if flag else "MISS"


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# -- the sections ----------------------------------------------------------------------------------------
def section_a(opt: argparse.Namespace, csms: Service, workdir: Path, report: dict[str, Any]) -> list[str]:
    relay = start_helper("relay", ["relay.py", "--target", f"ws://127.0.0.1:{csms.port}"], workdir)
    edge = start_edge("latency-proxy", workdir, csms.url())
    names = ["direct", "relay", "edge-proxy"]
    urls = [csms.url(), relay.url(), edge.url()]
    watch = {"csms": csms.ps, "relay": relay.ps, "edge": edge.ps}
    profile = {m: (edge.ps, Path(opt.py_spy or ".") / "A-edge-proxy") for m in ("Heartbeat", "StartTransaction")}
    try:
        run = run_loadgen(["latency", "--calls", str(opt.latency_calls), "--prefix", "LAT-",
                           *[a for n, u in zip(names, urls, strict=True) for a in ("--name", n, "--url", u)]],
                          watch, workdir, profile=profile if opt.py_spy else None)
    finally:
        relay.stop()
        edge.stop()
    print(f"  A done ({run.wall:.0f} s)", flush=True)
    res = run.result
    report["A"] = {"result": res, "cpu": run.cpu}
    problems = edge.log_problems()
    out = [f"A. Round trip, OCPP 1.6, one charger per setup, {opt.latency_calls} sequential calls of each kind per "
           "setup, the three setups interleaved call by call",
           "   (StartTransaction: each followed by an unmeasured StopTransaction)",
           f"   {'message':<17}{'setup':<11}{'p50 ms':>8}{'p99 ms':>8}{'p50/dir':>9}{'p99/dir':>9}"
           f"{'+p50 ms':>9}{'+p99 ms':>9}   target p50≤{LAT_P50_MAX}×, p99≤{LAT_P99_MAX}× direct"]
    for action in ("Heartbeat", "StartTransaction"):
        base = res[action]["direct"]
        for name in names:
            r = res[action][name]
            r50, r99 = ratio(r["p50_ms"], base["p50_ms"]), ratio(r["p99_ms"], base["p99_ms"])
            verdict = ""
            if name == "edge-proxy" and r50 is not None and r99 is not None:
                verdict = f"p50 {ok(r50 <= LAT_P50_MAX)}, p99 {ok(r99 <= LAT_P99_MAX)}"
            out.append(f"   {action if name == 'direct' else '':<17}{name:<11}{num(r['p50_ms'], 3):>8}"
                       f"{num(r['p99_ms'], 3):>8}{num(r50):>8}×{num(r99):>8}×"
                       f"{num(r['p50_ms'] - base['p50_ms'], 3):>9}{num(r['p99_ms'] - base['p99_ms'], 3):>9}   {verdict}")
        c = run.cpu_of(action)
        out.append(f"   {'':<17}CPU over these calls: gen {pct(c.get('gen'))}, relay {pct(c.get('relay'))}, "
                   f"edge {pct(c.get('edge'))}, csms {pct(c.get('csms'))}, other {pct(c.get('other'))}; "
                   f"edge rq {pct(c.get('edge rq'))}")
    out.append(f"   errors seen by the generator: {res.get('errors', 0)}; edge log errors: {len(problems)}")
    return out


def section_b(opt: argparse.Namespace, csms: Service, workdir: Path, report: dict[str, Any]) -> list[str]:
    rows: list[dict[str, Any]] = []
    for n in opt.counts:
        relay = start_helper(f"relay{n}", ["relay.py", "--target", f"ws://127.0.0.1:{csms.port}"], workdir)
        proxy_edge = start_edge(f"tput{n}-proxy", workdir, csms.url())
        sa_edge = start_edge(f"tput{n}-standalone", workdir, None)
        edges = {"edge-proxy": proxy_edge, "standalone": sa_edge}
        names = ["direct", "relay", "edge-proxy", "standalone"]
        urls = [csms.url(), relay.url(), proxy_edge.url(), sa_edge.url()]
        watch = {"csms": csms.ps, "relay": relay.ps, "edge-proxy": proxy_edge.ps, "standalone": sa_edge.ps}
        profile = {nm: (e.ps, Path(opt.py_spy or ".") / f"B-{n}") for nm, e in edges.items()}
        per_turn = opt.warmup + opt.seconds
        try:
            run = run_loadgen(["throughput", "--chargers", str(n), "--rounds", str(opt.rounds), "--seconds",
                               str(opt.seconds), "--warmup", str(opt.warmup), "--prefix", f"T{n}-",
                               *[a for nm, u in zip(names, urls, strict=True) for a in ("--name", nm, "--url", u)]],
                              watch, workdir, rss_of={nm: e.ps for nm, e in edges.items()},
                              profile=profile if opt.py_spy else None,
                              limit_s=300 + len(names) * opt.rounds * (per_turn + 30))
        finally:
            relay.stop()
            for e in edges.values():
                e.stop()
        targets = run.result["targets"]
        base = targets["direct"]
        for name in names:
            t = targets[name]
            c = run.cpu_of(name)
            edge = edges.get(name)
            middle = name if name in watch and name != "csms" else None  # the process between charger and CSMS
            row = {"chargers": n, "setup": name, "rate": t["rate"], "p50_ms": t["p50_ms"], "p99_ms": t["p99_ms"],
                   "vs_direct": ratio(t["rate"], base["rate"]), "rates": [w["rate"] for w in t["windows"]],
                   "cpu": {"gen": c.get("gen"), "mid": c.get(middle) if middle else None,
                           "csms": c.get("csms") if name != "standalone" else None,
                           "other": c.get("other"), "rq": c.get(f"{middle} rq") if middle else None,
                           "sys": c.get(f"{middle} sys") if middle else None},
                   "rss_mb": run.rss_mb.get(name), "errors": t["errors"], "error_kinds": t["error_kinds"],
                   "connected": t["connected"], "connect_s": t["connect_s"], "by_action": t["by_action"],
                   "edge_log_errors": len(edge.log_problems()) if edge else 0,
                   "edge_log_first": (edge.log_problems() or [""])[0][:200] if edge else ""}
            rows.append(row)
        print(f"  B {n:>5} chargers done ({run.wall:.0f} s): "
              + ", ".join(f"{r['setup']} {r['rate']:.0f}/s" for r in rows[-len(names):]), flush=True)
    report["B"] = rows
    out = [f"B. Throughput, OCPP 1.6, N chargers per setup back to back; the setups take turns, {opt.rounds}× "
           f"{opt.seconds:g} s measured each after {opt.warmup:g} s warm-up",
           "   (msg/s = CALLs answered per second, over all turns; per turn in brackets; latency over all turns)",
           "   (CPU: gen, mid = the relay or edge under test, csms, other; rq = mid's threads waiting for a CPU;"
           " µs/msg = mid's CPU time per CALL, sys = its share in the kernel)",
           f"   {'chargers':>8} {'setup':<11}{'msg/s':>7}{'p50 ms':>8}{'p99 ms':>8}{'×direct':>9}{'gen':>6}"
           f"{'mid':>6}{'csms':>6}{'other':>6}{'rq':>6}{'µs/msg':>7}{'sys':>5}{'RSS':>8}{'errors':>7}  target / per turn"]
    for r in rows:
        target = ""
        if r["setup"] == "edge-proxy" and r["vs_direct"] is not None:
            target = f"≥{PROXY_RATE_MIN}× direct: {ok(r['vs_direct'] >= PROXY_RATE_MIN)}"
        elif r["setup"] == "standalone" and r["chargers"] == SA_TARGET_AT:
            target = (f"≥{SA_RATE_MIN:.0f}/s {ok(r['rate'] >= SA_RATE_MIN)}, p99≤1 s "
                      f"{ok(r['p99_ms'] <= SA_P99_MAX_MS)}, RSS≤{SA_RSS_MAX_MB:.0f} MB "
                      f"{ok((r['rss_mb'] or 0) <= SA_RSS_MAX_MB)}")
        rss = f"{r['rss_mb']:.0f}MB" if r["rss_mb"] else "-"
        c = r["cpu"]
        us = f"{c['mid'] * 1e4 / r['rate']:.0f}" if c["mid"] is not None and r["rate"] else "-"
        sys_share = f"{100 * c['sys'] / c['mid']:.0f}%" if c.get("sys") is not None and c["mid"] else "-"
        turns = "[" + " ".join(f"{x:.0f}" for x in r["rates"]) + "]"
        out.append(f"   {r['chargers']:>8} {r['setup']:<11}{r['rate']:>7.0f}{num(r['p50_ms'], 1):>8}"
                   f"{num(r['p99_ms'], 1):>8}{num(r['vs_direct']):>8}×{pct(c['gen']):>6}"
                   f"{pct(c['mid']):>6}{pct(c['csms']):>6}{pct(c['other']):>6}{pct(c['rq']):>6}{us:>7}{sys_share:>5}"
                   f"{rss:>8}{r['errors']:>7}  {(target + ' ') if target else ''}{turns}")
    log_errors = sum(r["edge_log_errors"] for r in rows)
    kinds: dict[str, int] = {}
    for r in rows:
        for k, v in r["error_kinds"].items():
            kinds[k] = kinds.get(k, 0) + v
    out.append(f"   edge log errors: {log_errors}" + (f"; generator errors by kind: {kinds}" if kinds else ""))
    out += [f"   {r['chargers']} {r['setup']}: first edge log error: {r['edge_log_first']}" for r in rows
            if r["edge_log_first"]]
    return out


def section_c(opt: argparse.Namespace, workdir: Path, report: dict[str, Any]) -> list[str]:
    edge = start_edge(f"hold{opt.hold_chargers}", workdir, None)
    try:
        prof = {"hold": (edge.ps, Path(opt.py_spy) / "C")} if opt.py_spy else None
        run = run_loadgen(["hold", "--url", edge.url(), "--name", "standalone", "--chargers", str(opt.hold_chargers),
                           "--seconds", str(opt.hold_seconds), "--interval", str(opt.hold_interval),
                           "--prefix", "HOLD-"],
                          {"edge": edge.ps}, workdir, rss_of={"edge": edge.ps}, profile=prof,
                          limit_s=opt.hold_seconds + 600)
    finally:
        edge.stop()
    print(f"  C done ({run.wall:.0f} s)", flush=True)
    r = run.result
    h = r["hold"]
    c = run.cpu_of("hold")
    problems = edge.log_problems()
    rss = run.rss_mb.get("edge") or 0.0
    report["C"] = {"result": r, "cpu": run.cpu, "rss_mb": rss, "edge_log_errors": len(problems)}
    clean = r["errors"] == 0 and r["alive_at_end"] == opt.hold_chargers and not problems
    out = [f"C. {opt.hold_chargers} chargers connected to a standalone edge for {opt.hold_seconds:g} s, a Heartbeat "
           f"each every {opt.hold_interval:g} s, then one more each on the same connection",
           f"   {'connected':>10}{'connect s':>10}{'alive at end':>13}{'errors':>7}{'hb p50 ms':>10}{'hb p99 ms':>10}"
           f"{'gen':>6}{'edge':>6}{'other':>6}{'edge RSS peak':>14}  target",
           f"   {r['connected']:>10}{r['connect_s']:>10.1f}{r['alive_at_end']:>13}{r['errors']:>7}"
           f"{num(h['p50_ms'], 1):>10}{num(h['p99_ms'], 1):>10}{pct(c.get('gen')):>6}{pct(c.get('edge')):>6}"
           f"{pct(c.get('other')):>6}{rss:>11.0f} MB  no errors: {ok(clean)}"]
    if r["error_kinds"] or problems:
        out.append(f"   generator errors by kind: {r['error_kinds']}; edge log errors: {len(problems)}"
                   + (f" (first: {problems[0][:160]})" if problems else ""))
    return out


def _edge_version() -> str:
    root = HERE.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "edge"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in edge/' if dirty else ''}" if head else "unknown"


def main() -> int:
    p = argparse.ArgumentParser(description="Edge proxy/standalone benchmark (prints a table of ratios).")
    p.add_argument("--quick", action="store_true", help="a short run: fewer calls, 50/200 chargers, short turns")
    p.add_argument("--only", default="ABC", help="sections to run, e.g. A or BC (default ABC)")
    p.add_argument("--latency-calls", type=int, help="A: calls of each kind per setup (full 3000, quick 500)")
    p.add_argument("--counts", type=lambda s: [int(x) for x in s.split(",")],
                   help="B: charger counts, comma-separated (full 50,200,1000; quick 50,200)")
    p.add_argument("--rounds", type=int, help="B: measured turns per setup (full 3, quick 2)")
    p.add_argument("--seconds", type=float, help="B: measured seconds per turn (full 6, quick 3)")
    p.add_argument("--warmup", type=float, help="B: warm-up seconds before each turn (full 2, quick 1)")
    p.add_argument("--hold-chargers", type=int, help="C: chargers (full 2000, quick 500)")
    p.add_argument("--hold-seconds", type=float, help="C: seconds connected (full 30, quick 10)")
    p.add_argument("--hold-interval", type=float, help="C: seconds between Heartbeats (full 10, quick 5)")
    p.add_argument("--csms-deflate", action="store_true", help="let the CSMS accept permessage-deflate")
    p.add_argument("--csms-delay", type=float, default=0.0, metavar="MS",
                   help="the CSMS waits MS milliseconds before each answer (a cloud CSMS's round trip)")
    p.add_argument("--py-spy", metavar="DIR", help="profile each edge under load with py-spy into DIR")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    p.add_argument("--keep", action="store_true", help="keep the work directory (databases, logs)")
    opt = p.parse_args()
    full = not opt.quick
    opt.latency_calls = opt.latency_calls or (3000 if full else 500)
    opt.counts = opt.counts or ([50, 200, 1000] if full else [50, 200])
    opt.rounds = opt.rounds or (3 if full else 2)
    opt.seconds = opt.seconds or (6.0 if full else 3.0)
    opt.warmup = opt.warmup if opt.warmup is not None else (2.0 if full else 1.0)
    opt.hold_chargers = opt.hold_chargers or (2000 if full else 500)
    opt.hold_seconds = opt.hold_seconds or (30.0 if full else 10.0)
    opt.hold_interval = opt.hold_interval or (10.0 if full else 5.0)
    nofile = raise_nofile()

    workdir = Path(tempfile.mkdtemp(prefix="sitekeeper-bench-"))
    t0 = time.time()
    import websockets

    print(f"sitekeeper proxy benchmark ({'full' if full else 'quick'}), edge {_edge_version()}: "
          f"{psutil.cpu_count()} CPUs, Python {sys.version.split()[0]}, websockets {websockets.__version__}, "
          f"open files {nofile}, CSMS compression {'deflate' if opt.csms_deflate else 'none'}, "
          f"CSMS answer delay {opt.csms_delay:g} ms", flush=True)
    print(f"work dir {workdir}; load average at start: {load_avg()}", flush=True)
    report: dict[str, Any] = {"mode": "full" if full else "quick", "cpus": psutil.cpu_count(),
                              "edge": _edge_version(), "load_start": os.getloadavg()}
    out: list[str] = []
    csms_args = ["light_csms.py", "--delay-ms", str(opt.csms_delay)] + (["--deflate"] if opt.csms_deflate else [])
    sections = {"A": lambda csms: section_a(opt, csms, workdir, report),
                "B": lambda csms: section_b(opt, csms, workdir, report),
                "C": lambda csms: section_c(opt, workdir, report)}
    try:
        csms = start_helper("csms", csms_args, workdir)
        for name, section in sections.items():
            if name not in opt.only.upper():
                continue
            try:
                out += section(csms) + [""]
            except Exception as e:  # report it and go on with the next section
                lines = str(e).strip().splitlines()
                out += [f"{name}. FAILED: {type(e).__name__}: " + " | ".join(lines[:1] + lines[-3:]), ""]
                print(f"  {name} failed: {type(e).__name__}: {lines[-1] if lines else ''}", flush=True)
            finally:
                for service in _SERVICES:
                    if service is not csms:
                        service.stop()
    finally:
        for service in _SERVICES:
            service.stop()
        if opt.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report["load_end"] = os.getloadavg()
    print()
    print("\n".join(out), end="")
    print(f"CPU: % of one core over the measured windows ({psutil.cpu_count()} cores = "
          f"{100 * (psutil.cpu_count() or 1)}%); other = the rest of the machine (other work, steal); rq = time "
          "the edge's (or relay's) threads were runnable but waiting for a CPU, summed over its threads.")
    print(f"load average at end: {load_avg()}; total {time.time() - t0:.0f} s")
    if opt.json:
        Path(opt.json).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
