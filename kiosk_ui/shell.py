"""The thin pygame shell of the kiosk: opens the display (fullscreen by SDL's KMSDRM on Pi OS Lite, a window
with `--windowed`, the dummy driver in tests), draws what `Kiosk.view()` says through `kiosk_ui.layout`,
turns touches into button presses, feeds the client's news to the screens, and carries out their requests.

Touch is taken once: FINGERDOWN, and a mouse click only when it is a real mouse (SDL also makes a mouse
click of every touch, marked `touch`). The screen is drawn on a logical surface and turned by
`[kiosk] rotate` onto the panel; touches are turned back the same way (`layout.to_logical`). With
`screenshot_dir`, each new screen is saved as a PNG named by time, screen and language.
"""

from __future__ import annotations

import logging
import os
import queue
import time
from datetime import datetime
from pathlib import Path

import pygame
import pygame.freetype
import segno

from edge.notify import Pinger, notify
from kiosk_ui import layout
from kiosk_ui.screens import Kiosk, Request, View

log = logging.getLogger(__name__)

BG, FG, MUTED = (11, 18, 32), (255, 255, 255), (200, 210, 225)
TONES = {"normal": FG, "ok": (155, 226, 155), "alert": (255, 180, 180)}
BUTTON_BG, BUTTON_FG, MAIN_BG, MAIN_FG = (232, 238, 247), (11, 18, 32), (255, 212, 0), (0, 0, 0)
BAR_BG = (120, 20, 30)
LATIN = ("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf", "/usr/share/fonts/truetype/noto/NotoSans-Bold.ttf")
CJK = ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc")
SC_INDEX = 2  # in Noto Sans CJK's collection: Simplified Chinese


class Fonts:
    """Noto Sans for English and Filipino (and the peso sign, which the CJK fonts lack), Noto Sans CJK SC for
    Chinese (fonts-noto-core and fonts-noto-cjk, which setup.sh installs): each character is drawn by the
    first that has it."""

    def __init__(self) -> None:
        pygame.freetype.init()
        self.faces: list[tuple[pygame.freetype.Font, pygame.freetype.Font]] = []
        for (regular, bold), index in ((LATIN, 0), (CJK, SC_INDEX)):
            if os.path.exists(regular) and os.path.exists(bold):
                pair = (pygame.freetype.Font(regular, 24, font_index=index),
                        pygame.freetype.Font(bold, 24, font_index=index))
                for font in pair:
                    font.pad = True
                self.faces.append(pair)
        if not self.faces:
            log.warning("kiosk: no Noto fonts (setup.sh installs fonts-noto-core and fonts-noto-cjk): Chinese and"
                        " the peso sign will not show")
            default = pygame.freetype.Font(None, 24)
            self.faces.append((default, default))
        self._face: dict[str, int] = {}

    def _which(self, ch: str) -> int:
        if ch not in self._face:
            self._face[ch] = next((i for i, (f, _) in enumerate(self.faces) if f.get_metrics(ch)[0] is not None), 0)
        return self._face[ch]

    def runs(self, text: str) -> list[tuple[int, str]]:
        """`text` cut where the font that draws it changes: [(face, part), ...]."""
        out: list[tuple[int, str]] = []
        for ch in text:
            face = out[-1][0] if ch == " " and out else self._which(ch)
            if out and out[-1][0] == face:
                out[-1] = (face, out[-1][1] + ch)
            else:
                out.append((face, ch))
        return out

    def measure(self, text: str, px: int, bold: bool = False) -> int:
        return sum(self.faces[face][bold].get_rect(part, size=px).width for face, part in self.runs(text))

    def height(self, px: int) -> int:
        return self.faces[0][0].get_sized_height(px)

    def render(self, surf: pygame.Surface, x: int, y: int, text: str, color: tuple, px: int, bold: bool) -> None:
        """`text` with its top-left at (x, y), each part in its font, on one baseline."""
        base = y + self.faces[0][bold].get_sized_ascender(px)
        for face, part in self.runs(text):
            font = self.faces[face][bold]
            rect = font.get_rect(part, size=px)
            font.render_to(surf, (x, base - rect.y), part, color, size=px)
            x += rect.width

    def missing(self, text: str) -> list[str]:
        """The characters of `text` no font has a glyph for (they would be drawn as empty boxes: "tofu")."""
        return [ch for ch in set(text) if not ch.isspace()
                and all(f.get_metrics(ch)[0] is None for f, _ in self.faces)]


