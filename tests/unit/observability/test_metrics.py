"""The per-request series, as Prometheus scrapes them (exposition format parsed back)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from lip.observability.metrics import Metrics


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_requests_latency_ttft_tokens_and_cost_are_exposed_with_their_labels() -> None:
    metrics = Metrics()
    series = metrics.series
    series.observe("openai", "b", "m", status=200, latency_s=0.003, ttft_s=0.002, input_tokens=10,
                   output_tokens=5, cached_tokens=1, cost=0.5)
    series.observe("openai", "b", "m", status=200, latency_s=0.2, ttft_s=None, input_tokens=1,
                   output_tokens=1, cached_tokens=0, cost=None)
    series.observe("anthropic", "b", "m", status=429, latency_s=200.0, ttft_s=0.05, input_tokens=0,
                   output_tokens=0, cached_tokens=0, cost=0.25)
    got = samples(metrics)

    def at(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted({"backend": "b", "model": "m", **labels}.items())))]

    assert at("lip_requests_total", status="200", surface="openai") == 2
    assert at("lip_requests_total", status="429", surface="anthropic") == 1
    assert at("lip_request_duration_seconds_bucket", le="0.005", surface="openai") == 1
    assert at("lip_request_duration_seconds_bucket", le="0.25", surface="openai") == 2
    assert at("lip_request_duration_seconds_count", surface="openai") == 2
    assert abs(at("lip_request_duration_seconds_sum", surface="openai") - 0.203) < 1e-9
    assert at("lip_request_duration_seconds_bucket", le="120.0", surface="anthropic") == 0  # 200 s: only +Inf
    assert at("lip_request_duration_seconds_bucket", le="+Inf", surface="anthropic") == 1
    # time to first token, tokens and cost are by route, summed over surfaces
    assert at("lip_time_to_first_token_seconds_count") == 2
    assert at("lip_time_to_first_token_seconds_bucket", le="0.005") == 1
    assert at("lip_time_to_first_token_seconds_bucket", le="0.05") == 2
    assert at("lip_tokens_total", direction="input") == 11
    assert at("lip_tokens_total", direction="output") == 6
    assert at("lip_tokens_total", direction="cached") == 1
    assert at("lip_cost_total") == 0.75


def test_rare_series_still_use_prometheus_client_types() -> None:
    metrics = Metrics()
    metrics.rejections.labels("rate_limit_exceeded").inc()
    metrics.retries.labels("b").inc(2)
    got = samples(metrics)
    assert got[("lip_limit_rejections_total", (("code", "rate_limit_exceeded"),))] == 1
    assert got[("lip_upstream_retries_total", (("backend", "b"),))] == 2
