"""``/metrics``: a snapshot in the Prometheus text format, through ``prometheus_client``.

The figures already exist (the health view); this module only names them. A registry of our
own, never the process-wide default one, so mounting the dashboard adds nothing to an
application's own ``/metrics`` and two dashboards do not collide.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from failover.web._snapshot import STATES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_PAIR = ["operation", "platform", "model"]


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "failover_requests", "Attempts recorded for the pair", labels=_PAIR
        )
        failures = CounterMetricFamily(
            "failover_failures", "Failed attempts recorded for the pair", labels=_PAIR
        )
        cost = CounterMetricFamily(
            "failover_cost", "Cost booked for the pair (estimates or recorded costs)", labels=_PAIR
        )
        rate = GaugeMetricFamily("failover_failure_ratio", "Failures / requests", labels=_PAIR)
        latency = GaugeMetricFamily(
            "failover_response_time_seconds",
            "Recent response time percentiles of the pair",
            labels=[*_PAIR, "quantile"],
        )
        state = GaugeMetricFamily(
            "failover_pair_state", "1 for the pair's current state", labels=[*_PAIR, "state"]
        )
        left = GaugeMetricFamily(
            "failover_unavailable_seconds_remaining",
            "Seconds until an open or cooling pair is tried again (absent when usable)",
            labels=[*_PAIR, "reason"],
        )
        usable = GaugeMetricFamily(
            "failover_operation_usable",
            "1 when the operation has a usable platform",
            labels=["operation"],
        )
        for operation in self.snapshot["operations"]:
            usable.add_metric([operation["name"]], 1.0 if operation["usable"] else 0.0)
            for row in operation["platforms"]:
                labels = [operation["name"], row["platform"], row["model"]]
                requests.add_metric(labels, row["requests"])
                failures.add_metric(labels, row["failures"])
                cost.add_metric(labels, row["cost"])
                rate.add_metric(labels, row["failure_rate"])
                for quantile, key in (("0.5", "p50"), ("0.95", "p95")):
                    if row[key] is not None:
                        latency.add_metric([*labels, quantile], row[key])
                for name in STATES:
                    state.add_metric([*labels, name], 1.0 if row["state"] == name else 0.0)
                if row["seconds_left"] is not None:
                    left.add_metric([*labels, row["reason"] or ""], row["seconds_left"])
        yield from (requests, failures, cost, rate, latency, state, left, usable)


def render(snapshot: dict[str, Any]) -> bytes:
    """The Prometheus text exposition of ``snapshot``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)
