"""`sitekeeper doctor`: is this site well? Each check in one line, with the fix when it is not:

    config        the config file loads (else `sitekeeper` stops before this, naming the key)
    database      it exists, this user may write it, its schema is current, SQLite's integrity check passes
    ledger        every account's balance and holds equal the sum of its entries (the ledger's audit)
    disk          free space where the database lives
    clock         the system clock is synchronised (a Pi has no RTC: records say when it was not)
    readers       pcscd and the PC/SC readers, the RC522's SPI device, for each configured reader
    gpio          a Pi's GPIO chip, when feedback is on
    edge          the running edge answers /healthz; its chargers connected
    upstream      proxy mode: the cloud CSMS's name resolves, its port answers, TLS, the WebSocket handshake
    mqtt          the broker's name, port and TLS, when cloud sync is configured
    services      the systemd units' state, when systemd runs here

`--json` gives the same as a list of {check, status ("ok", "warn", "fail", "skip"), message, fix}. The exit
code is 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import ssl
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from edge.billing import ledger
from edge.cli.common import load_config, print_json
from edge.config import Config
from edge.health import Result, clock, disk, result
from edge.store.guard import StoreError, check_writable, me
from edge.store.migrations import MIGRATIONS

_r = result


def database(cfg: Config) -> list[Result]:
    path = cfg.store.path
    if path == ":memory:" or not os.path.exists(path):
        return [_r("database", "fail", f"no database at {path}", "start the edge once, or `sitekeeper init`")]
    try:
        check_writable(path)
    except StoreError as e:
        return [_r("database", "fail", str(e), "run as the service user: sudo -u sitekeeper sitekeeper doctor")]
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        quick = conn.execute("PRAGMA quick_check").fetchone()[0]
        out = [_r("database", "ok" if quick == "ok" and version == len(MIGRATIONS) else "fail",
                  f"{path}: schema {version} of {len(MIGRATIONS)}, integrity {quick}",
                  "" if quick == "ok" else "restore the newest backup (docs/operations.md: Backup, restore)"
                  if version == len(MIGRATIONS) else "start the edge (it applies the migrations), or `sitekeeper init`")]
        if version == len(MIGRATIONS):
            wrong = ledger.audit(conn)
            out.append(_r("ledger", "ok" if not wrong else "fail",
                          "every balance and hold equals the sum of its entries" if not wrong else
                          f"{len(wrong)} account(s) differ from their entries: "
                          + ", ".join(str(w["account_id"]) for w in wrong[:10]),
                          "" if not wrong else "keep the database as it is and report it; the entries are the truth"))
        return out
    finally:
        conn.close()


def readers(cfg: Config) -> list[Result]:
    out = []
    for name, rc in cfg.reader.items():
        if rc.backend == "sim":
            out.append(_r(f"reader {name}", "ok", "sim reader (taps from `sitekeeper tap`)"))
        elif rc.backend == "mfrc522":
            dev = "/dev/spidev0.0"
            ok = os.access(dev, os.R_OK | os.W_OK)
            out.append(_r(f"reader {name}", "ok" if ok else "fail", f"RC522 on {dev}: {'usable' if ok else 'not usable'}",
                          "" if ok else "enable SPI (raspi-config) and add the user to the spi group"))
        else:
            sock = "/run/pcscd/pcscd.comm"
            if not os.path.exists(sock):
                out.append(_r(f"reader {name}", "fail", "pcscd is not running", "sudo systemctl enable --now pcscd"))
                continue
            try:
                from smartcard.System import readers as pcsc_readers

                found = [str(r) for r in pcsc_readers()]
            except Exception as e:  # noqa: BLE001 (pyscard raises its own kinds)
                found, why = [], str(e)
            else:
                why = ""
            wanted = [r for r in found if not rc.device or rc.device in r]
            out.append(_r(f"reader {name}", "ok" if wanted else "fail",
                          f"PC/SC: {', '.join(wanted) if wanted else 'no reader' + (' named ' + rc.device if rc.device else '')}"
                          + (f" ({why})" if why else ""), "" if wanted else "plug the reader in (USB), or check reader.device"))
    return out


def gpio(cfg: Config) -> list[Result]:
    if not cfg.gpio.enabled:
        return []
    on_pi = "Raspberry Pi" in (Path("/proc/device-tree/model").read_text(errors="replace")
                               if os.path.exists("/proc/device-tree/model") else "")
    if not on_pi:
        return [_r("gpio", "skip", "not a Raspberry Pi: GPIO feedback is off")]
    ok = os.access("/dev/gpiochip0", os.R_OK | os.W_OK)
    return [_r("gpio", "ok" if ok else "fail", f"/dev/gpiochip0: {'usable' if ok else 'not usable'}",
               "" if ok else "add the user to the gpio group")]


def edge(cfg: Config) -> Result:
    if not cfg.web.port:
        return _r("edge", "skip", "the web app is off (web.port = 0): cannot ask the edge")
    host = cfg.web.host if cfg.web.host not in ("0.0.0.0", "::") else "127.0.0.1"
    scheme = "https" if cfg.web.tls_cert else "http"
    try:
        with urllib.request.urlopen(f"{scheme}://{host}:{cfg.web.port}/healthz", timeout=5,
                                    context=ssl._create_unverified_context() if scheme == "https" else None) as r:
            health = json.loads(r.read())
    except urllib.error.HTTPError as e:
        health = json.loads(e.read() or b"{}")
    except (OSError, ValueError) as e:
        return _r("edge", "fail", f"the edge does not answer on {host}:{cfg.web.port} ({e})",
                  "sudo systemctl start sitekeeper-edge; `journalctl -u sitekeeper-edge` says why it stopped")
    n = health.get("chargers_connected", 0)
    if not health.get("ok"):
        return _r("edge", "fail", f"the edge says it cannot do its job: {health.get('store', {}).get('problem')}",
                  "see /healthz and `journalctl -u sitekeeper-edge`")
    return _r("edge", "ok" if n else "warn", f"the edge runs ({health.get('mode')}); {n} charger(s) connected",
              "" if n else "point the chargers at ws://<this Pi>:<ocpp.port>/ocpp/<charger-id> (README)")


def upstream(cfg: Config) -> list[Result]:
    if cfg.upstream.mode != "proxy":
        return []
    url = urllib.parse.urlsplit(cfg.upstream.url)
    tls = ssl.create_default_context(cafile=cfg.upstream.ca_file or None) if url.scheme == "wss" else None
    port = url.port or (443 if url.scheme == "wss" else 80)
    from cloud_sync.diagnose import why_unreachable

    why = why_unreachable(url.hostname or "", port, tls)
    if "answers" not in why:
        return [_r("upstream", "fail", f"{cfg.upstream.url}: {why}", "check upstream.url, the network and the firewall")]
    try:  # the WebSocket handshake, as a charger's link would make it (a 401 still means it is there)
        import asyncio

        import websockets

        async def shake() -> str:
            try:
                async with websockets.connect(cfg.upstream.url.rstrip("/") + "/sitekeeper-doctor", ssl=tls,
                                              subprotocols=["ocpp1.6", "ocpp2.0.1"], open_timeout=8):
                    return "the WebSocket handshake works"
            except websockets.InvalidStatus as e:
                return f"answers the WebSocket handshake with HTTP {e.response.status_code}"

        said = asyncio.run(shake())
    except Exception as e:  # noqa: BLE001
        return [_r("upstream", "fail", f"{cfg.upstream.url}: TCP{' and TLS' if tls else ''} work, the WebSocket "
                   f"handshake fails: {e}", "check upstream.url's path (the CSMS's OCPP endpoint)")]
    return [_r("upstream", "ok", f"{cfg.upstream.url}: {said}")]


def mqtt(cfg: Config) -> list[Result]:
    if not cfg.mqtt.host:
        return [_r("mqtt", "skip", "no broker configured ([mqtt] host): records wait in the outbox")]
    from cloud_sync.diagnose import why_unreachable

    tls = ssl.create_default_context(cafile=cfg.mqtt.ca_file or None) if cfg.mqtt.tls or cfg.mqtt.ca_file else None
    why = why_unreachable(cfg.mqtt.host, cfg.mqtt.port, tls)
    ok = "answers" in why
    return [_r("mqtt", "ok" if ok else "fail", f"{cfg.mqtt.host}:{cfg.mqtt.port}: {why if not ok else 'reachable'}",
               "" if ok else "check [mqtt] host, port and tls, and the network")]


def services() -> list[Result]:
    if not shutil.which("systemctl") or not os.path.isdir("/run/systemd/system"):
        return [_r("services", "skip", "systemd does not run here")]
    out = []
    for unit in ("sitekeeper-edge", "sitekeeper-sync", "sitekeeper-kiosk"):
        state = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True).stdout.strip()
        enabled = subprocess.run(["systemctl", "is-enabled", unit], capture_output=True, text=True).stdout.strip()
        if unit == "sitekeeper-kiosk" and enabled in ("", "not-found", "disabled"):
            out.append(_r(unit, "skip", "not enabled (no touchscreen here)"))
            continue
        out.append(_r(unit, "ok" if state == "active" else "fail", f"{state} ({enabled})",
                      "" if state == "active" else f"sudo systemctl enable --now {unit}; journalctl -u {unit}"))
    return out


def run_checks(cfg: Config) -> list[Result]:
    results = [_r("config", "ok", f"{cfg.source or 'built-in defaults'} loads")]
    for check in (lambda: database(cfg), lambda: [disk(cfg.store.path)], lambda: [clock()], lambda: readers(cfg),
                  lambda: gpio(cfg), lambda: [edge(cfg)], lambda: upstream(cfg), lambda: mqtt(cfg), services):
        try:
            results += check()
        except Exception as e:  # noqa: BLE001 (a check that breaks is itself a finding, not a crash)
            results.append(_r("doctor", "fail", f"a check failed to run: {e.__class__.__name__}: {e}"))
    return results


def cmd_doctor(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    results = run_checks(cfg)
    if args.json:
        print_json(results)
    else:
        marks = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "--  "}
        for r in results:
            print(f"{marks[r['status']]}  {r['check']:<16} {r['message']}" + (f"\n      fix: {r['fix']}" if r["fix"] else ""))
        print(f"(as {me()})", file=sys.stderr)
    return 1 if any(r["status"] == "fail" for r in results) else 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("doctor", parents=[common], help="check this site: config, database, ledger, disk, clock,"
                                                        " readers, edge, upstream, broker, services")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_doctor)

