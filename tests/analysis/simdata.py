"""Synthetic experiments for the analysis tests, built with numpy (no Python loop per event).

``make_events`` returns a ``pyarrow.Table`` in the ``abllm_events`` column order. Units get a
unit-level random effect, several calls each, feedback on some calls, errors on a few (with
feedback on the errored trace), a second exposure to another arm for some (attribution must use
the first) and an event before their exposure (which must not count).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from abllm.events import COLUMNS, WELL_KNOWN_METRICS, EventStore

T0 = datetime(2024, 3, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Arm:
    """Simulation parameters of one variant."""

    weight: float = 1.0
    rating: float = 3.8
    thumbs: float = 0.6
    latency: float = 400.0
    error: float = 0.02
    cost: float = 0.002
    calls: float = 3.0  # mean calls per unit (Poisson + 1)


@dataclass(frozen=True)
class Sim:
    arms: Mapping[str, Arm] = field(
        default_factory=lambda: {"control": Arm(), "treatment": Arm(rating=3.9)}
    )
    units: int = 1500
    seed: int = 7
    days: float = 3.0
    experiment_id: str = "exp"
    switch_share: float = 0.05  # units later exposed to another arm too
    extra_metric: bool = True  # a non-well-known metric "judge" in extra JSON


def make_events(sim: Sim) -> pa.Table:
    rng = np.random.default_rng(sim.seed)
    names = list(sim.arms)
    w = np.array([sim.arms[v].weight for v in names], float)
    arm_idx = rng.choice(len(names), size=sim.units, p=w / w.sum())
    p = {
        k: np.array([getattr(sim.arms[v], k) for v in names])[arm_idx] for k in Arm.__annotations__
    }
    unit_ids = np.array([f"u{i:06d}" for i in range(sim.units)], dtype=object)
    start = rng.uniform(0, sim.days * 86400 * 0.8, sim.units)
    effect = rng.normal(0, 0.6, sim.units)  # unit-level random effect: clustering matters

    cols: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}

    def add(
        kind: str,
        units: np.ndarray,
        ts: np.ndarray,
        variant: np.ndarray,
        trace: np.ndarray | None = None,
        **metrics: np.ndarray,
    ) -> None:
        n = len(units)
        cols["type"].append(np.full(n, kind, dtype=object))
        cols["unit_id"].append(unit_ids[units])
        cols["ts"].append(ts)
        cols["variant_id"].append(variant)
        cols["trace_id"].append(trace if trace is not None else np.full(n, None, dtype=object))
        for m in WELL_KNOWN_METRICS:
            cols[m].append(metrics.get(m, np.full(n, np.nan)))
        cols["extra"].append(metrics.get("extra", np.full(n, None, dtype=object)))

    all_u = np.arange(sim.units)
    variant = np.array(names, dtype=object)[arm_idx]
    add("exposure", all_u, start, variant)
    # A second exposure to another arm later: attribution keeps the first.
    sw = all_u[rng.random(sim.units) < sim.switch_share]
    other = np.array(names, dtype=object)[(arm_idx[sw] + 1) % len(names)]
    add("exposure", sw, start[sw] + 50.0, other)
    # Feedback before the exposure: must not count.
    pre = all_u[rng.random(sim.units) < 0.1]
    add("feedback", pre, start[pre] - 100.0, variant[pre], rating=np.full(len(pre), 1.0))

    k = rng.poisson(p["calls"] - 1) + 1
    cu = np.repeat(all_u, k)
    call_no = np.concatenate([np.arange(n) for n in k])
    cts = start[cu] + 1.0 + call_no * 30.0 + rng.uniform(0, 5, len(cu))
    err = (rng.random(len(cu)) < p["error"][cu]).astype(float)
    lat = p["latency"][cu] * np.exp(0.3 * effect[cu] + rng.normal(0, 0.35, len(cu)))
    out_tok = np.round(rng.gamma(4, 40, len(cu)) * np.exp(0.2 * effect[cu]))
    trace = np.array([f"t{i}" for i in range(len(cu))], dtype=object)
    draws = rng.random(len(cu))
    judge = np.array(
        [None] * len(cu)
        if not sim.extra_metric
        else [f'{{"judge":{x:.6f}}}' if i % 7 else '{"judge":true}' for i, x in enumerate(draws)],
        dtype=object,
    )
    add(
        "llm_call",
        cu,
        cts,
        variant[cu],
        trace,
        latency_ms=np.where(err > 0, 30000.0, lat),
        ttft_ms=np.where(err > 0, np.nan, lat * 0.2),
        input_tokens=np.round(rng.uniform(50, 400, len(cu))),
        output_tokens=np.where(err > 0, np.nan, out_tok),
        cost_usd=np.where(err > 0, np.nan, p["cost"][cu] * (0.5 + out_tok / 160)),
        error=err,
        fallback=np.where(err > 0, 1.0, 0.0),
        schema_valid=np.where(err > 0, np.nan, (rng.random(len(cu)) < 0.97).astype(float)),
        extra=judge,
    )
    fb = rng.random(len(cu)) < 0.6
    fu = cu[fb]
    score = p["rating"][fu] + 0.8 * effect[fu] + rng.normal(0, 0.8, len(fu)) - 1.5 * err[fb]
    add(
        "feedback",
        fu,
        cts[fb] + 10.0,
        variant[fu],
        trace[fb],
        rating=np.clip(np.round(score), 1, 5),
        thumbs_up=(rng.random(len(fu)) < p["thumbs"][fu] - 0.3 * err[fb]).astype(float),
    )
    # Engagement outcome once per unit for half of them.
    ou = all_u[rng.random(sim.units) < 0.5]
    add(
        "outcome",
        ou,
        start[ou] + 600.0,
        variant[ou],
        task_completed=(rng.random(len(ou)) < 0.7).astype(float),
        copied=(rng.random(len(ou)) < 0.4).astype(float),
        edit_distance=rng.poisson(12, len(ou)).astype(float),
    )

    n = sum(len(a) for a in cols["type"])
    data: dict[str, Any] = {}
    data["event_id"] = pa.array([f"00000000-0000-4000-8000-{i:012x}" for i in range(n)])
    secs = np.concatenate(cols["ts"])
    micros = (T0.timestamp() * 1e6 + np.round(secs * 1e6)).astype("int64")
    data["ts"] = pa.array(micros, pa.timestamp("us", tz="UTC"))
    data["type"] = pa.array(np.concatenate(cols["type"]), pa.string())
    data["experiment_id"] = pa.array(np.full(n, sim.experiment_id, dtype=object), pa.string())
    data["experiment_version"] = pa.array(np.ones(n, dtype="int32"))
    for c in ("variant_id", "unit_id", "trace_id", "extra"):
        data[c] = pa.array(np.concatenate(cols[c]), pa.string())
    for m in WELL_KNOWN_METRICS:
        v = np.concatenate(cols[m])
        data[m] = pa.array(v, pa.float64(), mask=np.isnan(v))
    data["attrs"] = pa.array(np.full(n, None, dtype=object), pa.string())
    return pa.table({c: data[c] for c in COLUMNS})


def load(store: EventStore, table: pa.Table) -> EventStore:
    """Append ``table`` to ``store`` (Arrow bulk path when the store has one)."""
    bulk = getattr(store, "append_arrow", None)
    if bulk is not None:
        bulk(table)
        return store
    from abllm.events.schema import row_to_event

    rows = list(zip(*(table.column(c).to_pylist() for c in COLUMNS), strict=True))
    events = [row_to_event(r) for r in rows]
    for i in range(0, len(events), 1000):
        store.append(events[i : i + 1000])
    return store


EXPERIMENT_YAML = """
experiments:
  - id: exp
    variants:
      - {id: control, control: true, llm: {provider: sim, model: m}}
      - {id: treatment, llm: {provider: sim, model: m}}
      - {id: b, llm: {provider: sim, model: m}}
    metrics:
      - {name: rating, type: mean, event: feedback, field: rating, aggregation: mean,
         role: primary, direction: increase}
      - {name: thumbs_up, type: proportion, event: feedback, field: thumbs_up, role: secondary}
      - {name: latency_ms, type: ratio, event: llm_call, field: latency_ms, role: guardrail,
         direction: decrease}          # per-request mean over units, delta method
      - {name: p95_latency_ms, type: quantile, quantile: 0.95, event: llm_call, field: latency_ms}
      - {name: judge, type: mean, event: llm_call, field: judge}
      - {name: last_rating, type: mean, event: feedback, field: rating, aggregation: last}
      - {name: max_rating, type: mean, event: feedback, field: rating, aggregation: max}
      - {name: n_feedback, type: mean, event: feedback, field: rating, aggregation: count}
      - {name: sum_tokens, type: mean, event: llm_call, field: output_tokens, aggregation: sum}
      - {name: tokens_per_ms, type: ratio, event: llm_call, field: output_tokens,
         denominator: latency_ms}
      - {name: copied_any, type: proportion, event: outcome, field: copied, fill_missing: true}
    decision: {mde: 0.03, min_units_per_arm: 200, sequential: false}
    guardrails:
      - {metric: error_rate, max_ratio: 1.1, min_units: 200}
      - {metric: p95_latency_ms, max_ratio: 1.2, min_units: 200}
      - {metric: error_rate, max: 0.05, min_units: 100}
"""


THREE_ARMS = Sim(
    units=900,
    arms={"control": Arm(), "treatment": Arm(rating=4.0, error=0.03), "b": Arm(latency=380.0)},
)


def assert_same(a: Any, b: Any, path: str = "") -> None:
    """Recursive equality with floats to 1e-9 (relative) or 1e-12 (absolute)."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k != "computed_at":
                assert_same(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{path}: {a} != {b}"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"
