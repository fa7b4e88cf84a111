"""`sitekeeper kiosk`: the pay station on the Pi's touchscreen (or a window with `--windowed`).

It reads the config for where the edge is (`[kiosk] edge_url`, default its own web port on this machine), the
panel (`width`, `height`, `rotate`), the reader whose taps it acts on and the first language, and the edge's
token from beside the database (`kiosk-api.token`, role operator, readable by the service's group; it never
opens the database itself)."""

from __future__ import annotations

import argparse
import logging
import os

from edge.config import Config
from edge.operations.tokens import read_local

log = logging.getLogger(__name__)


def build(cfg: Config, *, windowed: bool = False, screenshot_dir: str | None = None):
    """The kiosk's parts, ready to run: (shell, client)."""
    if windowed is False and not os.environ.get("SDL_VIDEODRIVER") and not os.environ.get("DISPLAY") \
            and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ["SDL_VIDEODRIVER"] = "kmsdrm"  # Pi OS Lite: straight to the panel, no X
    from kiosk_ui.client import Client
    from kiosk_ui.screens import Kiosk
    from kiosk_ui.shell import Shell
    from kiosk_ui.text import translators

    k = cfg.kiosk
    base = k.edge_url or f"http://127.0.0.1:{cfg.web.port}"
    client = Client(base, lambda: os.environ.get("SITEKEEPER_TOKEN") or read_local(cfg.store.path, kiosk=True)
                    or read_local(cfg.store.path), reader=k.reader)
    kiosk = Kiosk(translators=translators(), lang=k.language)
    shell = Shell(kiosk, client, width=k.width, height=k.height, rotate=k.rotate, px_per_mm=k.px_per_mm,
                  fullscreen=not windowed, screenshot_dir=screenshot_dir)
    return shell, client


def run(cfg: Config, args: argparse.Namespace) -> int:
    shell, client = build(cfg, windowed=args.windowed, screenshot_dir=args.screenshot_dir)
    client.start()
    log.info("kiosk: %dx%d (turned %d°), edge at %s", cfg.kiosk.width, cfg.kiosk.height, cfg.kiosk.rotate,
             client.base)
    try:
        shell.run()
    except KeyboardInterrupt:
        pass
    finally:
        client.stop()
    return 0
