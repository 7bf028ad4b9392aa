"""Prometheus metrics of one app instance, in its own registry (so tests can run several apps in one
process and each `/metrics` shows only its own counts)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
GAP_BUCKETS = (0.0, 1e-6, 1e-4, 1e-3, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("meridian_http_requests_total", "HTTP requests by route, method and status",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("meridian_http_request_duration_seconds", "HTTP request latency, end to end in "
                                 "the server", ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.solve = Histogram("meridian_plan_solve_seconds", "time the placement engine took per plan",
                               buckets=LATENCY_BUCKETS, registry=r)
        self.queue_wait = Histogram("meridian_plan_queue_seconds", "time an admitted plan waited for a worker",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.store = Histogram("meridian_plan_store_seconds", "time to make a plan record durable",
                               buckets=LATENCY_BUCKETS, registry=r)
        self.gap = Histogram("meridian_plan_gap", "relative optimality gap of returned plans", buckets=GAP_BUCKETS,
                             registry=r)
        self.plans = Counter("meridian_plans_total", "plans computed, by status (optimal, feasible, fallback, "
                             "infeasible)", ["status"], registry=r)
        self.fallbacks = Counter("meridian_plan_fallbacks_total", "plans that fell back to the heuristic "
                                 "(status fallback, or the optimizer failed)", registry=r)
        self.budget_cuts = Counter("meridian_plan_budget_cuts_total", "plans solved with less than their "
                                   "time_limit_s because the queue was long", registry=r)
        self.replans = Counter("meridian_plan_replans_total", "plans answered by a warm re-plan from the "
                               "fleet's previous plan (placement/replan.py)", registry=r)
        self.engine_errors = Counter("meridian_engine_errors_total", "plans where the engine raised", registry=r)
        self.rejected = Counter("meridian_rejected_total", "requests refused before planning, by reason",
                                ["reason"], registry=r)
        self.idempotent_replays = Counter("meridian_idempotent_replays_total",
                                          "requests answered from the plan log by their Idempotency-Key", registry=r)
        self.loop_lag = Histogram("meridian_event_loop_lag_seconds", "how late the event loop woke from a 50 ms "
                                  "sleep: time a ready request (or /healthz) may wait before it is even read",
                                  buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0), registry=r)
        self.gc_pause = Histogram("meridian_gc_pause_seconds", "Python garbage-collector pauses by generation (the "
                                  "whole process stops for them)", ["generation"],
                                  buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=r)
        self.queue_depth = Gauge("meridian_queue_depth", "admitted plans waiting for a worker", registry=r)
        self.solving = Gauge("meridian_solves_in_progress", "plans being solved now", registry=r)

    def bind(self, waiting: Callable[[], float], running: Callable[[], float]) -> None:
        """Read the gauges from the admission counters at scrape time, so they can never drift."""
        self.queue_depth.set_function(waiting)
        self.solving.set_function(running)

    def render(self) -> bytes:
        return generate_latest(self.registry)
