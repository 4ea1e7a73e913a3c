"""``analyze``: one experiment's events in the store -> an ``ExperimentResult``.

Steps: a cheap probe finds which built-in metrics have data and the exposure time span; the
summary SQL (and the quantile SQL when needed) runs in the store; the stats engine compares
every treatment with control; under ``decision.sequential`` the primary's confidence sequences
are intersected over the daily looks (``abllm.analysis.history``); SRM, guardrails and the
decision rule complete the result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from abllm.analysis.adaptive import adaptive_metric, not_applicable
from abllm.analysis.collect import Collected, collect
from abllm.analysis.compute import metric_results, required_units, tuning_units
from abllm.analysis.decide import DecisionInput, recommend
from abllm.analysis.dialects import Dialect, dialect_for
from abllm.analysis.guardrails import evaluate_guardrails
from abllm.analysis.history import running_primary
from abllm.analysis.holdback import HoldbackView, holdback_experiment, holdback_weights
from abllm.analysis.result import ExperimentResult, MetricResult, SrmResult, VariantResult
from abllm.analysis.specs import Derived, MetricSpec, Value, experiment_specs
from abllm.analysis.sql import Scope, probe_sql
from abllm.analysis.srm import mixture_srm
from abllm.config import Experiment
from abllm.events import EventStore


@dataclass(frozen=True)
class Probe:
    """What the store holds for the experiment: columns with data and the time span."""

    columns: frozenset[str]
    first_exposure: datetime | None
    last_event: datetime | None


def to_datetime(value: Any) -> datetime | None:
    """A timestamp from any driver (datetime, ISO text or epoch seconds) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        out = value
    elif isinstance(value, int | float):
        out = datetime.fromtimestamp(float(value), UTC)
    else:
        out = datetime.fromisoformat(str(value))
    return out.replace(tzinfo=UTC) if out.tzinfo is None else out.astimezone(UTC)


def probe(store: EventStore, scope: Scope, d: Dialect, relation: str) -> Probe:
    """Which well-known columns have data (so empty built-ins are skipped) and the span."""
    sql, names = probe_sql(d, relation, scope)
    row = dict(zip(names, store.query(sql)[0], strict=True))
    cols = frozenset(k[2:] for k, v in row.items() if k.startswith("n_") and v)
    return Probe(cols, to_datetime(row["t_first"]), to_datetime(row["t_last"]))


def _uses(value: Value) -> set[str]:
    if value.source == "column":
        return {value.name}
    if value.source == "derived":
        return {"schema_valid"} if value.name == Derived.schema_failed else {"llm_call"}
    return set()


def _present(spec: MetricSpec, columns: frozenset[str]) -> bool:
    needed = _uses(spec.value) | (_uses(spec.denominator) if spec.denominator else set())
    return needed <= columns


def analysis_scope(experiment: Experiment, now: datetime) -> Scope:
    """Events of this experiment version from its start to ``now`` (or its end)."""
    until = min(now, experiment.end) if experiment.end else now
    variants = tuple(v.id for v in experiment.variants)
    return Scope(experiment.id, experiment.version, experiment.start, until, variants)


def choose_specs(experiment: Experiment, present: frozenset[str] | None) -> list[MetricSpec]:
    """Configured metrics, then built-ins whose columns have data (all when unknown)."""
    specs = experiment_specs(experiment)
    return [s for s in specs if not s.builtin or present is None or _present(s, present)]


def primary_metric(experiment: Experiment) -> str | None:
    """The metric marked ``role: primary``, else the first configured one."""
    for m in experiment.metrics:
        if m.role == "primary":
            return m.name
    return experiment.metrics[0].name if experiment.metrics else None


