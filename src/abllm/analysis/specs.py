"""What to measure: configured metrics and the built-ins, as one internal ``MetricSpec`` shape.

A config ``Metric`` names an event type and a field; the built-ins (error rate, latency, cost, the
engagement signals of seed 000, ...) need a little more, such as "successful calls" as the
denominator of cost per successful interaction. Both become a ``MetricSpec`` whose value and
denominator are ``Value`` expressions that each SQL dialect renders; nothing here runs SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from abllm.config import Experiment, Metric
from abllm.events import WELL_KNOWN_METRICS

Kind = Literal["mean", "proportion", "ratio", "quantile"]
Aggregation = Literal["sum", "mean", "count", "max", "last"]
Direction = Literal["increase", "decrease"]
Role = Literal["primary", "secondary", "guardrail"]

#: Metric columns of ``abllm_events``; a field outside this set is read from the ``extra`` JSON.
WELL_KNOWN_FIELDS: frozenset[str] = frozenset(WELL_KNOWN_METRICS)


class Derived(StrEnum):
    """Values computed from several columns of one event (rendered by each dialect)."""

    errored = "errored"  # 1.0 when the llm_call failed, else 0.0 (a missing flag is no error)
    succeeded = "succeeded"  # 1.0 - errored
    schema_failed = "schema_failed"  # 1.0 - schema_valid; NULL when the check did not run


@dataclass(frozen=True)
class Value:
    """A per-event number: a table column, a key of the ``extra`` JSON, or a derived value."""

    name: str
    source: Literal["column", "extra", "derived"]

    @staticmethod
    def of_field(field: str) -> Value:
        """The column when ``field`` is well known, else the ``extra`` JSON key."""
        return Value(field, "column" if field in WELL_KNOWN_FIELDS else "extra")


@dataclass(frozen=True)
class MetricSpec:
    """One metric as the SQL compiler sees it.

    ``event`` None means any non-exposure event carrying ``value`` (the engagement signals may
    come with feedback or outcome events). ``exclude_errors`` drops errored ``llm_call`` events
    and feedback/outcome events whose ``trace_id`` belongs to an errored call (seed 000: "exclude
    errored requests from quality analysis"). ``fill_missing`` counts exposed units without data
    as 0 (a failure for proportions) instead of leaving them out.
    """

    name: str
    kind: Kind
    value: Value
    event: str | None = None
    aggregation: Aggregation = "mean"
    denominator: Value | None = None
    quantile: float | None = None
    direction: Direction = "increase"
    role: Role = "secondary"
    exclude_errors: bool = True
    fill_missing: bool = False
    builtin: bool = False
    label: str = ""

    @property
    def title(self) -> str:
        """Human label for tables."""
        return self.label or self.name

    def signature(self) -> tuple[object, ...]:
        """What the metric computes, regardless of its name (to skip duplicate built-ins)."""
        return (
            self.kind,
            self.value,
            self.event,
            self.aggregation if self.kind == "mean" else None,
            self.denominator,
            self.quantile,
            self.exclude_errors,
        )


def compile_metric(metric: Metric) -> MetricSpec:
    """Turn a configured ``Metric`` into a spec; errors are excluded unless the field is ``error``.

    ``exclude_errors`` left unset means "yes" for every metric except one on the error flag
    itself, which would otherwise always read 0.
    """
    exclude = metric.exclude_errors
    if exclude is None:
        exclude = metric.field != "error"
    return MetricSpec(
        name=metric.name,
        kind=metric.type,
        value=Value.of_field(metric.field),
        event=metric.event,
        aggregation=metric.aggregation,
        denominator=Value.of_field(metric.denominator) if metric.denominator else None,
        quantile=metric.quantile,
        direction=metric.direction,
        role=metric.role,
        exclude_errors=exclude,
        fill_missing=metric.fill_missing,
    )


def _col(name: str) -> Value:
    return Value(name, "column")


def _quantiles(field: str, short: str, label: str) -> list[MetricSpec]:
    return [
        MetricSpec(
            f"p{pct}_{short}_ms",
            "quantile",
            _col(field),
            "llm_call",
            quantile=pct / 100,
            direction="decrease",
            builtin=True,
            label=f"{label} p{pct}",
        )
        for pct in (50, 95, 99)
    ]


def builtin_specs() -> list[MetricSpec]:
    """Metrics every experiment gets without configuration (reported only when data has them).

    Per-request figures are ratio metrics over units (delta method), per the design: error rate,
    latency, TTFT, tokens, cost per request, cost per successful interaction (all calls' cost
    over successful calls), fallback and schema-failure rates. Engagement signals (seed 000) are
    per-unit: task completed, copied, retried and abandoned are proportions of units, edit
    distance a per-unit mean. Rating and thumbs up are reported when feedback carries them.
    """
    llm = "llm_call"
    specs = [
        MetricSpec(
            "error_rate",
            "ratio",
            Value(Derived.errored, "derived"),
            llm,
            direction="decrease",
            role="guardrail",
            exclude_errors=False,
            builtin=True,
            label="error rate",
        ),
        MetricSpec(
            "latency_ms", "ratio", _col("latency_ms"), llm, direction="decrease", builtin=True
        ),
        *_quantiles("latency_ms", "latency", "latency"),
        MetricSpec("ttft_ms", "ratio", _col("ttft_ms"), llm, direction="decrease", builtin=True),
        *_quantiles("ttft_ms", "ttft", "TTFT"),
        MetricSpec(
            "input_tokens", "ratio", _col("input_tokens"), llm, direction="decrease", builtin=True
        ),
        MetricSpec(
            "output_tokens", "ratio", _col("output_tokens"), llm, direction="decrease", builtin=True
        ),
        MetricSpec(
            "cost_per_request",
            "ratio",
            _col("cost_usd"),
            llm,
            direction="decrease",
            exclude_errors=False,
            builtin=True,
            label="cost/query",
        ),
        MetricSpec(
            "cost_per_success",
            "ratio",
            _col("cost_usd"),
            llm,
            denominator=Value(Derived.succeeded, "derived"),
            direction="decrease",
            exclude_errors=False,
            builtin=True,
            label="cost/success",
        ),
        MetricSpec(
            "fallback_rate",
            "ratio",
            _col("fallback"),
            llm,
            direction="decrease",
            exclude_errors=False,
            builtin=True,
            label="fallback rate",
        ),
        MetricSpec(
            "schema_failure_rate",
            "ratio",
            Value(Derived.schema_failed, "derived"),
            llm,
            direction="decrease",
            exclude_errors=False,
            builtin=True,
            label="schema failures",
        ),
        MetricSpec("rating", "mean", _col("rating"), "feedback", builtin=True),
        MetricSpec("thumbs_up", "proportion", _col("thumbs_up"), "feedback", builtin=True),
        MetricSpec("task_completed", "proportion", _col("task_completed"), builtin=True),
        MetricSpec(
            "edit_distance", "mean", _col("edit_distance"), direction="decrease", builtin=True
        ),
        MetricSpec("copied", "proportion", _col("copied"), builtin=True),
        MetricSpec("retried", "proportion", _col("retried"), direction="decrease", builtin=True),
        MetricSpec(
            "abandoned", "proportion", _col("abandoned"), direction="decrease", builtin=True
        ),
    ]
    return specs


def experiment_specs(experiment: Experiment, builtins: bool = True) -> list[MetricSpec]:
    """Configured metrics first (in config order), then the built-ins they do not already cover.

    A built-in is skipped when a configured metric has its name or computes the same thing.
    """
    configured = [compile_metric(m) for m in experiment.metrics]
    if not builtins:
        return configured
    names = {s.name for s in configured}
    signatures = {s.signature() for s in configured}
    extra = [s for s in builtin_specs() if s.name not in names and s.signature() not in signatures]
    return [*configured, *extra]


def find_spec(specs: Sequence[MetricSpec], name: str) -> MetricSpec | None:
    """The spec called ``name``, if any."""
    return next((s for s in specs if s.name == name), None)
