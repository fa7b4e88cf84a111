"""The `sitekeeper` command: a thin face over the edge's library functions.

    sitekeeper [--config PATH] run
    sitekeeper simulate --url URL --chargers N --version 1.6|2.0.1
    sitekeeper journal CHARGER [--limit N] [--json] [--follow]
    sitekeeper backup DEST [--force]
    sitekeeper sync [--status [--json]]
    sitekeeper tap UID [--reader NAME]
    sitekeeper hash-password [PASSWORD]
    sitekeeper cards|topup|users|sessions|report ...   (the owner's commands: edge/cli/owner.py)
    sitekeeper pay stickers|urls                        (the pay QR codes: edge/cli/pay.py)

Exit codes: 0 ok, 2 bad input (config, arguments), 1 other failure.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import sqlite3
import sys
import time
from typing import Any

from edge.cli import admin, doctor, operate, owner, pay
from edge.cli.common import load_config, open_store
from edge.store.guard import Lock, StoreError, me


def _parser() -> argparse.ArgumentParser:
    # --config is accepted before or after the subcommand; the subcommand's copy must not reset it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="TOML config file (default: built-in demo site)")
    p = argparse.ArgumentParser(prog="sitekeeper", description="EV charging site controller (OCPP proxy / local CSMS)")
    p.add_argument("--config", metavar="PATH", default=None, help="TOML config file (default: built-in demo site)")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("run", parents=[common], help="run the edge daemon")
    sub.add_parser("init", parents=[common], help="make the site's database where the config says (run does too)")

    s = sub.add_parser("simulate", parents=[common], help="run simulated chargers against an edge")
    s.add_argument("--url", help="charger endpoint, e.g. ws://127.0.0.1:9000/ocpp (default: this config's)")
    s.add_argument("--chargers", type=int, default=2)
    s.add_argument("--version", choices=["1.6", "2.0.1"], default="1.6")
    s.add_argument("--sessions", type=int, default=1,
                   help="card sessions per charger (0: only those the CSMS starts remotely; with --forever)")
    s.add_argument("--forever", action="store_true", help="keep running sessions until interrupted")
    s.add_argument("--card", action="append", metavar="UID",
                   help="a card of the site to charge with (repeatable: the chargers take them in turn)")
    s.add_argument("--prefix", default="SIM", help="charger id prefix (SIM0001, SIM0002, ...)")
    s.add_argument("--meter-interval", type=float, default=1.0, help="seconds between meter values")
    s.add_argument("--password", help="HTTP Basic password (security profile 1/2)")
    s.add_argument("--ca", metavar="PEM", help="wss://: trust this CA (default: the system's)")
    s.add_argument("--cert", metavar="PEM", help="wss://: client certificate (security profile 3); {id} = charger id")
    s.add_argument("--key", metavar="PEM", help="the client certificate's key; {id} = charger id")

    j = sub.add_parser("journal", parents=[common], help="show a charger's recent OCPP frames")
    j.add_argument("charger")
    j.add_argument("--limit", type=int, default=50)
    j.add_argument("--json", action="store_true", help="JSON (with --follow: one object a line)")
    j.add_argument("--follow", "-f", action="store_true", help="keep printing new frames until interrupted")

    b = sub.add_parser("backup", parents=[common], help="copy the site's database (safe while the edge runs)")
    b.add_argument("dest", help="the file to write")
    b.add_argument("--force", action="store_true", help="replace DEST if it exists")

    h = sub.add_parser("hash-password", parents=[common], help="print the stored form of a charger password")
    h.add_argument("password", nargs="?")

    k = sub.add_parser("kiosk", parents=[common], help="the touchscreen pay station (pygame; [kiosk] in the config)")
    k.add_argument("--windowed", action="store_true", help="in a window on a desktop, not the whole panel")
    k.add_argument("--screenshot-dir", metavar="DIR", help="save a PNG of every new screen here")

    t = sub.add_parser("tap", parents=[common], help="tap a card on a sim reader of the running edge")
    t.add_argument("uid")
    t.add_argument("--reader", default="kiosk", help="the sim reader's name (default: kiosk)")
    t.add_argument("--json", action="store_true")

    y = sub.add_parser("sync", parents=[common], help="run the MQTT cloud sync (or show its state)")
    y.add_argument("--status", action="store_true", help="show broker connection, backlog, last ack and exit")
    y.add_argument("--json", action="store_true", help="with --status: as JSON")

    owner.register(sub, common)  # cards, topup, users, sessions, report
    operate.register(sub, common)  # token, charger, operations, firmware
    admin.register(sub, common)  # the web pages' accounts
    pay.register(sub, common)  # the pay QR codes
    doctor.register(sub, common)  # is this site well?
    return p


def _loop_factory() -> Any:
    """uvloop's event loop where it is installed (it is a dependency; a Pi has its wheels), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def cmd_run(args: argparse.Namespace) -> int:
    from edge.daemon import run
    from edge.store.guard import StoreError

    cfg = load_config(args)
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(run(cfg))
    except (OSError, StoreError) as e:
        print(f"sitekeeper: cannot start: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from edge.ocpp.simulate import run_site

    url = args.url
    if url is None:
        cfg = load_config(args)
        host = "127.0.0.1" if cfg.ocpp.host in ("0.0.0.0", "::", "") else cfg.ocpp.host
        url = f"{'wss' if cfg.ocpp.security_profile >= 2 else 'ws'}://{host}:{cfg.ocpp.port}/ocpp"
    if args.chargers < 1:
        print("sitekeeper: --chargers must be at least 1", file=sys.stderr)
        return 2
    if args.sessions < 0:
        print("sitekeeper: --sessions must be 0 or more", file=sys.stderr)
        return 2
    from edge.money import UidError, normalise_uid

    try:
        cards = [normalise_uid(c) for c in args.card or []]
    except UidError as e:
        print(f"sitekeeper simulate: --card: {e}", file=sys.stderr)
        return 2
    print(f"simulating {args.chargers} OCPP {args.version} charger(s) against {url}", flush=True)
    try:
        stats = asyncio.run(run_site(url, args.chargers, args.version, sessions=args.sessions, prefix=args.prefix,
                                     meter_interval=args.meter_interval, password=args.password,
                                     forever=args.forever, ca=args.ca, cert=args.cert, key=args.key,
                                     cards=cards))
    except KeyboardInterrupt:
        return 0
    failed = 0
    for i, st in enumerate(stats, start=1):
        line = f"{args.prefix}{i:04d}: {st.sessions} session(s), {st.energy_wh} Wh, {st.calls} calls"
        if st.refused:
            line += f", {st.refused} refused"
        if st.limit_a is not None:
            line += f", held to {st.limit_a:g} A at the least"
        if st.display:
            line += f"; its display: {st.display}"
        if st.notes:
            failed += 1
            line += "; " + "; ".join(st.notes)
        print(line)
    return 1 if failed else 0


_DIRECTIONS = {"c>e": "charger → edge", "e>c": "edge → charger", "e>u": "edge → upstream",
               "u>e": "upstream → edge", "c>u": "charger → upstream", "u>c": "upstream → charger"}


def cmd_journal(args: argparse.Namespace) -> int:
    from edge.store.journal import batch_of, read, read_since

    cfg = load_config(args)
    store = open_store(cfg)
    try:
        rows = read(store, args.charger, args.limit)
        if args.json and not args.follow:
            print(json.dumps(rows, indent=1))
            return 0
        if not rows and not args.follow:
            print(f"no frames recorded for charger {args.charger!r}")
            return 0
        after = batch_of(rows[-1]) if rows else 0
        while True:
            for row in rows:
                if args.json:
                    print(json.dumps(row))
                else:
                    print(f"{row['ts']}  {_DIRECTIONS.get(row['direction'], row['direction']):<18}  {row['frame']}")
            if not args.follow:
                return 0
            sys.stdout.flush()
            time.sleep(0.5)  # the edge writes the journal every half second
            rows, after = read_since(store, args.charger, after)
    except KeyboardInterrupt:
        return 0
    finally:
        store.close()


def cmd_kiosk(args: argparse.Namespace) -> int:
    from kiosk_ui.main import run as run_kiosk

    return run_kiosk(load_config(args), args)


def cmd_tap(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    from edge.money import UidError, normalise_uid

    cfg = load_config(args)
    try:
        uid = normalise_uid(args.uid)
    except UidError as e:
        print(f"sitekeeper tap: {e}", file=sys.stderr)
        return 2
    host = "127.0.0.1" if cfg.web.host in ("0.0.0.0", "::", "") else cfg.web.host
    from edge.operations.tokens import read_local

    req = urllib.request.Request(f"http://{host}:{cfg.web.port}/api/taps", method="POST",
                                 data=json.dumps({"uid": uid, "reader": args.reader}).encode(),
                                 headers={"Content-Type": "application/json",
                                          "Authorization": f"Bearer {read_local(cfg.store.path) or ''}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            event = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        detail = json.loads(e.read() or b"{}").get("detail", e.reason)
        print(f"sitekeeper tap: {detail}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"sitekeeper tap: the edge is not reachable at {host}:{cfg.web.port} ({e})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(event, indent=1))
    else:
        who = f"{event.get('name')} ({event.get('kind')})" if event.get("known") else "unknown card"
        print(f"{event['uid_masked']} on {event['reader']}: {who}: {event['result']}"
              + (f" ({event['message']})" if event.get("message") else ""))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    if not args.status:
        from cloud_sync.service import run

        run(cfg)
        return 0
    from edge.store.outbox import status

    store = open_store(cfg)
    try:
        st = status(store.db.conn)
    finally:
        store.close()
    # running: the sync process holds its lock (gone the moment it dies, however it dies), not a heartbeat
    st["running"] = Lock(cfg.store.path, "sync").held()
    st["connected"] = st["connected"] and st["running"]
    st["configured"] = bool(cfg.mqtt.host)
    if args.json:
        print(json.dumps(st, indent=1))
        return 0
    broker = f"{cfg.mqtt.host}:{cfg.mqtt.port}" if cfg.mqtt.host else "none configured ([mqtt] host)"
    state = "connected" if st["connected"] else "running, not connected" if st["running"] else "not running"
    print(f"broker         {broker}")
    print(f"sync           {state}" + (f" ({st['last_error']})" if st["last_error"] else ""))
    print(f"backlog        {st['backlog']} record(s) not acknowledged by the cloud, {st['unsent']} not yet sent")
    print(f"oldest unsent  {st['oldest_unsent_age_s']:.0f} s")
    print(f"last ack       seq {st['last_ack_seq']} of {st['last_seq']}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from edge.store.backup import BackupError, backup

    cfg = load_config(args)
    if os.path.exists(args.dest) and not args.force:
        print(f"sitekeeper: {args.dest} exists (--force replaces it)", file=sys.stderr)
        return 2
    try:
        done = backup(cfg.store.path, args.dest, force=args.force)
    except (BackupError, sqlite3.Error, OSError) as e:
        print(f"sitekeeper: backup failed: {e}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{n} {t}" for t, n in done["counts"].items())
    print(f"backup written to {done['path']}: {done['bytes']} bytes, schema {done['schema']}, integrity ok; {counts}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """Make the site's database (as `run` would), where the config says."""
    cfg = load_config(args)
    existed = os.path.exists(cfg.store.path)
    open_store(cfg, create=True).close()
    print(f"database {'already at' if existed else 'made at'} {cfg.store.path}")
    return 0


def cmd_hash_password(args: argparse.Namespace) -> int:
    from edge.security import hash_password

    password = args.password if args.password is not None else getpass.getpass("charger password: ")
    if not password:
        print("sitekeeper: empty password", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        if getattr(args, "handler", None) is not None:
            return owner.run(args.handler, args, operate.BAD_INPUT + admin.BAD_INPUT)
        handler = {"run": cmd_run, "init": cmd_init, "simulate": cmd_simulate, "journal": cmd_journal,
                   "backup": cmd_backup, "sync": cmd_sync, "tap": cmd_tap, "kiosk": cmd_kiosk,
                   "hash-password": cmd_hash_password}[args.command]
        return handler(args)
    except BrokenPipeError:  # piped into `head`, which has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except StoreError as e:
        print(f"sitekeeper: {e}", file=sys.stderr)
        return 2
    except sqlite3.OperationalError as e:  # e.g. a database this user may read but not write
        print(f"sitekeeper: the database cannot be used as {me()}: {e} (run as the service user:"
              " sudo -u sitekeeper sitekeeper ..., see docs/operations.md)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
