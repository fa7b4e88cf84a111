"""Bar charts as inline SVG, drawn on the server (no script, no CDN): each bar carries its value as a <title>
(read out by screen readers, shown on hover), and the numbers are in the table beside it anyway."""

from __future__ import annotations

from html import escape


def bars(values: list[float], labels: list[str], texts: list[str], *, title: str, width: int = 720,
         height: int = 140) -> str:
    """An SVG of one bar per value (scaled to the largest), labelled under every seventh bar."""
    n = max(len(values), 1)
    top = max(values, default=0) or 1
    step = width / n
    gap = min(4.0, step * 0.2)
    out = [f'<svg class="chart" viewBox="0 0 {width} {height + 18}" role="img" aria-label="{escape(title)}"'
           f' preserveAspectRatio="none"><title>{escape(title)}</title>']
    for i, (value, label, text) in enumerate(zip(values, labels, texts, strict=True)):
        h = round(value / top * height, 1)
        x = round(i * step + gap / 2, 1)
        out.append(f'<rect x="{x}" y="{height - h}" width="{round(step - gap, 1)}" height="{h}">'
                   f'<title>{escape(label)}: {escape(text)}</title></rect>')
        if i % 7 == 0:
            out.append(f'<text x="{x}" y="{height + 14}">{escape(label[5:])}</text>')
    out.append("</svg>")
    return "".join(out)
