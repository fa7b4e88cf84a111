"""Prometheus metrics of the edge, rendered by hand in the text exposition format (no extra dependency)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

# Counters other than frames and errors: name → help. A sample may carry labels: name{label="value"}.
COUNTERS = {
    "sitekeeper_upstream_connects_total": "Upstream connection attempts by result (ok, failed)",
    "sitekeeper_answered_locally_while_up_total":
        "Charger messages the edge answered itself while the upstream link was open (a late answer, replay)",
    "sitekeeper_upstream_refused_total":
        "Transactions upstream refused (transactionId 0 or not Accepted) whose frames still went up, by when",
    "sitekeeper_replay_retries_total": "Replayed starts sent again after a ConcurrentTx right after their card's stop",
    "sitekeeper_replays_without_charger_total": "Queues replayed upstream on behalf of a charger not connected",
}

# What the local controller's `Notice`s count: a counter sample, or ("error", kind) for sitekeeper_errors_total.
NOTICES: dict[str, str | tuple[str, str]] = {
    "bad_frame": ("error", "format"),
    "not_accepted": ("error", "not_accepted"),  # a charger not accepted (yet) sent what it may not
    "answered_while_up": "sitekeeper_answered_locally_while_up_total",
    "upstream_refused_replay": 'sitekeeper_upstream_refused_total{when="replay"}',
    "upstream_refused_live": 'sitekeeper_upstream_refused_total{when="live"}',
    "replay_retried": "sitekeeper_replay_retries_total",
}


class Metrics:
    def __init__(self) -> None:
        self.frames: Counter[str] = Counter()  # by direction: c>e, e>c, e>u, u>e
        self.errors: Counter[str] = Counter()  # by kind
        self.counts: Counter[str] = Counter()  # samples of COUNTERS
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
        for name, help_text in COUNTERS.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter"]
            samples = sorted(k for k in self.counts if k.partition("{")[0] == name)
            out += [f"{k} {self.counts[k]}" for k in samples] or [f"{name} 0"]
        out += ["# HELP sitekeeper_errors_total Errors by kind", "# TYPE sitekeeper_errors_total counter"]
        for kind in sorted(self.errors) or ["frame"]:
            out.append(f'sitekeeper_errors_total{{kind="{kind}"}} {self.errors[kind]}')
        return "\n".join(out) + "\n"
