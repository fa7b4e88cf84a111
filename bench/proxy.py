"""Benchmark of the edge as an OCPP 1.6J proxy and as a standalone CSMS (not a test: it prints figures).

What it measures, all on 127.0.0.1, every process on its own (the edge is a `sitekeeper run` subprocess,
the CSMS is bench/light_csms.py, the relay bench/relay.py, the chargers bench/loadgen.py):

A. Round-trip latency, one charger, sequential CALLs: Heartbeat and StartTransaction p50/p99 (1) direct to
   the CSMS, (2) through a bare WebSocket relay, (3) through the edge in proxy mode; ratios to direct, next
   to the targets p50 ≤ 1.3× and p99 ≤ 1.5× direct.
B. Throughput with N chargers each sending back to back (one CALL outstanding; Heartbeat, Status,
   Start, 4× MeterValues, Stop, Status): completed CALLs per second and p50/p99 latency, direct vs through
   the edge in proxy mode (target ≥ 0.7× direct) vs the edge in standalone mode (it persists to SQLite;
   target at 1,000 chargers: ≥ 1,500 msg/s, p99 ≤ 1 s, edge RSS ≤ 150 MB).
C. Many chargers connected to a standalone edge for a while, a Heartbeat each every few seconds: errors,
   chargers still answered at the end, edge RSS.

Next to each figure: the CPU use of the load generator (and of the edge and the CSMS) over exactly the
measured window, from psutil cpu_times / wall time (100% = one core), so that a saturated generator or a
busy machine shows. Peak RSS of the edge is sampled every 0.2 s with psutil. Every figure is measured in
the same run as its baseline. The machine may be shared: the load average is printed at start and end.

Run::

    .venv/bin/python bench/proxy.py --quick     # ~1.5 minutes: fewer calls, 50/200 chargers, short windows
    .venv/bin/python bench/proxy.py             # full: ~8-10 minutes
    .venv/bin/python bench/proxy.py --only B --counts 1000 --seconds 20 --py-spy /tmp/prof

``--py-spy DIR`` attaches py-spy (if installed) to each edge while it is under load and writes one
flame-graph SVG and one "raw" (collapsed stacks) file per run; ``--json PATH`` saves every figure.
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
from contextlib import ExitStack
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
    popen = subprocess.Popen([PY, *argv], stdout=subprocess.PIPE, stderr=open(log, "a"), text=True, cwd=HERE)
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
    cmd = [str(SITEKEEPER)] if SITEKEEPER.exists() else [PY, "-m", "edge.cli"]
    popen = subprocess.Popen([*cmd, "--config", str(d / "sitekeeper.toml"), "run"], stdout=open(log, "a"),
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


@dataclass
class GenRun:
    result: dict[str, Any]
    cpu: dict[str, dict[str, float]]  # window label → process name → % of one core
    rss_mb: float | None
    wall: float


def run_loadgen(args: list[str], watch: dict[str, psutil.Process], workdir: Path, *,
                rss_of: psutil.Process | None = None, limit_s: float = 600.0,
                profile: tuple[psutil.Process, Path] | None = None) -> GenRun:
    """Run bench/loadgen.py; measure the CPU of it and of `watch` over each window it announces."""
    log = workdir / "loadgen.log"
    t_start = time.perf_counter()
    popen = subprocess.Popen([PY, str(HERE / "loadgen.py"), *args], stdout=subprocess.PIPE,
                             stderr=open(log, "a"), text=True, cwd=HERE)
    assert popen.stdout is not None
    procs = {"gen": psutil.Process(popen.pid), **watch}
    sampler = RssSampler(rss_of) if rss_of is not None else None
    if sampler:
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
            if ev.get("event") == "start":
                begun[ev["label"]] = (now, {n: _cpu(p) for n, p in procs.items()})
                if profile is not None and spy is None:
                    spy = _start_py_spy(*profile)
            elif ev.get("event") == "end" and ev["label"] in begun:
                t0, c0 = begun[ev["label"]]
                cpu[ev["label"]] = {n: 100 * (_cpu(p) - c0[n]) / (now - t0) for n, p in procs.items()}
                if spy is not None:
                    _stop_py_spy(spy)
                    spy = None
            elif ev.get("event") == "result":
                result = ev
        popen.wait()
    finally:
        killer.cancel()
        if spy is not None:
            _stop_py_spy(spy)
        if popen.poll() is None:
            popen.kill()
            popen.wait()
    rss = sampler.stop() if sampler else None
    if not result:
        raise RuntimeError(f"loadgen failed (exit {popen.returncode}):\n{log.read_text()[-3000:]}")
    return GenRun(result, cpu, rss, time.perf_counter() - t_start)


def _start_py_spy(ps: psutil.Process, out: Path) -> subprocess.Popen | None:
    spy = shutil.which("py-spy", path=str(Path(PY).parent)) or shutil.which("py-spy")
    if spy is None:
        print("  (py-spy not found: no profile)", flush=True)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([spy, "record", "--pid", str(ps.pid), "--rate", "250", "--nonblocking",
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
def section_a(opt: argparse.Namespace, csms: Service, workdir: Path, stack: ExitStack,
              report: dict[str, Any]) -> list[str]:
    relay = start_helper("relay", ["relay.py", "--target", f"ws://127.0.0.1:{csms.port}"], workdir)
    stack.callback(relay.stop)
    edge = start_edge("latency-proxy", workdir, csms.url())
    stack.callback(edge.stop)
    setups = [("direct", csms.url(), {"csms": csms.ps}),
              ("relay", relay.url(), {"relay": relay.ps, "csms": csms.ps}),
              ("edge-proxy", edge.url(), {"edge": edge.ps, "csms": csms.ps})]
    rows: dict[str, dict[str, Any]] = {}
    for name, url, watch in setups:
        prof = (edge.ps, Path(opt.py_spy) / "A-edge-proxy.txt") if opt.py_spy and name == "edge-proxy" else None
        run = run_loadgen(["latency", "--url", url, "--calls", str(opt.latency_calls), "--prefix", f"LAT-{name}-"],
                          watch, workdir, profile=prof)
        rows[name] = {"result": run.result, "cpu": run.cpu}
        print(f"  A {name:<10} done ({run.wall:.1f} s)", flush=True)
    relay.stop()
    edge.stop()
    report["A"] = rows
    problems = edge.log_problems()
    out = [f"A. Round trip, OCPP 1.6, one charger, {opt.latency_calls} sequential calls of each kind "
           "(StartTransaction: each followed by an unmeasured StopTransaction)",
           f"   {'setup':<11}{'message':<17}{'p50 ms':>8}{'p99 ms':>8}{'p50/dir':>9}{'p99/dir':>9}"
           f"{'gen CPU':>9}{'edge CPU':>9}{'csms CPU':>9}  target p50≤{LAT_P50_MAX}×, p99≤{LAT_P99_MAX}×"]
    for action in ("Heartbeat", "StartTransaction"):
        base = rows["direct"]["result"][action]
        for name in ("direct", "relay", "edge-proxy"):
            r = rows[name]["result"][action]
            c = rows[name]["cpu"].get(action, {})
            r50, r99 = ratio(r["p50_ms"], base["p50_ms"]), ratio(r["p99_ms"], base["p99_ms"])
            verdict = ""
            if name == "edge-proxy" and r50 is not None and r99 is not None:
                verdict = f"p50 {ok(r50 <= LAT_P50_MAX)}, p99 {ok(r99 <= LAT_P99_MAX)}"
            out.append(f"   {name:<11}{action:<17}{num(r['p50_ms'], 3):>8}{num(r['p99_ms'], 3):>8}"
                       f"{num(r50):>8}×{num(r99):>8}×{pct(c.get('gen')):>9}{pct(c.get('edge')):>9}"
                       f"{pct(c.get('csms')):>9}  {verdict}")
    errors = sum(rows[n]["result"].get("errors", 0) for n in rows)
    out.append(f"   errors seen by the generator: {errors}; edge log errors: {len(problems)}")
    return out


def section_b(opt: argparse.Namespace, csms: Service, workdir: Path, report: dict[str, Any]) -> list[str]:
    rows: list[dict[str, Any]] = []
    for n in opt.counts:
        base: dict[str, Any] | None = None
        for setup in ("direct", "edge-proxy", "standalone"):
            edge: Service | None = None
            if setup == "edge-proxy":
                edge = start_edge(f"tput{n}-proxy", workdir, csms.url())
            elif setup == "standalone":
                edge = start_edge(f"tput{n}-standalone", workdir, None)
            try:
                url = edge.url() if edge else csms.url()
                watch = {"csms": csms.ps} if setup != "standalone" else {}
                if edge:
                    watch["edge"] = edge.ps
                prof = None
                if opt.py_spy and edge is not None:
                    prof = (edge.ps, Path(opt.py_spy) / f"B-{n}-{setup}.txt")
                run = run_loadgen(["throughput", "--url", url, "--chargers", str(n), "--seconds", str(opt.seconds),
                                   "--warmup", str(opt.warmup), "--prefix", f"T{n}-{setup[:2]}-"],
                                  watch, workdir, rss_of=edge.ps if edge else None, profile=prof,
                                  limit_s=opt.seconds + opt.warmup + 300)
            finally:
                if edge:
                    edge.stop()
            t = run.result["throughput"]
            row = {"chargers": n, "setup": setup, "rate": t["rate"], "p50_ms": t["p50_ms"], "p99_ms": t["p99_ms"],
                   "cpu": run.cpu.get("throughput", {}), "rss_mb": run.rss_mb, "errors": run.result["errors"],
                   "error_kinds": run.result["error_kinds"], "connected": run.result["connected"],
                   "connect_s": run.result["connect_s"], "by_action": t.get("by_action", {}),
                   "edge_log_errors": len(edge.log_problems()) if edge else 0}
            if setup == "direct":
                base = row
            row["vs_direct"] = ratio(row["rate"], base["rate"]) if base else None
            rows.append(row)
            print(f"  B {n:>5} {setup:<10} {row['rate']:8.0f} msg/s  p99 {row['p99_ms']:7.1f} ms  "
                  f"({run.wall:.0f} s, connect {row['connect_s']:.1f} s)", flush=True)
    report["B"] = rows
    out = [f"B. Throughput, OCPP 1.6, N chargers back to back ({opt.seconds:g} s measured after {opt.warmup:g} s "
           "warm-up; msg/s = CALLs answered per second)",
           f"   {'chargers':>8} {'setup':<11}{'msg/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'×direct':>9}{'gen CPU':>9}"
           f"{'edge CPU':>9}{'csms CPU':>9}{'edge RSS':>10}{'errors':>7}  target"]
    for r in rows:
        target = ""
        if r["setup"] == "edge-proxy" and r["vs_direct"] is not None:
            target = f"≥{PROXY_RATE_MIN}× direct: {ok(r['vs_direct'] >= PROXY_RATE_MIN)}"
        elif r["setup"] == "standalone" and r["chargers"] == SA_TARGET_AT:
            target = (f"≥{SA_RATE_MIN:.0f}/s {ok(r['rate'] >= SA_RATE_MIN)}, p99≤1 s "
                      f"{ok(r['p99_ms'] <= SA_P99_MAX_MS)}, RSS≤{SA_RSS_MAX_MB:.0f} MB "
                      f"{ok((r['rss_mb'] or 0) <= SA_RSS_MAX_MB)}")
        rss = f"{r['rss_mb']:.0f} MB" if r["rss_mb"] else "-"
        c = r["cpu"]
        out.append(f"   {r['chargers']:>8} {r['setup']:<11}{r['rate']:>8.0f}{num(r['p50_ms'], 1):>9}"
                   f"{num(r['p99_ms'], 1):>9}{num(r['vs_direct']):>8}×{pct(c.get('gen')):>9}"
                   f"{pct(c.get('edge')):>9}{pct(c.get('csms')):>9}{rss:>10}{r['errors']:>7}  {target}")
    log_errors = sum(r["edge_log_errors"] for r in rows)
    kinds: dict[str, int] = {}
    for r in rows:
        for k, v in r["error_kinds"].items():
            kinds[k] = kinds.get(k, 0) + v
    out.append(f"   edge log errors: {log_errors}" + (f"; generator errors by kind: {kinds}" if kinds else ""))
    return out


def section_c(opt: argparse.Namespace, workdir: Path, report: dict[str, Any]) -> list[str]:
    edge = start_edge(f"hold{opt.hold_chargers}", workdir, None)
    try:
        prof = (edge.ps, Path(opt.py_spy) / "C-hold.txt") if opt.py_spy else None
        run = run_loadgen(["hold", "--url", edge.url(), "--chargers", str(opt.hold_chargers), "--seconds",
                           str(opt.hold_seconds), "--interval", str(opt.hold_interval), "--prefix", "HOLD-"],
                          {"edge": edge.ps}, workdir, rss_of=edge.ps, profile=prof,
                          limit_s=opt.hold_seconds + 600)
    finally:
        edge.stop()
    r = run.result
    h = r["hold"]
    c = run.cpu.get("hold", {})
    problems = edge.log_problems()
    report["C"] = {"result": r, "cpu": run.cpu, "rss_mb": run.rss_mb, "edge_log_errors": len(problems)}
    clean = r["errors"] == 0 and r["alive_at_end"] == opt.hold_chargers and not problems
    out = [f"C. {opt.hold_chargers} chargers connected to a standalone edge for {opt.hold_seconds:g} s, a Heartbeat "
           f"each every {opt.hold_interval:g} s, then one more on the same connection",
           f"   {'connected':>10}{'connect s':>10}{'alive at end':>13}{'errors':>7}{'hb p99 ms':>10}"
           f"{'gen CPU':>9}{'edge CPU':>9}{'edge RSS peak':>14}  target",
           f"   {r['connected']:>10}{r['connect_s']:>10.1f}{r['alive_at_end']:>13}{r['errors']:>7}"
           f"{num(h['p99_ms'], 1):>10}{pct(c.get('gen')):>9}{pct(c.get('edge')):>9}"
           f"{run.rss_mb or 0:>11.0f} MB  no errors: {ok(clean)}"]
    if r["error_kinds"] or problems:
        out.append(f"   generator errors by kind: {r['error_kinds']}; edge log errors: {len(problems)}"
                   + (f" (first: {problems[0][:160]})" if problems else ""))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description="Edge proxy/standalone benchmark (prints a table of ratios).")
    p.add_argument("--quick", action="store_true", help="a short run: fewer calls, 50/200 chargers, short windows")
    p.add_argument("--only", default="ABC", help="sections to run, e.g. A or BC (default ABC)")
    p.add_argument("--latency-calls", type=int, help="A: calls of each kind (full 3000, quick 500)")
    p.add_argument("--counts", type=lambda s: [int(x) for x in s.split(",")],
                   help="B: charger counts, comma-separated (full 50,200,1000, quick 50,200)")
    p.add_argument("--seconds", type=float, help="B: measured seconds per run (full 15, quick 4)")
    p.add_argument("--warmup", type=float, help="B: warm-up seconds per run (full 3, quick 1)")
    p.add_argument("--hold-chargers", type=int, help="C: chargers (full 2000, quick 500)")
    p.add_argument("--hold-seconds", type=float, help="C: seconds connected (full 30, quick 10)")
    p.add_argument("--hold-interval", type=float, help="C: seconds between Heartbeats (full 10, quick 5)")
    p.add_argument("--csms-deflate", action="store_true", help="let the CSMS accept permessage-deflate")
    p.add_argument("--py-spy", metavar="DIR", help="profile each edge under load with py-spy into DIR")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    p.add_argument("--keep", action="store_true", help="keep the work directory (databases, logs)")
    opt = p.parse_args()
    full = not opt.quick
    opt.latency_calls = opt.latency_calls or (3000 if full else 500)
    opt.counts = opt.counts or ([50, 200, 1000] if full else [50, 200])
    opt.seconds = opt.seconds or (15.0 if full else 4.0)
    opt.warmup = opt.warmup if opt.warmup is not None else (3.0 if full else 1.0)
    opt.hold_chargers = opt.hold_chargers or (2000 if full else 500)
    opt.hold_seconds = opt.hold_seconds or (30.0 if full else 10.0)
    opt.hold_interval = opt.hold_interval or (10.0 if full else 5.0)
    nofile = raise_nofile()

    workdir = Path(tempfile.mkdtemp(prefix="sitekeeper-bench-"))
    t0 = time.time()
    import websockets

    print(f"sitekeeper proxy benchmark ({'full' if full else 'quick'}): {psutil.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}, websockets {websockets.__version__}, open files {nofile}, "
          f"work dir {workdir}", flush=True)
    print(f"load average at start: {load_avg()} (other work on this machine skews every figure)", flush=True)
    report: dict[str, Any] = {"mode": "full" if full else "quick", "cpus": psutil.cpu_count(),
                              "load_start": os.getloadavg()}
    out: list[str] = []
    try:
        with ExitStack() as stack:
            csms_args = ["light_csms.py"] + (["--deflate"] if opt.csms_deflate else [])
            csms = start_helper("csms", csms_args, workdir)
            stack.callback(csms.stop)
            if "A" in opt.only.upper():
                out += section_a(opt, csms, workdir, stack, report) + [""]
            if "B" in opt.only.upper():
                out += section_b(opt, csms, workdir, report) + [""]
            if "C" in opt.only.upper():
                out += section_c(opt, workdir, report) + [""]
    finally:
        if not opt.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report["load_end"] = os.getloadavg()
    print()
    print("\n".join(out), end="")
    print(f"CPU columns: % of one core over the measured window (2 cores = 200%). load average at end: "
          f"{load_avg()}; total {time.time() - t0:.0f} s")
    if opt.json:
        Path(opt.json).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
