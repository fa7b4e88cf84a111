"""The asyncio loop around one card reader: open, poll on a worker thread, debounce, hand taps over.

Reconnects with backoff when the reader or pcscd goes away, saying so once in the log (and once when it is
back). A backend that cannot run on this machine (mfrc522 off a Pi, pyscard missing) logs one clear line and
stops; the rest of the edge runs on. `sim` readers are not polled: their taps come from `sitekeeper tap`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from edge.config import ReaderConfig
from edge.rfid import Reader, ReaderGone, ReaderUnavailable, Tap, TapDetector

log = logging.getLogger(__name__)


def make_reader(name: str, cfg: ReaderConfig) -> Reader:
    if cfg.backend == "pcsc":
        from edge.rfid.pcsc import PcscReader

        return PcscReader(name, cfg)
    if cfg.backend == "mfrc522":
        from edge.rfid.mfrc522 import Mfrc522Reader

        return Mfrc522Reader(name, cfg)
    raise ValueError(f"reader {name}: backend {cfg.backend!r} is not polled")


async def run_reader(name: str, cfg: ReaderConfig, on_tap: Callable[[Tap], Awaitable[object]],
                     reader: Reader | None = None, max_backoff: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(1, thread_name_prefix=f"reader-{name}")
    try:
        try:
            reader = reader or make_reader(name, cfg)
        except (ReaderUnavailable, ImportError, RuntimeError) as e:
            log.error("reader %s (%s) cannot run here: %s", name, cfg.backend, e)
            return
        backoff, gone = 0.5, False
        while True:
            try:
                await loop.run_in_executor(pool, reader.open)
            except ReaderUnavailable as e:
                log.error("reader %s (%s) cannot run here: %s", name, cfg.backend, e)
                return
            except ReaderGone as e:
                if not gone:
                    log.warning("reader %s is not available (%s); retrying with backoff", name, e)
                    gone = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, max_backoff)
                continue
            if gone:
                log.info("reader %s is back", name)
            backoff, gone = 0.5, False
            detector = TapDetector()
            try:
                while True:
                    uid = await loop.run_in_executor(pool, reader.poll)
                    new = detector.feed(uid)
                    if new is not None:
                        try:
                            await on_tap(Tap(name, new, time.time()))
                        except Exception:
                            log.exception("reader %s: handling a tap failed", name)
                    await asyncio.sleep(cfg.poll_interval)
            except ReaderGone as e:
                log.warning("reader %s went away (%s); reconnecting", name, e)
                gone = True
                await loop.run_in_executor(pool, reader.close)
    finally:
        if reader is not None:
            try:
                await loop.run_in_executor(pool, reader.close)
            except Exception:  # noqa: BLE001 - closing a reader that is gone
                pass
        pool.shutdown(wait=False)
