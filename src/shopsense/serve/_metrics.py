"""Prometheus metrics, in a registry per app so several apps (tests) never collide."""

from __future__ import annotations

from typing import Any

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("shopsense_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram(
            "shopsense_request_latency_seconds", "HTTP request latency", ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry)
        self.cache = Counter("shopsense_cache", "Response cache lookups", ["result"],
                             registry=self.registry)
        self.computed = Counter("shopsense_answers_computed", "Answers computed (cache misses), by kind "
                                "and where: on the event loop (loop: cheap answers, queue: in arrival order on a one-core "
                                "worker) or in a thread", ["kind", "where"],
                                registry=self.registry)
        self.compute_cpu = Histogram(
            "shopsense_answer_cpu_seconds", "CPU time of each computed answer (its thread's own, "
            "waits for the GIL excluded), by kind", ["kind"],
            buckets=(0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128), registry=self.registry)
        self.events = Counter("shopsense_events_stored", "Events stored via the API",
                              registry=self.registry)
        self.rate_limited = Counter("shopsense_rate_limited", "Requests refused by the rate limit",
                                    registry=self.registry)
        self.server_errors = Counter("shopsense_server_errors", "Responses with a 5xx status", ["route"],
                                     registry=self.registry)
        self.products = Gauge("shopsense_catalog_products", "Products in the store",
                              registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def latency_summary(self) -> dict[str, Any]:
        """Per-route count and mean latency, and p50/p99 upper bounds from the buckets."""
        out: dict[str, Any] = {}
        for metric in self.latency.collect():
            per: dict[str, dict[str, Any]] = {}
            for s in metric.samples:
                route = s.labels.get("route", "")
                d = per.setdefault(route, {"buckets": []})
                if s.name.endswith("_bucket"):
                    d["buckets"].append((float(s.labels["le"]), s.value))
                elif s.name.endswith("_count"):
                    d["count"] = s.value
                elif s.name.endswith("_sum"):
                    d["sum"] = s.value
            for route, d in per.items():
                n = d.get("count", 0.0)
                if not n:
                    continue
                row = {"count": int(n), "mean_ms": 1000 * d.get("sum", 0.0) / n}
                for q in (0.5, 0.99):
                    row[f"p{int(q * 100)}_ms_le"] = next(
                        (1000 * le for le, c in sorted(d["buckets"]) if c >= q * n), None)
                out[route] = row
        return out
