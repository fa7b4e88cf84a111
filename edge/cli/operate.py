"""The operator's `sitekeeper` commands: API tokens, and operations on the site's chargers.

    sitekeeper token create NAME [--role viewer|operator|owner]     prints the token once
    sitekeeper token list | revoke NAME
    sitekeeper charger list
    sitekeeper charger ID reset [--hard] | unlock [N] | availability N on|off | start N --card UID | stop TX
                          | trigger MESSAGE [--connector N] | clear-cache | config [KEY [VALUE]]
                          | call ACTION 'JSON' [--timeout S]
                          | firmware NAME [--follow] | firmware (the updates) | logs [--request [--follow]]
                          | logs --get N [-o FILE] | limit N AMPS|WATTSW [--until TIME] | limit N clear
                          | schedule N | reserve N --card UID [--minutes M] | reservations | cancel-reservation R
                          | approve (a new charger waiting for the owner: ocpp.new_chargers)
                          | security-profile [N [--url URL]] (raise it over OCPP; no N: where it stands)
    sitekeeper operations list [--charger ID] [--limit N]
    sitekeeper firmware add FILE [--name NAME] | list | remove NAME

Tokens are kept in the database (only hashed), so `token` works with the edge stopped. Operations go to the
running edge, which holds the chargers' connections, through its HTTP API with the local token it writes
beside the database: the CLI is one more face over `edge.operations`, like the web pages. `--json` prints
the API's answer as it is.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from edge.cli.common import Site, load_config, print_json, print_table
from edge.operations import files, tokens
from edge.store.ops import TRANSFER_OVER


class CliError(ValueError):
    """Bad input or an answer the command cannot use; one line, exit 2."""


# -- tokens ----------------------------------------------------------------------------------------------

def cmd_token(args: argparse.Namespace) -> int:
    site = Site(args)
    if args.action == "create":
        token = site.write(lambda c: tokens.create(c, args.name, args.role))
        if args.json:
            print_json({"name": args.name, "role": args.role, "token": token})
        else:
            print(token)
            print(f"token {args.name!r} ({args.role}): shown this once; send it as 'Authorization: Bearer <token>'",
                  file=sys.stderr)
    elif args.action == "list":
        rows = site.read(tokens.listed)
        if args.json:
            print_json(rows)
        else:
            print_table(["name", "role", "created", "last used"],
                        [[r["name"], r["role"], site.when(r["created"]), site.when(r["last_used"])] for r in rows])
    else:
        site.write(lambda c: tokens.revoke(c, args.name))
        print(f"token {args.name!r} revoked")
    return 0


# -- the running edge's API --------------------------------------------------------------------------------

def _api(args: argparse.Namespace, method: str, path: str, body: Any = None, timeout: float = 60,
         raw: bool = False) -> Any:
    cfg = load_config(args)
    host = "127.0.0.1" if cfg.web.host in ("0.0.0.0", "::", "") else cfg.web.host
    token = tokens.read_local(cfg.store.path)
    if token is None:
        raise CliError(f"no local API token beside {cfg.store.path}: is the edge running, and are you its service"
                       " user? (sudo -u sitekeeper sitekeeper ...)")
    scheme, context = "http", None
    if cfg.web.tls_cert:  # HTTPS: the edge on this machine, whose certificate names the site, not 127.0.0.1
        scheme, context = "https", ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    req = urllib.request.Request(f"{scheme}://{host}:{cfg.web.port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            data = resp.read()
            return data if raw else json.loads(data)
    except urllib.error.HTTPError as e:
        answer = json.loads(e.read() or b"{}")
        if e.code in (409, 504) and isinstance(answer, dict) and "status" in answer:
            return answer  # not connected, timeout: an outcome like the others
        detail = answer.get("detail", e.reason) if isinstance(answer, dict) else e.reason
        if isinstance(detail, dict):
            detail = (detail.get("error") or {}).get("description") or json.dumps(detail)
        raise CliError(str(detail)) from None
    except OSError as e:
        raise CliError(f"the edge is not reachable at {host}:{cfg.web.port} ({e})") from None


def _show(args: argparse.Namespace, out: dict) -> int:
    if args.json:
        print_json(out)
        return 0 if out.get("status") == "answered" else 1
    head = f"{out.get('charger')} {out.get('action', '')}:".strip()
    if out.get("status") == "answered":
        print(f"{head} {json.dumps(out.get('response'), ensure_ascii=False)}")
        if out.get("problem"):
            print(f"  (the answer does not fit its schema: {out['problem']})")
        if "transaction" in out:
            tx = out["transaction"]
            print(f"  session {tx['id']} started" if tx else f"  {out.get('note', 'no session started')}")
        return 0
    error = out.get("error") or {}
    print(f"{head} {out.get('status')}: {error.get('code', '')} {error.get('description', '')}".rstrip())
    return 1


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CliError(f"{what} must be a number, got {text!r}") from None


def cmd_charger(args: argparse.Namespace) -> int:
    words = args.words
    if words == ["list"]:
        rows = _api(args, "GET", "/api/chargers")
        if args.json:
            print_json(rows)
        else:
            print_table(["charger", "version", "connected", "vendor", "model", "last seen", "standing"],
                        [[r["id"], r.get("ocpp_version"), "yes" if r.get("connected") else "no", r.get("vendor"),
                          r.get("model"), r.get("last_seen"),
                          "waiting for approval" if r.get("registration") == "pending" else ""] for r in rows])
        return 0
    if len(words) < 2:
        raise CliError("say what to do: sitekeeper charger ID reset|unlock|availability|start|stop|trigger|"
                       "clear-cache|config|call|approve ... (or: sitekeeper charger list)")
    cid, verb, rest = words[0], words[1], words[2:]
    base = f"/api/chargers/{urllib.parse.quote(cid, safe='')}"
    if verb == "reset" and not rest:
        return _show(args, _api(args, "POST", f"{base}/reset", {"hard": args.hard}))
    if verb == "unlock" and len(rest) <= 1:
        return _show(args, _api(args, "POST", f"{base}/unlock", {"connector": _int(rest[0], "connector") if rest
                                                                   else 1}))
    if verb == "availability" and len(rest) == 2 and rest[1] in ("on", "off"):
        return _show(args, _api(args, "POST", f"{base}/availability",
                                {"connector": _int(rest[0], "connector"), "operative": rest[1] == "on"}))
    if verb == "start" and len(rest) == 1 and args.card:
        return _show(args, _api(args, "POST", f"{base}/start?timeout={args.timeout:g}",
                                {"connector": _int(rest[0], "connector"), "card": args.card},
                                timeout=args.timeout + 30))
    if verb == "stop" and len(rest) == 1:
        return _show(args, _api(args, "POST", f"{base}/stop", {"transaction": _int(rest[0], "transaction")}))
    if verb == "trigger" and len(rest) == 1:
        return _show(args, _api(args, "POST", f"{base}/trigger", {"message": rest[0], "connector": args.connector}))
    if verb == "approve" and not rest:
        out = _api(args, "POST", f"{base}/approve")
        if args.json:
            print_json(out)
        else:
            print(f"{cid} is approved: " + ("it was asked to boot again and is accepted now" if out["boot_asked"]
                                           else "it is accepted at its next BootNotification"))
        return 0
    if verb == "security-profile" and len(rest) <= 1:
        if not rest:
            now = _api(args, "GET", f"{base}/security-profile")
            if args.json:
                print_json(now)
            else:
                print(f"{cid}: security profile {max(now['site'], now['own'])} (the site's {now['site']}, its own"
                      f" {now['own']})" + (f"; asked to move to {now['asked']}" if now["asked"] else ""))
            return 0
        out = _api(args, "POST", f"{base}/security-profile", {"profile": _int(rest[0], "profile"), "url": args.url})
        if args.json:
            print_json(out)
        elif out.get("asked"):
            print(f"{cid} was asked to move to security profile {out['asked']} ({out['url']}): its old profile works"
                  " until it has connected at the new one, and is refused from then on")
        else:
            print(f"{cid} refused {out.get('refused_at')}: it stays at its security profile")
            return 1
        return 0
    if verb == "clear-cache" and not rest:
        return _show(args, _api(args, "POST", f"{base}/clear-cache"))
    if verb == "config" and len(rest) <= 1:
        query = f"?key={urllib.parse.quote(rest[0])}" if rest else ""
        return _show(args, _api(args, "GET", f"{base}/configuration{query}"))
    if verb == "config" and len(rest) == 2:
        return _show(args, _api(args, "PUT", f"{base}/configuration", {"key": rest[0], "value": rest[1]}))
    if verb == "call" and len(rest) in (1, 2):
        try:
            payload = json.loads(rest[1]) if len(rest) == 2 else {}
        except ValueError as e:
            raise CliError(f"the payload is not JSON: {e}") from None
        return _show(args, _api(args, "POST", f"{base}/call/{urllib.parse.quote(rest[0])}?timeout={args.timeout:g}",
                                payload, timeout=args.timeout + 30))
    more = _files_and_limits(args, base, verb, rest)
    if more is not None:
        return more
    raise CliError(f"not a charger command: {' '.join(words[1:])} (see sitekeeper charger --help)")


def _limit(text: str) -> dict:
    """'16' or '16A' amps, '7400W' watts."""
    unit = "watts" if text.upper().endswith("W") else "amps"
    try:
        return {unit: float(text.rstrip("AaWw"))}
    except ValueError:
        raise CliError(f"a limit is amps (16, 16A) or watts (7400W), got {text!r}") from None


def _follow(args: argparse.Namespace, path: str, transfer_id: int, timeout: float) -> int:
    """Print a transfer's statuses as the charger reports them, until it ends (or `timeout`)."""
    import time

    seen, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = next((t for t in _api(args, "GET", path) if t["id"] == transfer_id), None)
        if row is None:
            raise CliError(f"no transfer {transfer_id}")
        for at, status in row["history"][seen:]:
            print(f"  {Site(args).when(at, seconds=True)}  {status}")
        seen = len(row["history"])
        if row["status"] in (*TRANSFER_OVER["log" if path.endswith("/logs") else "firmware"], "refused",
                             "not_connected"):
            return 0 if row["status"] in ("Installed", "Uploaded") else 1
        time.sleep(1.0)
    print(f"  (still {row['status']} after {timeout:g} s; see sitekeeper charger ... {path.rsplit('/', 1)[1]})")
    return 1


