"""Prometheus metrics of one app (its own registry: no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("lip_requests", "Requests by surface, backend, model and status",
                                ["surface", "backend", "model", "status"], registry=r)
        self.latency = Histogram("lip_request_duration_seconds", "Time from request to last byte",
                                 ["surface", "backend", "model"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("lip_time_to_first_token_seconds", "Time from request to the first token of a stream",
                              ["backend", "model"], buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = Counter("lip_tokens", "Tokens by direction (input, output, cached)",
                              ["backend", "model", "direction"], registry=r)
        self.rejections = Counter("lip_limit_rejections", "Requests refused by a limit, by code",
                                  ["code"], registry=r)
        self.retries = Counter("lip_upstream_retries", "Upstream calls retried, by backend",
                               ["backend"], registry=r)
        self.breaker = Gauge("lip_circuit_open", "1 while a backend:model's circuit is open",
                             ["route"], registry=r)
        self.cost = Counter("lip_cost", "Cost from the models' pricing", ["backend", "model"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
