"""What a run is checked by, from a server's /metrics: the shadow's rows by outcome and the model
calls (and their seconds) by role."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from loadtest.bench.probes import metric_sum, metrics_text

OUTCOMES = ("scored", "not_selected", "dropped_queue_full", "dropped_overload", "failed")
ROLES = ("champion", "challenger")


@dataclass
class ShadowCounters:
    """The counters a run is measured by: shadow rows by outcome, model calls by role."""

    rows: dict[str, float] = field(default_factory=dict)  # outcome -> rows
    calls: dict[str, float] = field(default_factory=dict)  # role -> model calls
    call_s: dict[str, float] = field(default_factory=dict)  # role -> seconds in them

    @classmethod
    def from_metrics(cls, text: str) -> ShadowCounters:
        return cls(
            rows={
                o: metric_sum(text, "delivery_eta_shadow_rows_total", outcome=o) for o in OUTCOMES
            },
            calls={
                r: metric_sum(text, "delivery_eta_model_inference_seconds_count", role=r)
                for r in ROLES
            },
            call_s={
                r: metric_sum(text, "delivery_eta_model_inference_seconds_sum", role=r)
                for r in ROLES
            },
        )

    def minus(self, before: ShadowCounters) -> ShadowCounters:
        def sub(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
            return {k: a[k] - b.get(k, 0.0) for k in a}

        return ShadowCounters(
            sub(self.rows, before.rows),
            sub(self.calls, before.calls),
            sub(self.call_s, before.call_s),
        )


def scrape(url: str) -> ShadowCounters:
    """The counters of the server at ``url`` now."""
    return ShadowCounters.from_metrics(metrics_text(url))