def _files_and_limits(args: argparse.Namespace, base: str, verb: str, rest: list[str]) -> int | None:
    if verb == "firmware" and len(rest) == 1:
        body: dict = {"file": rest[0]}
        if args.at:
            body["at"] = args.at
        out = _api(args, "POST", f"{base}/firmware", body)
        code = _show(args, out)
        if code == 0 and args.follow and not args.json:
            return _follow(args, f"{base}/firmware", out["transfer"]["id"], args.timeout * 20)
        return code
    if verb in ("firmware", "logs") and not rest and not args.request and args.get is None:
        rows = _api(args, "GET", f"{base}/{verb}")
        if args.json:
            print_json(rows)
        else:
            site = Site(args)
            print_table(["n", "asked", "by", "file", "bytes", "status", "updated"],
                        [[r["id"], site.when(r["created"]), r["who"], r["file"], r["size"], r["status"],
                          site.when(r["updated"], seconds=True)] for r in rows])
        return 0
    if verb == "logs" and not rest and args.request:
        out = _api(args, "POST", f"{base}/logs")
        code = _show(args, out)
        if code == 0 and args.follow and not args.json:
            return _follow(args, f"{base}/logs", out["transfer"]["id"], args.timeout * 10)
        return code
    if verb == "logs" and not rest and args.get is not None:
        data = _api(args, "GET", f"{base}/logs/{args.get}", raw=True)
        if args.output in (None, "-"):
            sys.stdout.buffer.write(data)
        else:
            with open(args.output, "wb") as f:
                f.write(data)
            print(f"log {args.get}: {len(data)} bytes written to {args.output}")
        return 0
    if verb == "limit" and len(rest) == 2 and rest[1] == "clear":
        return _show(args, _api(args, "DELETE", f"{base}/charging-limit?connector={_int(rest[0], 'connector')}"))
    if verb == "limit" and len(rest) == 2:
        body = {"connector": _int(rest[0], "connector"), **_limit(rest[1])}
        if args.until:
            body["until"] = args.until
        return _show(args, _api(args, "POST", f"{base}/charging-limit", body))
    if verb == "schedule" and len(rest) <= 1:
        return _show(args, _api(args, "GET", f"{base}/charging-limit?connector={_int(rest[0], 'connector') if rest else 0}"))
    if verb == "reserve" and len(rest) == 1 and args.card:
        body = {"connector": _int(rest[0], "connector"), "card": args.card}
        if args.minutes:
            body["minutes"] = args.minutes
        out = _api(args, "POST", f"{base}/reservations", body)
        code = _show(args, out)
        if not args.json and out.get("reservation"):
            r = out["reservation"]
            print(f"  reservation {r['id']}: {r['status']}, until {Site(args).when(r['expires'])}")
        return code
    if verb == "reservations" and not rest:
        rows = _api(args, "GET", f"{base}/reservations")
        if args.json:
            print_json(rows)
        else:
            site = Site(args)
            print_table(["n", "connector", "card", "until", "status", "by"],
                        [[r["id"], r["connector"], r["id_tag"], site.when(r["expires"]), r["status"], r["who"]]
                         for r in rows])
        return 0
    if verb == "cancel-reservation" and len(rest) == 1:
        return _show(args, _api(args, "DELETE", f"{base}/reservations/{_int(rest[0], 'reservation')}"))
    return None


