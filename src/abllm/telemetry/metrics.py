"""Prometheus metrics per experiment and variant, served by ``GET /metrics``.

Each :class:`GatewayMetrics` owns its own ``CollectorRegistry`` so several apps (tests, the demo)
can live in one process without "Duplicated timeseries" errors. Label children are cached: a
``labels()`` lookup costs a dict hit plus a lock, which matters on the gateway's hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE_LATEST",
    "CallObservation",
    "EventGauges",
    "ExperimentGauges",
    "GatewayMetrics",
    "watch_experiments",
]

# Seconds; LLM calls span from a few ms (cache, sim) to a minute (long generations).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True, slots=True)
class CallObservation:
    """What one gateway call contributes to the metrics."""

    experiment: str
    variant: str
    latency_s: float
    ttft_s: float | None
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    error_type: str | None
    fallback: bool


@dataclass(frozen=True, slots=True)
class EventGauges:
    """The event pipeline as Prometheus sees it (read at scrape time)."""

    store_up: bool
    buffered: int
    spool_bytes: int
    spool_limit_bytes: int
    replay_lag_s: float
    dead_letters: int
    #: Events since start by where they went: stored, spooled, replayed, rejected, dead_lettered.
    totals: Mapping[str, int]


class GatewayMetrics:
    """Counters and histograms labelled by ``experiment`` and ``variant``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        ev = ("experiment", "variant")
        self.requests = Counter(
            "abllm_requests", "Gateway requests served", (*ev, "outcome"), registry=self.registry
        )
        self.errors = Counter(
            "abllm_llm_errors",
            "Failed provider calls by error type (before any fallback)",
            (*ev, "error_type"),
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "abllm_fallbacks", "Answers served by the control fallback", ev, registry=self.registry
        )
        self.tokens = Counter(
            "abllm_tokens", "Tokens used", (*ev, "direction"), registry=self.registry
        )
        self.cost = Counter("abllm_cost_usd", "Estimated cost in USD", ev, registry=self.registry)
        self.feedback = Counter(
            "abllm_feedback", "Feedback events recorded", ev, registry=self.registry
        )
        self.latency = Histogram(
            "abllm_request_latency_seconds",
            "Gateway request latency, provider call included",
            ev,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "abllm_ttft_seconds",
            "Time to the first content chunk of streamed answers",
            ev,
            buckets=_TTFT_BUCKETS,
            registry=self.registry,
        )
        self.dropped_events = Counter(
            "abllm_events_dropped",
            "Events dropped because the event pipeline was full (back-pressure)",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str], _Children] = {}

    def watch_breakers(self, states: Callable[[], Mapping[str, str]]) -> None:
        """Export ``abllm_breaker_open{breaker}`` (1 open, 0.5 half-open, 0 closed) at scrape."""
        self.registry.register(_BreakerCollector(states))

    def watch_events(self, read: Callable[[], EventGauges]) -> None:
        """Export the event pipeline's gauges (spool depth, dead letters, store up, replay lag)
        and its counters, read when Prometheus scrapes."""
        self.registry.register(_EventCollector(read))

    def _for(self, experiment: str, variant: str) -> _Children:
        key = (experiment, variant)
        children = self._children.get(key)
        if children is None:
            children = _Children(self, experiment, variant)
            self._children[key] = children
        return children

    def observe(self, obs: CallObservation) -> None:
        """Record one served request."""
        c = self._for(obs.experiment, obs.variant)
        if obs.fallback:
            c.fallback_ok.inc()
            c.fallbacks.inc()
        elif obs.error_type is not None:
            c.failed.inc()
        else:
            c.ok.inc()
        if obs.error_type is not None:
            self.errors.labels(obs.experiment, obs.variant, obs.error_type).inc()
        c.latency.observe(obs.latency_s)
        if obs.ttft_s is not None:
            c.ttft.observe(obs.ttft_s)
        if obs.input_tokens:
            c.tokens_in.inc(obs.input_tokens)
        if obs.output_tokens:
            c.tokens_out.inc(obs.output_tokens)
        if obs.cost_usd:
            c.cost.inc(obs.cost_usd)

    def observe_feedback(self, experiment: str, variant: str) -> None:
        """Count one recorded feedback event."""
        self.feedback.labels(experiment, variant).inc()

    def render(self) -> bytes:
        """The registry in Prometheus' text exposition format."""
        return generate_latest(self.registry)


_BREAKER_VALUES = {"open": 1.0, "half_open": 0.5, "closed": 0.0}


class _BreakerCollector(Collector):
    """Reads breaker states when Prometheus scrapes, so the hot path pays nothing for it."""

    def __init__(self, states: Callable[[], Mapping[str, str]]) -> None:
        self.states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "abllm_breaker_open",
            "Circuit breaker per provider and model: 1 open, 0.5 half-open, 0 closed",
            labels=["breaker"],
        )
        for name, state in sorted(self.states().items()):
            gauge.add_metric([name], _BREAKER_VALUES.get(state, 0.0))
        yield gauge


