"""Prometheus metrics of one app (its own registry: no process-global state).

The per-request series (requests, durations, time to first token, tokens, cost) are kept as plain
numbers by ``RequestSeries`` and turned into metric families when ``/metrics`` is scraped: a
prometheus_client Counter or Histogram takes a lock on every update, and a request makes six of them.
Everything is updated and read on the event loop's thread. Rare events (rejections, retries,
breakers) use prometheus_client's own types.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self, size: int) -> None:
        self.counts = [0] * size  # per bucket, not cumulative; the last is +Inf
        self.total = 0.0


class _Series:
    """One (surface, backend, model)."""

    __slots__ = ("cached", "cost", "input", "latency", "output", "statuses", "ttft")

    def __init__(self, size: int) -> None:
        self.statuses: dict[int, int] = {}
        self.latency = _Histogram(size)
        self.ttft = _Histogram(size)
        self.input = 0
        self.output = 0
        self.cached = 0
        self.cost = 0.0


class RequestSeries(Collector):
    """Requests by surface, backend, model and status; durations, time to first token, tokens, cost."""

    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self._bounds = tuple(float(b) for b in buckets)
        self._series: dict[tuple[str, str, str], _Series] = {}

    def observe(self, surface: str, backend: str, model: str, *, status: int, latency_s: float,
                ttft_s: float | None, input_tokens: int, output_tokens: int, cached_tokens: int,
                cost: float | None) -> None:
        key = (surface, backend, model)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = _Series(len(self._bounds) + 1)
        series.statuses[status] = series.statuses.get(status, 0) + 1
        series.latency.counts[bisect_left(self._bounds, latency_s)] += 1
        series.latency.total += latency_s
        if ttft_s is not None:
            series.ttft.counts[bisect_left(self._bounds, ttft_s)] += 1
            series.ttft.total += ttft_s
        series.input += input_tokens
        series.output += output_tokens
        series.cached += cached_tokens
        if cost:
            series.cost += cost

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("lip_requests", "Requests by surface, backend, model and status",
                                       labels=["surface", "backend", "model", "status"])
        latency = HistogramMetricFamily("lip_request_duration_seconds", "Time from request to last byte",
                                        labels=["surface", "backend", "model"])
        ttft = HistogramMetricFamily("lip_time_to_first_token_seconds",
                                     "Time from request to the first token of a stream", labels=["backend", "model"])
        tokens = CounterMetricFamily("lip_tokens", "Tokens by direction (input, output, cached)",
                                     labels=["backend", "model", "direction"])
        cost = CounterMetricFamily("lip_cost", "Cost from the models' pricing", labels=["backend", "model"])
        by_route: dict[tuple[str, str], list[_Series]] = {}
        for (surface, backend, model), series in sorted(self._series.items()):
            for status, count in sorted(series.statuses.items()):
                requests.add_metric([surface, backend, model, str(status)], count)
            latency.add_metric([surface, backend, model], self._buckets(series.latency), series.latency.total)
            by_route.setdefault((backend, model), []).append(series)
        for (backend, model), group in by_route.items():
            labels = [backend, model]
            ttft.add_metric(labels, self._buckets(*(s.ttft for s in group)), sum(s.ttft.total for s in group))
            for direction in ("input", "output", "cached"):
                tokens.add_metric([*labels, direction], sum(getattr(s, direction) for s in group))
            cost.add_metric(labels, sum(s.cost for s in group))
        yield from (requests, latency, ttft, tokens, cost)

    def _buckets(self, *histograms: _Histogram) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for index, bound in enumerate((*self._bounds, float("inf"))):
            running += sum(h.counts[index] for h in histograms)
            out.append(("+Inf" if bound == float("inf") else repr(bound), running))
        return out


class _Read(Collector):
    def __init__(self, name: str, documentation: str, read: Callable[[], float], counter: bool) -> None:
        self._name, self._doc, self._read, self._counter = name, documentation, read, counter

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily if self._counter else GaugeMetricFamily
        yield family(self._name, self._doc, value=float(self._read()))


OTHER = "other"  # the model label of every model a backend does not list (passthrough names)
Known = Callable[[str, str], bool]  # (backend, model) -> whether the configuration names that model


class Metrics:
    """Label values are bounded: a model a backend does not list is counted as ``other``, so clients
    sending thousands of passthrough names cannot grow ``/metrics`` without end."""

    def __init__(self, known: Known | None = None) -> None:
        self._known = known
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.series = RequestSeries()
        r.register(self.series)
        self.rejections = Counter("lip_limit_rejections", "Requests refused by a limit, by code",
                                  ["code"], registry=r)
        self.retries = Counter("lip_upstream_retries", "Upstream calls retried, by backend",
                               ["backend"], registry=r)
        self.breaker = Gauge("lip_circuit_open", "1 while a backend:model's circuit is open",
                             ["route"], registry=r)
        self._circuit_labels: set[str] = set()
        self.store_up = Gauge("lip_store_up", "1 while a store answers: state (limits, sessions, breakers, stored "
                              "responses) or usage (records)", ["store", "kind"], registry=r)

    def watch(self, name: str, documentation: str, read: Callable[[], float], *, counter: bool = False) -> None:
        """A number read from its owner when /metrics is scraped (no work on the request path)."""
        self.registry.register(_Read(name, documentation, read, counter))

    def model_label(self, backend: str, model: str) -> str:
        return model if self._known is None or self._known(backend, model) else OTHER

    def circuits(self, states: Mapping[str, str]) -> None:
        """Set ``lip_circuit_open`` from the breakers' states now (label -> closed/open/half-open/...):
        a route that is no longer open reads 0, and one label stands for all of a backend's other models."""
        values: dict[str, int] = {}
        for route, state in states.items():
            backend, _, model = route.partition(":")
            label = f"{backend}:{self.model_label(backend, model)}"
            values[label] = max(values.get(label, 0), int(state in ("open", "half-open")))
        for label in self._circuit_labels - values.keys():
            values[label] = 0
        self._circuit_labels.update(values)
        for label, value in values.items():
            self.breaker.labels(label).set(value)

    def render(self) -> bytes:
        return generate_latest(self.registry)