def cmd_firmware(args: argparse.Namespace) -> int:
    """The firmware images the edge serves to its chargers (kept beside the database; the edge may be off)."""
    site = Site(args)
    db_path = load_config(args).store.path
    if args.action == "add":
        row = site.write(lambda c: files.add_firmware(c, db_path, args.file, args.name))
        if args.json:
            print_json(row)
        else:
            print(f"firmware {row['name']}: {row['size']} bytes, sha256 {row['sha256']}")
    elif args.action == "list":
        rows = site.read(files.firmware_listed)
        if args.json:
            print_json(rows)
        else:
            print_table(["name", "bytes", "sha256", "added"],
                        [[r["name"], r["size"], r["sha256"][:16], site.when(r["added"])] for r in rows])
    else:
        site.write(lambda c: files.remove_firmware(c, db_path, args.name))
        print(f"firmware {args.name} removed")
    return 0


def cmd_operations(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({k: v for k, v in (("charger", args.charger), ("limit", args.limit)) if v})
    rows = _api(args, "GET", f"/api/operations?{query}")
    if args.json:
        print_json(rows)
        return 0
    site = Site(args)
    print_table(["id", "at", "who", "charger", "action", "status", "answer"],
                [[r["id"], site.when(r["at"], seconds=True), r["who"], r["charger"], r["action"], r["status"],
                  json.dumps(r["response"] if r["response"] is not None else r["error"], ensure_ascii=False)[:60]]
                 for r in rows])
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    t = sub.add_parser("token", parents=[common], help="make, list and revoke the HTTP API's bearer tokens")
    ts = t.add_subparsers(dest="action", required=True)
    p = ts.add_parser("create", parents=[common], help="make a token (printed once)")
    p.add_argument("name")
    p.add_argument("--role", choices=tokens.ROLES, default="viewer",
                   help="viewer: reads; operator: also operations and top-ups; owner: everything")
    p.add_argument("--json", action="store_true")
    p = ts.add_parser("list", parents=[common], help="the tokens (names and roles, never the tokens)")
    p.add_argument("--json", action="store_true")
    p = ts.add_parser("revoke", parents=[common], help="revoke a token")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    for p in ts.choices.values():
        p.set_defaults(handler=cmd_token)

    c = sub.add_parser("charger", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="operations on a charger, with its real answer (the edge must be running)",
                       description=__doc__.split("\n\n")[1])
    c.add_argument("words", nargs="+", metavar="list | ID COMMAND [ARGS]")
    c.add_argument("--hard", action="store_true", help="reset: at once (2.0.1 Immediate), not when idle")
    c.add_argument("--card", metavar="UID", help="start: the card to charge with")
    c.add_argument("--connector", type=int, help="trigger: for this connector")
    c.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the charger (default 30)")
    c.add_argument("--at", metavar="TIME", help="firmware: when the charger may fetch it (ISO 8601 with zone)")
    c.add_argument("--follow", action="store_true", help="firmware, logs --request: print the charger's statuses")
    c.add_argument("--request", action="store_true", help="logs: ask the charger to upload its log now")
    c.add_argument("--get", type=int, metavar="N", help="logs: fetch uploaded log N")
    c.add_argument("-o", "--output", metavar="FILE", help="logs --get: write it here (default: standard output)")
    c.add_argument("--until", metavar="TIME", help="limit: until this time (ISO 8601 with zone)")
    c.add_argument("--minutes", type=int, help="reserve: for this long (default [operations] reservation_minutes)")
    c.add_argument("--url", help="security-profile: where the charger reaches the edge at the new profile")
    c.add_argument("--json", action="store_true")
    c.set_defaults(handler=cmd_charger)

    o = sub.add_parser("operations", parents=[common], help="who did what to which charger, and its answer")
    os_ = o.add_subparsers(dest="action", required=True)
    p = os_.add_parser("list", parents=[common], help="the newest operations")
    p.add_argument("--charger", metavar="ID")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_operations)

    f = sub.add_parser("firmware", parents=[common], help="the firmware images the edge serves to its chargers")
    fs = f.add_subparsers(dest="action", required=True)
    p = fs.add_parser("add", parents=[common], help="store an image (then: sitekeeper charger ID firmware NAME)")
    p.add_argument("file")
    p.add_argument("--name", help="the name to keep it under (default: the file's)")
    p.add_argument("--json", action="store_true")
    p = fs.add_parser("list", parents=[common], help="the stored images")
    p.add_argument("--json", action="store_true")
    p = fs.add_parser("remove", parents=[common], help="remove an image")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    for p in fs.choices.values():
        p.set_defaults(handler=cmd_firmware)


BAD_INPUT = (CliError, tokens.TokenError, files.FileError)
