"""Tap-to-decision latency: a UID delivered by the sim reader → the decision published on the event stream.

Starts `sitekeeper run` (standalone) with a sim kiosk reader and a registered commercial card, subscribes to
`/api/events` (Server-Sent Events), then taps N times (POST /api/taps, what `sitekeeper tap` does) and times
each tap from the request to the event's arrival on the stream. The baseline, measured in the same run on the
same database file, is the bare ledger decision: `billing.check` (card, balance, open sessions) on a plain
SQLite connection.

    .venv/bin/python bench/tap.py [--taps 500] [--quick]

Prints p50/p99 of both and their ratio. Not a test: nothing passes or fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from benchutil import free_port, percentile  # noqa: E402
from conftest import to_toml  # noqa: E402

from edge.billing import cards, ledger  # noqa: E402
from edge.billing import sessions as billing  # noqa: E402
from edge.store.sqlite import Store  # noqa: E402

UID = "04BE0C01"


def baseline(db: str, n: int) -> list[float]:
    conn = sqlite3.connect(db)
    card = cards.get_card(conn, UID)
    assert card is not None
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        billing.check(conn, cards.get_card(conn, UID), charger_id="", version="2.0.1")  # type: ignore[arg-type]
        out.append(time.perf_counter() - t0)
    conn.close()
    return out


async def taps(web_port: int, n: int) -> list[float]:
    arrived: asyncio.Queue[float] = asyncio.Queue()

    async def listen(client: httpx.AsyncClient) -> None:
        async with client.stream("GET", f"http://127.0.0.1:{web_port}/api/events") as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data: ") and json.loads(line[6:]).get("type") == "tap":
                    arrived.put_nowait(time.perf_counter())

    out = []
    async with httpx.AsyncClient(timeout=30) as client, httpx.AsyncClient(timeout=None) as stream_client:
        listener = asyncio.create_task(listen(stream_client))
        await asyncio.sleep(0.5)
        for i in range(n + 20):
            t0 = time.perf_counter()
            resp = await client.post(f"http://127.0.0.1:{web_port}/api/taps", json={"uid": UID, "reader": "kiosk"})
            resp.raise_for_status()
            t1 = await asyncio.wait_for(arrived.get(), 10)
            if i >= 20:  # warm-up taps are not counted
                out.append(t1 - t0)
        listener.cancel()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--taps", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="100 taps")
    args = ap.parse_args()
    n = 100 if args.quick else args.taps
    with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
        db = str(Path(tmp) / "bench.db")
        store = Store.open(db)

        def setup(conn: sqlite3.Connection) -> None:
            card = cards.add_card(conn, UID, "commercial", name="Bench")
            ledger.post(conn, card.account_id, "topup", 100_000, key="bench", currency="PHP")
        store.write_now(setup)
        store.close()
        web = free_port()
        cfg = Path(tmp) / "site.toml"
        cfg.write_text(to_toml({"store": {"path": db}, "ocpp": {"port": free_port()}, "web": {"port": web},
                                "reader": {"kiosk": {"backend": "sim"}}}))
        edge = subprocess.Popen([str(Path(sys.executable).parent / "sitekeeper"), "--config", str(cfg), "run"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in edge.stdout:  # type: ignore[union-attr]
                if line.startswith("ready:"):
                    break
            base = sorted(baseline(db, n * 4))
            measured = sorted(asyncio.run(taps(web, n)))
        finally:
            edge.terminate()
            edge.wait(15)
    b50, b99 = percentile(base, 50) * 1e3, percentile(base, 99) * 1e3
    t50, t99 = percentile(measured, 50) * 1e3, percentile(measured, 99) * 1e3
    print(f"tap → decision on the event stream, {n} taps (sim reader, HTTP in, SSE out), this machine")
    print(f"{'':34}{'p50 ms':>10}{'p99 ms':>10}")
    print(f"{'bare ledger decision (baseline)':34}{b50:>10.3f}{b99:>10.3f}")
    print(f"{'tap to published decision':34}{t50:>10.3f}{t99:>10.3f}")
    print(f"{'ratio':34}{t50 / b50:>9.1f}x{t99 / b99:>9.1f}x")


if __name__ == "__main__":
    main()
