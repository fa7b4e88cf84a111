"""`sitekeeper admin`: the owner backend's accounts (the web pages' logins).

    sitekeeper admin add NAME [--role viewer|operator|owner]    the password from the terminal (asked twice),
                                                                or from standard input when it is not one
    sitekeeper admin list | passwd NAME | remove NAME

There is no default account or password: the first page of a new site says to make one. Accounts are kept in
the database (passwords only as scrypt hashes), so these work with the edge stopped; `passwd` ends the
account's sessions."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from edge.cli.common import Site, print_json, print_table
from edge.operations import admins
from edge.operations.tokens import ROLES


def _password(confirm: bool = True) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != first:
        raise admins.AdminError("the two passwords differ")
    return first


def cmd_admin(args: argparse.Namespace) -> int:
    site = Site(args)
    if args.action == "add":
        password = _password()
        site.write(lambda c: admins.add(c, args.name, args.role, password))
        print(f"account {args.name!r} ({args.role}) made: log in at http://<this computer>:{site.cfg.web.port}/")
    elif args.action == "list":
        rows = site.read(admins.listed)
        if args.json:
            print_json(rows)
        else:
            print_table(["name", "role", "made", "last login"],
                        [[r["name"], r["role"], site.when(r["created"]), site.when(r["last_login"])] for r in rows])
    elif args.action == "passwd":
        password = _password()
        site.write(lambda c: admins.passwd(c, args.name, password))
        print(f"account {args.name!r}: new password set, its sessions ended")
    else:
        site.write(lambda c: admins.remove(c, args.name))
        print(f"account {args.name!r} removed")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    a = sub.add_parser("admin", parents=[common], help="the owner backend's accounts (web logins)")
    acts = a.add_subparsers(dest="action", required=True)
    p = acts.add_parser("add", parents=[common], help="make an account (the password is asked for)")
    p.add_argument("name")
    p.add_argument("--role", choices=ROLES, default="viewer",
                   help="viewer: reads; operator: also top-ups, cards and operations; owner: everything")
    p = acts.add_parser("list", parents=[common], help="the accounts")
    p.add_argument("--json", action="store_true")
    p = acts.add_parser("passwd", parents=[common], help="set a new password (ends the account's sessions)")
    p.add_argument("name")
    p = acts.add_parser("remove", parents=[common], help="remove an account")
    p.add_argument("name")
    for p in acts.choices.values():
        p.set_defaults(handler=cmd_admin)


BAD_INPUT = (admins.AdminError,)