def _qr_surface(url: str, side: int) -> pygame.Surface:
    qr = segno.make(url, error="m")
    matrix = list(qr.matrix_iter(scale=1, border=2))
    n = len(matrix)
    cell = max(1, side // n)
    surf = pygame.Surface((n * cell, n * cell))
    surf.fill((255, 255, 255))
    for y, row in enumerate(matrix):
        for x, dark in enumerate(row):
            if dark:
                surf.fill((0, 0, 0), (x * cell, y * cell, cell, cell))
    return surf


class Shell:
    def __init__(self, kiosk: Kiosk, client, *, width: int, height: int, rotate: int = 0, px_per_mm: float = 0.0,
                 fullscreen: bool = True, screenshot_dir: str | None = None):
        self.kiosk, self.client = kiosk, client
        self.panel = (width, height)
        self.rotate = rotate
        self.logical = (height, width) if rotate in (90, 270) else (width, height)
        self.px_per_mm = px_per_mm or max(width, height) / 154.0
        self.screenshot_dir = Path(screenshot_dir) if screenshot_dir else None
        pygame.display.init()
        flags = pygame.FULLSCREEN if fullscreen else 0
        self.display = pygame.display.set_mode(self.panel, flags)
        pygame.display.set_caption("sitekeeper kiosk")
        pygame.mouse.set_visible(not fullscreen)
        self.fonts = Fonts()
        self.surface = pygame.Surface(self.logical)
        self.placed = layout.Layout()
        self._drawn: View | None = None
        self._shot_key: tuple | None = None
        self._qr: dict[str, pygame.Surface] = {}
        self.shots: list[Path] = []
        self.frame_ms: list[float] = []  # how long each turn of the loop took (the newest thousand)
        self.draws = 0
        self.running = True

    # -- input ---------------------------------------------------------------------------------------------
    def _touch(self, x: float, y: float) -> None:
        lx, ly = layout.to_logical(x, y, self.rotate, *self.panel)
        button = layout.hit(self.placed, lx, ly)
        if button is not None:
            self._carry(self.kiosk.press(button, time.monotonic()))

    def _pygame_events(self) -> None:
        for event in pygame.event.get():
            if event.type == pygame.QUIT:
                self.running = False
            elif event.type == pygame.FINGERDOWN:
                self._touch(event.x * self.panel[0], event.y * self.panel[1])
            elif event.type == pygame.MOUSEBUTTONDOWN and event.button == 1 and not getattr(event, "touch", False):
                self._touch(*event.pos)

    def _client_news(self) -> None:
        now = time.monotonic()
        while True:
            try:
                item = self.client.out.get_nowait()
            except queue.Empty:
                return
            if item[0] == "site":
                self._carry(self.kiosk.site(item[1], now))
            elif item[0] == "down":
                self._carry(self.kiosk.edge_down(now))
            elif item[0] == "tap":
                self._carry(self.kiosk.tap(item[1], now))
            elif item[0] == "answer":
                self._carry(self.kiosk.answer(item[1], item[2], now))

    def _carry(self, requests: list[Request]) -> None:
        for request in requests:
            self.client.send(request)

    # -- drawing -------------------------------------------------------------------------------------------
    def _draw(self, view: View) -> None:
        w, h = self.logical
        self.placed = layout.place(view, w, h, self.fonts.measure, self.px_per_mm)
        surf = self.surface
        surf.fill(BG)
        for item in self.placed.items:
            box = pygame.Rect(item.box.x, item.box.y, item.box.w, item.box.h)
            if item.kind == "bar":
                surf.fill(BAR_BG, box)
            elif item.kind == "qr":
                if item.text not in self._qr:
                    self._qr = {item.text: _qr_surface(item.text, item.box.w)}
                qr = self._qr[item.text]
                surf.blit(qr, qr.get_rect(center=box.center))
            elif item.kind == "button":
                main = item.tone == "main"
                pygame.draw.rect(surf, MAIN_BG if main else BUTTON_BG, box, border_radius=10)
                bold = main or item.bold
                width = self.fonts.measure(item.text, item.px, bold)
                self.fonts.render(surf, box.centerx - width // 2, box.centery - self.fonts.height(item.px) // 2,
                                  item.text, MAIN_FG if main else BUTTON_FG, item.px, bold)
            else:
                self.fonts.render(surf, box.x, box.y + (box.h - self.fonts.height(item.px)) // 2, item.text,
                                  TONES.get(item.tone, FG), item.px, item.bold)
        turned = pygame.transform.rotate(surf, -self.rotate) if self.rotate else surf
        self.display.blit(turned, (0, 0))
        pygame.display.flip()
        self._drawn = view
        self.draws += 1
        self._screenshot(view)

    def _screenshot(self, view: View) -> None:
        key = (view.screen, self.kiosk.lang, view.banner is not None, view.warning is not None, view.qr,
               len(view.texts), len(view.buttons))
        if self.screenshot_dir is None or key == self._shot_key:
            return
        self._shot_key = key
        self.screenshot_dir.mkdir(parents=True, exist_ok=True)
        name = f"{datetime.now().strftime('%Y%m%dT%H%M%S%f')}-{view.screen}-{self.kiosk.lang}.png"
        path = self.screenshot_dir / name
        pygame.image.save(self.display, str(path))
        self.shots.append(path)

    # -- the loop ------------------------------------------------------------------------------------------
    def step(self) -> None:
        """One turn: touches, the edge's news, time; the screen again if it changed."""
        began = time.perf_counter()
        self._pygame_events()
        self._client_news()
        self._carry(self.kiosk.tick(time.monotonic()))
        view = self.kiosk.view()
        if view != self._drawn:
            self._draw(view)
        self.frame_ms.append((time.perf_counter() - began) * 1000)
        del self.frame_ms[:-1000]

    def run(self) -> None:
        clock = pygame.time.Clock()
        notify("READY=1")
        ping = Pinger()  # systemd's watchdog: a frozen screen loop is restarted
        while self.running:
            self.step()
            ping()
            clock.tick(30)
        pygame.quit()
