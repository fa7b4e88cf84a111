"""Where everything of a `View` goes on the screen, for any size and either orientation: pure geometry, with
the text measured by a function the shell gives (pygame's fonts; the tests give their own). Sizes follow the
panel's millimetres (`px_per_mm`): buttons at least 10 mm high (52 px on the official 7-inch 800x480 panel),
the main one 15 mm; money and kWh at least 34 px; nothing placed outside the screen (what does not fit is
left off and said in `overflow`).

`hit(placed, x, y)` names the button under a touch, in the same logical coordinates; `to_logical` maps a
point of the physical panel to them when the screen is drawn rotated."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kiosk_ui.screens import Button, View

Measure = Callable[[str, int], int]  # (text, font px) → width in px


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int

    def holds(self, x: float, y: float) -> bool:
        return self.x <= x < self.x + self.w and self.y <= y < self.y + self.h


@dataclass(frozen=True)
class Placed:
    kind: str  # "text", "button", "qr", "bar"
    box: Box
    text: str = ""
    px: int = 0  # font size
    tone: str = "normal"
    button: Button | None = None
    bold: bool = False


@dataclass
class Layout:
    items: list[Placed] = field(default_factory=list)
    overflow: list[str] = field(default_factory=list)  # texts left off for want of room


def sizes(px_per_mm: float) -> dict[str, int]:
    return {"title": max(30, round(6.5 * px_per_mm)), "big": max(34, round(7.5 * px_per_mm)),
            "body": max(24, round(5 * px_per_mm)), "small": max(20, round(4 * px_per_mm)),
            "button": max(52, round(10 * px_per_mm)), "main": max(78, round(15 * px_per_mm)),
            "pad": max(8, round(2 * px_per_mm))}


def wrap(text: str, px: int, width: int, measure: Measure) -> list[str]:
    """`text` in lines no wider than `width` (by words; a word too long for a line, or Chinese, by characters)."""
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in _tokens(para):
            trial = line + word
            if line and measure(trial.rstrip(), px) > width:
                lines.append(line.rstrip())
                line = word.lstrip()
            else:
                line = trial
            while measure(line.rstrip(), px) > width and len(line) > 1:  # one token wider than the line
                cut = len(line) - 1
                while cut > 1 and measure(line[:cut], px) > width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line.rstrip())
    return [x for x in lines if x] or [""]


def _tokens(text: str) -> list[str]:
    """Words with their trailing space; each CJK character a word of its own (Chinese breaks anywhere)."""
    out, word = [], ""
    for ch in text:
        if "\u2e80" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef":
            if word:
                out.append(word)
                word = ""
            out.append(ch)
        else:
            word += ch
            if ch == " ":
                out.append(word)
                word = ""
    if word:
        out.append(word)
    return out


def _buttons_rows(buttons: list[Button], width: int, s: dict, measure: Measure) -> list[list[Button]]:
    """Buttons in rows: all in one when each still holds its words (up to three), else the others in rows of
    up to three and the main ones in a row of their own, last (nearest the hand)."""
    def fits(row: list[Button]) -> bool:
        w = (width - s["pad"] * (len(row) - 1)) // len(row)
        return all(measure(b.label, s["body"]) + 2 * s["pad"] <= w and w >= s["button"] for b in row)

    if not buttons:
        return []
    if len(buttons) <= 3 and fits(buttons):
        return [sorted(buttons, key=lambda b: b.main)]
    mains = [b for b in buttons if b.main]
    others = [b for b in buttons if not b.main]
    rows: list[list[Button]] = []
    cols = 3
    while cols > 1 and not all(fits(others[i:i + cols]) for i in range(0, len(others), cols)):
        cols -= 1
    rows += [others[i:i + cols] for i in range(0, len(others), cols)]
    if mains:
        rows += [mains] if fits(mains) else [[b] for b in mains]
    return rows


def place(view: View, width: int, height: int, measure: Measure, px_per_mm: float) -> Layout:
    s = sizes(px_per_mm)
    pad = s["pad"]
    out = Layout()
    y = pad
    # header: the title, and the languages (the first screen only); a second row when they do not fit beside it
    title_px = s["title"]
    lang_w = [measure(b.label, s["body"]) + 3 * pad for b in view.languages]
    langs_total = sum(lang_w) + pad * len(lang_w)
    title_w = measure(view.title, title_px)
    beside = view.languages and title_w + langs_total + 3 * pad <= width
    head_h = max(s["button"], round(title_px * 1.5))
    for line in wrap(view.title, title_px, width - 2 * pad - (langs_total if beside else 0), measure)[:2]:
        out.items.append(Placed("text", Box(pad, y, width - 2 * pad, round(title_px * 1.3)), line, title_px,
                                bold=True))
        y += round(title_px * 1.3)
    y = max(y, pad + head_h) if beside else y
    if view.languages:
        lx = width - pad - langs_total + pad if beside else pad
        ly = pad if beside else y + pad // 2
        for b, w in zip(view.languages, lang_w, strict=True):
            out.items.append(Placed("button", Box(lx, ly, w, s["button"]), b.label, s["body"], button=b))
            lx += w + pad
        if not beside:
            y = ly + s["button"] + pad
    if view.banner:
        lines = wrap(view.banner, s["small"], width - 4 * pad, measure)
        h = len(lines) * round(s["small"] * 1.3) + pad
        out.items.append(Placed("bar", Box(0, y, width, h), tone="alert"))
        for i, line in enumerate(lines):
            out.items.append(Placed("text", Box(2 * pad, y + pad // 2 + i * round(s["small"] * 1.3), width - 4 * pad,
                                                round(s["small"] * 1.3)), line, s["small"], tone="alert", bold=True))
        y += h + pad
    # the bottom: buttons (the main one last, full width), and the time-out warning above them
    bottom = height - pad
    rows = _buttons_rows(view.buttons, width - 2 * pad, s, measure)
    for row in reversed(rows):
        h = s["main"] if any(b.main for b in row) else s["button"]
        w = (width - 2 * pad - pad * (len(row) - 1)) // len(row)
        for i, b in enumerate(row):
            out.items.append(Placed("button", Box(pad + i * (w + pad), bottom - h, w, h), b.label,
                                    s["body"], tone="main" if b.main else "normal", button=b, bold=b.main))
        bottom -= h + pad
    if view.warning:
        lines = wrap(view.warning.text, s["body"], width - 2 * pad, measure)
        for line in reversed(lines):
            bottom -= round(s["body"] * 1.3)
            out.items.append(Placed("text", Box(pad, bottom, width - 2 * pad, round(s["body"] * 1.3)), line, s["body"],
                                    tone="alert", bold=True))
        bottom -= pad
    # the body: texts, and the QR code (beside them in landscape, below them in portrait)
    text_w = width - 2 * pad
    qr_side = 0
    landscape = width > height
    if view.qr:
        qr_side = min(bottom - y, round(width * 0.42)) if landscape else min(round(width * 0.7), (bottom - y) // 2)
        if landscape:
            text_w -= qr_side + pad
            out.items.append(Placed("qr", Box(width - pad - qr_side, y, qr_side, qr_side), view.qr))
    for text in view.texts:
        px = s[text.size]
        line_h = round(px * 1.3)
        lines = wrap(text.text, px, text_w, measure)
        room = (bottom - (qr_side + pad if view.qr and not landscape else 0)) - y
        if len(lines) * line_h > room:
            out.overflow.append(text.text)
            continue
        for line in lines:
            out.items.append(Placed("text", Box(pad, y, text_w, line_h), line, px, tone=text.tone,
                                    bold=text.size in ("big", "title")))
            y += line_h
        y += pad // 2
    if view.qr and not landscape:
        out.items.append(Placed("qr", Box((width - qr_side) // 2, y + pad, qr_side, qr_side), view.qr))
    return out


def hit(layout: Layout, x: float, y: float) -> str | None:
    """The button under a touch at logical (x, y), if any."""
    for item in layout.items:
        if item.kind == "button" and item.button is not None and item.box.holds(x, y):
            return item.button.id
    return None


def to_logical(x: float, y: float, rotate: int, panel_w: int, panel_h: int) -> tuple[float, float]:
    """A point of the physical panel (pixels) in the coordinates the screen is laid out in, when the logical
    screen is drawn turned by `rotate` degrees clockwise (0, 90, 180, 270) onto the panel."""
    if rotate == 90:  # the logical screen is panel_h wide and panel_w high
        return y, panel_w - 1 - x
    if rotate == 180:
        return panel_w - 1 - x, panel_h - 1 - y
    if rotate == 270:
        return panel_h - 1 - y, x
    return x, y