def analyze(
    experiment: Experiment,
    store: EventStore,
    now: datetime | None = None,
    *,
    weights: Mapping[str, float] | None = None,
    builtins: bool = True,
) -> ExperimentResult:
    """Analyse ``experiment`` from the events in ``store`` (all computed inside the store).

    The SRM check expects the mixture each exposure recorded (``abllm.analysis.srm``);
    ``weights`` (e.g. a rollout stage's) replaces the configured split only for units whose
    exposure recorded none; ``builtins=False`` reports configured metrics only. With
    ``holdout`` set, the result carries a ``holdback`` report: held-back units against
    everyone exposed.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    d = dialect_for(store.dialect)
    relation = getattr(store, "events_relation", "abllm_events")
    scope = analysis_scope(experiment, now)
    found = probe(store, scope, d, relation)
    specs = choose_specs(experiment, found.columns)
    if not builtins:
        specs = [s for s in specs if not s.builtin]
    collected = collect(store, scope, specs, dialect=d)
    srm_res = mixture_srm(
        store,
        d,
        relation,
        scope,
        collected.units,
        fallback_weights(experiment, weights),
        experiment.decision.srm_p_value,
        parts=len(experiment.variants),
    )
    primary = primary_metric(experiment)
    pspec = next((s for s in specs if s.name == primary), None)

    def history(current: MetricResult, tuning: float | None) -> MetricResult:
        if pspec is None or experiment.bandit is not None:
            return current
        return running_primary(
            store, d, scope, pspec, current, found.first_exposure,
            experiment.control.id, experiment.decision, tuning,
        )  # fmt: skip

    def adaptive(results: dict[str, MetricResult]) -> dict[str, MetricResult]:
        return adaptive_results(store, d, relation, scope, experiment, specs, results, warnings)

    warnings: list[str] = []
    refine = adaptive if experiment.bandit is not None else None
    result = build_result(experiment, collected, now, found, srm_res, history, refine)
    if warnings:
        result = replace(result, warnings=[*result.warnings, *warnings])
    if experiment.holdout > 0:
        held = _holdback(experiment, store, now, builtins)
        result = replace(result, holdback=held)
    return result


def _holdback(
    experiment: Experiment, store: EventStore, now: datetime, builtins: bool
) -> ExperimentResult:
    """The holdback report: the whole analysis on the relabelled two-arm view."""
    view = HoldbackView(store)
    exp = holdback_experiment(experiment)
    d = dialect_for(view.dialect)
    scope = analysis_scope(exp, now)
    found = probe(store=view, scope=scope, d=d, relation=view.events_relation)
    specs = choose_specs(exp, found.columns)
    if not builtins:
        specs = [s for s in specs if not s.builtin]
    collected = collect(view, scope, specs, dialect=d)
    hb = holdback_weights(experiment)
    srm_res = mixture_srm(
        view,
        d,
        view.events_relation,
        scope,
        collected.units,
        [hb[v.id] for v in exp.variants],
        exp.decision.srm_p_value,
        parts=len(experiment.variants),
        holdout=experiment.holdout / 100,
    )
    return build_result(exp, collected, now, found, srm_res)


def fallback_weights(experiment: Experiment, weights: Mapping[str, float] | None) -> list[float]:
    """Expected split of units whose exposure recorded no weights: ``weights`` or the config."""
    if weights:
        return [float(weights.get(v.id, 0.0)) for v in experiment.variants]
    return list(experiment.weights)


def build_result(
    experiment: Experiment,
    collected: Collected,
    now: datetime,
    found: Probe | None,
    srm_res: SrmResult,
    history: Callable[[MetricResult, float | None], MetricResult] | None = None,
    refine: Callable[[dict[str, MetricResult]], dict[str, MetricResult]] | None = None,
) -> ExperimentResult:
    """Stats, guardrails and the recommendation from the collected summaries and the SRM.

    A mismatch that concerns only some treatments takes them out of the decision (with a
    warning); one that concerns the control, or every treatment, makes the result INVALID.
    """
    rule = experiment.decision
    ids = [v.id for v in experiment.variants]
    control = experiment.control.id
    treatments = [v for v in ids if v != control]
    units = collected.units
    warnings = [
        f"{units[v]:,} units were first exposed to a variant that is not in the config"
        for v in sorted(set(units) - set(ids))
    ]
    total = sum(units.get(v, 0) for v in ids)
    excluded = [v for v in treatments if v in srm_res.arms and control not in srm_res.arms]
    if excluded and len(excluded) < len(treatments):
        warnings.append(
            f"sample ratio mismatch in {', '.join(excluded)} (p={srm_res.p_value:.3g}): "
            "left out of the decision"
        )
    variants = {
        v: VariantResult(
            variant_id=v,
            units=units.get(v, 0),
            share=units.get(v, 0) / total if total else 0.0,
            expected_share=srm_res.expected.get(v, 0.0),
            control=v == control,
        )
        for v in ids
    }
    primary = primary_metric(experiment)
    with_data = [m for m in collected.metrics if m.has_data or not m.spec.builtin]
    by_name = {m.spec.name: m for m in with_data}
    primary_data = by_name.get(primary) if primary else None
    required = required_units(
        rule, primary_data.arms.get(control) if primary_data else None, len(ids)
    )
    tuning = tuning_units(rule, required, len(ids))
    results = metric_results(with_data, control, treatments, rule, primary, tuning)
    if history is not None and primary in results:
        # Always-valid: the primary's sequences intersected over the daily looks.
        results[primary] = history(results[primary], tuning)
    if refine is not None:
        results = refine(results)
    guards, more = evaluate_guardrails(
        experiment.guardrails, by_name, results, control, treatments, rule
    )
    warnings += more
    start = found.first_exposure if found else None
    elapsed = (now - start).total_seconds() / 86400 if start else None
    decided = [v for v in treatments if v not in excluded] or treatments
    rec = recommend(
        DecisionInput(
            rule=rule,
            control=control,
            treatments=decided,
            srm=srm_res,
            guardrails=guards,
            primary=results.get(primary) if primary else None,
            metrics=results,
            required_units=required,
            elapsed_days=elapsed,
        )
    )
    return ExperimentResult(
        experiment_id=experiment.id,
        version=experiment.version,
        control=control,
        computed_at=now,
        alpha=rule.alpha,
        variants=variants,
        metrics=results,
        srm=srm_res,
        guardrails=guards,
        recommendation=rec,
        primary=primary,
        first_exposure=start,
        last_event=found.last_event if found else None,
        warnings=warnings,
    )


def adaptive_results(
    store: EventStore,
    d: Dialect,
    relation: str,
    scope: Scope,
    experiment: Experiment,
    specs: list[MetricSpec],
    results: dict[str, MetricResult],
    warnings: list[str],
) -> dict[str, MetricResult]:
    """Bandit experiments: IPW estimates for configured mean/proportion metrics, and every
    fixed-split p-value marked not applicable (``abllm.analysis.adaptive``)."""
    control = experiment.control.id
    treatments = [v.id for v in experiment.variants if v.id != control]
    out: dict[str, MetricResult] = {}
    missing = 0
    for name, metric in results.items():
        spec = next((s for s in specs if s.name == name), None)
        if spec is not None and not spec.builtin and spec.kind in ("mean", "proportion"):
            alpha = experiment.decision.alpha
            out[name], left_out = adaptive_metric(
                store, d, relation, scope, spec, metric, control, treatments, alpha
            )
            missing = max(missing, left_out)
        else:
            out[name] = not_applicable(metric)
    warnings.append(
        "adaptive allocation (bandit): arm estimates of configured metrics are inverse-"
        "propensity weighted; fixed-split p-values are not applicable"
    )
    if missing:
        warnings.append(
            f"{missing:,} units recorded no assignment probability: left out of IPW "
            "(plain estimates when no unit recorded one)"
        )
    return out
