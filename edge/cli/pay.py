"""`sitekeeper pay ...`: the pay QR codes of the site's connectors.

    sitekeeper pay stickers [--out FILE] [--connector CP-1:1 ...]   a printable A4 sheet (SVG) of QR stickers
    sitekeeper pay urls [--json]                                    each connector's pay address
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edge.billing import owner
from edge.cli.common import Site, print_json, print_table
from edge.web import stickers


def _items(site: Site, given: list[str] | None) -> list[tuple[str, int]]:
    if not given:
        found = site.read(stickers.connectors)
        if not found:
            raise owner.OwnerError("no charger has connected yet: name connectors with --connector CP-1:1")
        return found
    out = []
    for text in given:
        charger, _, number = text.rpartition(":")
        if not charger or not number.isdigit() or int(number) < 1:
            raise owner.OwnerError(f"--connector: expected <charger-id>:<connector number>, got {text!r}")
        out.append((charger, int(number)))
    return out


def cmd_pay(args: argparse.Namespace) -> int:
    site = Site(args)
    items = _items(site, args.connector)
    if args.action == "urls":
        rows = [{"charger": c, "connector": n, "url": stickers.pay_url(site.cfg, c, n)} for c, n in items]
        if args.json:
            print_json(rows)
        else:
            print_table(["CHARGER", "CONNECTOR", "PAY ADDRESS"], [[r["charger"], r["connector"], r["url"]]
                                                                  for r in rows])
        return 0
    Path(args.out).write_text(stickers.sheet(site.cfg, items), encoding="utf-8")
    print(f"{len(items)} pay sticker(s) for {stickers.public_base(site.cfg)} written to {args.out}",
          file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print_json({"file": args.out, "stickers": len(items)})
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("pay", parents=[common], help="the pay QR codes of the site's connectors")
    acts = p.add_subparsers(dest="action", required=True)
    s = acts.add_parser("stickers", parents=[common], help="write a printable A4 sheet (SVG) of pay QR stickers")
    s.add_argument("--out", default="pay-stickers.svg", help="the file to write (default pay-stickers.svg)")
    u = acts.add_parser("urls", parents=[common], help="each connector's pay address")
    for q in (s, u):
        q.add_argument("--connector", action="append", metavar="CP-1:1",
                       help="this connector (again for more); default: every connector the site has seen")
        q.add_argument("--json", action="store_true")
        q.set_defaults(handler=cmd_pay)
