"""Prometheus metrics of the edge, rendered by hand in the text exposition format (no extra dependency)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable


class Metrics:
    def __init__(self) -> None:
        self.frames: Counter[str] = Counter()  # by direction: c>e, e>c, e>u, u>e
        self.errors: Counter[str] = Counter()  # by kind
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.groups: list[tuple[Callable[[], dict], dict[str, tuple[str, str]]]] = []

    def gauge(self, name: str, help_text: str, fn: Callable[[], float]) -> None:
        self.gauges[name] = (help_text, fn)

    def gauge_group(self, fn: Callable[[], dict], gauges: dict[str, tuple[str, str]]) -> None:
        """Several gauges read from one call of `fn` per scrape: {name: (help, key of fn's dict)}."""
        self.groups.append((fn, gauges))

    def render(self) -> str:
        out: list[str] = []
        for name, (help_text, fn) in self.gauges.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {fn()}"]
        for fn, gauges in self.groups:
            values = fn()
            for name, (help_text, key) in gauges.items():
                value = int(values[key]) if isinstance(values[key], bool) else values[key]
                out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
        out += ["# HELP sitekeeper_frames_total OCPP frames by direction (c=charger, e=edge, u=upstream)",
                "# TYPE sitekeeper_frames_total counter"]
        for direction in ("c>e", "e>c", "e>u", "u>e"):
            out.append(f'sitekeeper_frames_total{{direction="{direction}"}} {self.frames[direction]}')
        out += ["# HELP sitekeeper_errors_total Errors by kind", "# TYPE sitekeeper_errors_total counter"]
        for kind in sorted(self.errors) or ["frame"]:
            out.append(f'sitekeeper_errors_total{{kind="{kind}"}} {self.errors[kind]}')
        return "\n".join(out) + "\n"
