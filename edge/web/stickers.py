"""The pay QR codes: each connector's pay address (`{pay.public_url}/pay/<charger>/<connector>`) and a printable
sheet of stickers (SVG, A4: six to a page, each with the QR code, the charger and connector, and what to do in
English and Filipino). QR codes are made here by `segno`; no network. `sitekeeper pay stickers` writes the
sheet, the owner's `/payments` page offers it, and the kiosk shows the same code."""

from __future__ import annotations

import re
import sqlite3
import urllib.parse
from xml.sax.saxutils import escape

import segno

from edge.config import Config

_PAGE_W, _PAGE_H = 210, 297  # mm, A4 portrait
_COLS, _ROWS = 2, 3
_QR_MM = 56  # a 29-module code: about 2 mm a module, and 4 modules of quiet zone around it


def public_base(cfg: Config) -> str:
    """The address phones reach: `pay.public_url`, else the web app's own."""
    if cfg.pay.public_url:
        return cfg.pay.public_url.rstrip("/")
    host = cfg.web.host if cfg.web.host not in ("0.0.0.0", "::") else "127.0.0.1"
    return f"{'https' if cfg.web.tls_cert else 'http'}://{host}:{cfg.web.port}"


def pay_url(cfg: Config, charger_id: str, connector: int) -> str:
    return f"{public_base(cfg)}/pay/{urllib.parse.quote(charger_id, safe='')}/{connector}"


def connectors(conn: sqlite3.Connection) -> list[tuple[str, int]]:
    """Every connector the site has seen (a charger seen without one: its connector 1), in order."""
    seen = {(c, n) for c, n in conn.execute(
        "SELECT charger_id, CASE WHEN evse_id > 0 THEN evse_id ELSE connector_id END FROM connector_status"
        " WHERE evse_id > 0 OR connector_id > 0")}
    # (a charger waiting for the owner's approval is not offered to drivers: ocpp.new_chargers)
    chargers = [r[0] for r in conn.execute("SELECT id FROM chargers WHERE registration IS NOT 'pending' ORDER BY id")]
    for charger in chargers:
        if not any(c == charger for c, _ in seen):
            seen.add((charger, 1))
    return sorted(seen)


def qr_svg(url: str) -> str:
    """An SVG image of the QR code for `url` (for a page: scales to its box)."""
    return segno.make(url, error="m").svg_inline(scale=1, border=2, omitsize=True)


def sheet(cfg: Config, items: list[tuple[str, int]]) -> str:
    """A4 pages (SVG; one `<svg>` per page when there are more than six) of pay stickers for `items`."""
    pages = []
    per_page = _COLS * _ROWS
    for start in range(0, max(len(items), 1), per_page):
        cells = []
        for i, (charger, connector) in enumerate(items[start:start + per_page]):
            col, row = i % _COLS, i // _COLS
            x, y = 10 + col * 95, 10 + row * 92
            url = pay_url(cfg, charger, connector)
            qr = segno.make(url, error="m")
            size = qr.symbol_size(scale=1, border=0)[0]
            path = re.search(r' d="([^"]+)"', qr.svg_inline(scale=1, border=0)).group(1)  # type: ignore[union-attr]
            scale = _QR_MM / size
            qx = x + (90 - _QR_MM) / 2
            cells.append(
                f'<g class="sticker"><rect x="{x}" y="{y}" width="90" height="88" rx="4" fill="#fff" stroke="#888"'
                f' stroke-width="0.3" stroke-dasharray="2 1"/>'
                f'<text x="{x + 45}" y="{y + 6}" text-anchor="middle" font-size="4.2" font-weight="700">'
                f'{escape(cfg.site.name or cfg.site.id)}</text>'
                f'<path transform="translate({qx:.2f} {y + 13}) scale({scale:.4f})" stroke="#000" stroke-width="1"'
                f' fill="none" d="{path}"/>'
                f'<text x="{x + 45}" y="{y + 79}" text-anchor="middle" font-size="5" font-weight="700">'
                f'{escape(charger)} · {connector}</text>'
                f'<text x="{x + 45}" y="{y + 84}" text-anchor="middle" font-size="3.2">Scan to pay and charge ·'
                f' I-scan para magbayad</text></g>')
        pages.append(f'<svg xmlns="http://www.w3.org/2000/svg" width="{_PAGE_W}mm" height="{_PAGE_H}mm"'
                     f' viewBox="0 0 {_PAGE_W} {_PAGE_H}" font-family="sans-serif">'
                     f'<rect width="{_PAGE_W}" height="{_PAGE_H}" fill="#fff"/>{"".join(cells)}</svg>')
    if len(pages) == 1:
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + pages[0] + "\n"
    # several pages: stacked in one SVG, one A4 below the other (print with "fit to page" off)
    inner = "".join(p.replace("<svg ", f'<svg y="{n * _PAGE_H}" ', 1) for n, p in enumerate(pages))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="{_PAGE_W}mm"'
            f' height="{_PAGE_H * len(pages)}mm" viewBox="0 0 {_PAGE_W} {_PAGE_H * len(pages)}">{inner}</svg>\n')