class _EventCollector(Collector):
    """Reads the pipeline's counters at scrape time; nothing is updated per event."""

    def __init__(self, read: Callable[[], EventGauges]) -> None:
        self.read = read

    def describe(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        """The metric names without reading the pipeline (the registry calls this once, when
        the collector is registered, to check for duplicate names)."""
        return self._families(None)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        return self._families(self.read())

    def _families(self, g: EventGauges | None) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        if g is None:
            g = EventGauges(False, 0, 0, 0, 0.0, 0, {})
        gauges = (
            (
                "abllm_event_store_up",
                "1 when the event store accepts writes, 0 while spooling",
                float(g.store_up),
            ),
            ("abllm_event_buffered", "Events waiting in memory for the flusher", g.buffered),
            (
                "abllm_event_spool_bytes",
                "Bytes of events waiting in the spool for the store",
                g.spool_bytes,
            ),
            (
                "abllm_event_spool_limit_bytes",
                "Spool size at which ingestion answers 429",
                g.spool_limit_bytes,
            ),
            (
                "abllm_event_replay_lag_seconds",
                "Age of the oldest spooled batch still waiting for the store (0 when none)",
                g.replay_lag_s,
            ),
            (
                "abllm_event_dead_letters",
                "Events in the dead-letter file (refused by the store)",
                g.dead_letters,
            ),
        )
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=float(value))
        counter = CounterMetricFamily(
            "abllm_events", "Events since start by outcome", labels=["outcome"]
        )
        for outcome, n in sorted(g.totals.items()):
            counter.add_metric([outcome], float(n))
        yield counter


class _Children:
    """Pre-resolved label children for one (experiment, variant)."""

    __slots__ = (
        "cost",
        "failed",
        "fallback_ok",
        "fallbacks",
        "latency",
        "ok",
        "tokens_in",
        "tokens_out",
        "ttft",
    )

    def __init__(self, m: GatewayMetrics, experiment: str, variant: str) -> None:
        self.ok = m.requests.labels(experiment, variant, "ok")
        self.failed = m.requests.labels(experiment, variant, "error")
        self.fallback_ok = m.requests.labels(experiment, variant, "fallback")
        self.fallbacks = m.fallbacks.labels(experiment, variant)
        self.tokens_in = m.tokens.labels(experiment, variant, "input")
        self.tokens_out = m.tokens.labels(experiment, variant, "output")
        self.cost = m.cost.labels(experiment, variant)
        self.latency = m.latency.labels(experiment, variant)
        self.ttft = m.ttft.labels(experiment, variant)


# -- runtime state gauges (kill, pause, stage, guardrails) -------------------------------------
# Read from the runtime state the gateway already holds, when Prometheus scrapes: a kill or a
# guardrail move shows on the next scrape without any work on the request path.


@dataclass(frozen=True, slots=True)
class ExperimentGauges:
    """One experiment's runtime state as the gauges show it (``stage`` None: no rollout plan or
    not started; ``traffic`` None: the YAML's)."""

    experiment: str
    killed: bool
    paused: bool
    stage: int | None
    traffic: float | None
    variants: tuple[str, ...]
    paused_variants: frozenset[str]
    held: bool


def watch_experiments(
    metrics: GatewayMetrics, states: Callable[[], Iterable[ExperimentGauges]]
) -> None:
    """Export the kill/pause/stage/guardrail gauges of every experiment at scrape time."""
    metrics.registry.register(_StateCollector(states))


class _StateCollector(Collector):
    def __init__(self, states: Callable[[], Iterable[ExperimentGauges]]) -> None:
        self.states = states

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The names without reading the state (the registry asks once, at registration)."""
        return self._families(())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return self._families(self.states())

    def _families(self, states: Iterable[ExperimentGauges]) -> Iterator[GaugeMetricFamily]:
        e = ["experiment"]
        killed = GaugeMetricFamily(
            "abllm_experiment_killed", "1 while the kill switch serves control to all", labels=e
        )
        paused = GaugeMetricFamily(
            "abllm_experiment_paused", "1 while the experiment is paused (control to all)", labels=e
        )
        stage = GaugeMetricFamily(
            "abllm_rollout_stage", "Index of the current rollout stage (0 = first)", labels=e
        )
        traffic = GaugeMetricFamily(
            "abllm_rollout_traffic_percent", "Share of units in the experiment now", labels=e
        )
        held = GaugeMetricFamily(
            "abllm_guardrail_held",
            "1 while a guardrail rollback holds the rollout (advances only by hand)",
            labels=e,
        )
        arm_paused = GaugeMetricFamily(
            "abllm_guardrail_variant_paused",
            "1 while a guardrail keeps this arm paused (its units get control)",
            labels=[*e, "variant"],
        )
        for g in sorted(states, key=lambda g: g.experiment):
            killed.add_metric([g.experiment], float(g.killed))
            paused.add_metric([g.experiment], float(g.paused))
            held.add_metric([g.experiment], float(g.held))
            if g.stage is not None:
                stage.add_metric([g.experiment], float(g.stage))
            if g.traffic is not None:
                traffic.add_metric([g.experiment], g.traffic)
            for variant in g.variants:
                arm_paused.add_metric([g.experiment, variant], float(variant in g.paused_variants))
        yield from (killed, paused, stage, traffic, held, arm_paused)
