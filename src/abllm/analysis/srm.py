"""Sample ratio mismatch against the mixture actually served, from the events alone.

Every exposure records what its arm was drawn from (``attrs.assign_weights``: per arm, traffic
× stage or bandit weight, 0 for a paused arm, in the experiment's variant order; see
``abllm.assign.Assignment.weights``). A unit's probability of each arm is its first exposure's
weights normalised, so across a ramp (80/10/10 then 60/20/20), a paused arm or a traffic stage
the expected count of arm j is ``E_j = Σ_units p_uj`` — new units × the weights in force —
computed in the store (``srm_sql``). Units whose first exposure recorded nothing (events from
before this was recorded) expect the fallback weights (the configured split, or the ones passed
to ``analyze``).

The decision uses the always-valid per-arm test (``abllm.stats.sequential_srm``), so the
controller can repeat it at every tick; the Pearson χ² against the same expected counts is
reported too (``chi2_p_value``). The flagged arms are those the mismatch concerns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from abllm.analysis.dialects import Dialect
from abllm.analysis.result import SrmResult
from abllm.analysis.sql import UNKNOWN, Scope, events, exposure_row_key, first_variant
from abllm.events import EventStore
from abllm.stats import srm
from abllm.stats.srm import sequential_srm

WEIGHTS_ATTR = "assign_weights"


def srm_sql(
    d: Dialect, relation: str, scope: Scope, parts: int, holdout: float | None = None
) -> tuple[str, list[str]]:
    """Per arm of ``scope.variants``: Σ p_uj (``e{j}``) and Σ p_uj² (``ee{j}``) over units with
    recorded weights, with ``units`` and ``missing`` (units without).

    ``parts`` is the number of recorded weights per exposure. With ``holdout`` (a fraction) the
    scope is the holdback view's two arms: a unit's chance of being held back is
    ``h / (h + (1 − h)·Σ weights)``, since weights are per unit past the holdout check.
    """
    key = exposure_row_key(d, scope)
    w = f"coalesce({d.attr_text(WEIGHTS_ATTR)}, '')"
    fx = (
        f"SELECT e.unit_id AS u, min({key}) AS k0, {d.first_by(w, key)} AS w "  # noqa: S608
        f"FROM {events(d, relation, scope)} e "
        "WHERE e.type = 'exposure' AND e.variant_id IS NOT NULL GROUP BY e.unit_id"
    )
    q = [f"coalesce({d.split_number('fx.w', j + 1)}, 0.0)" for j in range(parts)]
    total = "(" + " + ".join(q) + ")" if q else "0.0"
    if holdout is None:
        probs = [f"(CASE WHEN {total} > 0 THEN {qj} / {total} END)" for qj in q]
    else:
        h = d.num(holdout)
        held = f"(CASE WHEN {total} > 0 THEN {h} / ({h} + (1.0 - {h}) * {total}) END)"
        probs = [held, f"(1.0 - {held})"]
    cols = [f"{p} AS p{j}" for j, p in enumerate(probs)]
    pu = (
        f"SELECT {', '.join(cols) or '1 AS p_none'} FROM ({fx}) fx "  # noqa: S608
        f"WHERE {first_variant(d, 'fx.k0')} <> {UNKNOWN}"
    )
    aggs = ["count(*) AS units", "sum(CASE WHEN p0 IS NULL THEN 1 ELSE 0 END) AS missing"]
    names = ["units", "missing"]
    for j in range(len(probs)):
        aggs += [f"sum(p{j}) AS e{j}", f"sum(p{j} * p{j}) AS ee{j}"]
        names += [f"e{j}", f"ee{j}"]
    return f"SELECT {', '.join(aggs)} FROM ({pu}) pu", names  # noqa: S608


def _f(x: object) -> float:
    return 0.0 if x is None else float(x)  # type: ignore[arg-type]


def mixture_srm(
    store: EventStore,
    d: Dialect,
    relation: str,
    scope: Scope,
    observed: Mapping[str, int],
    fallback: Sequence[float],
    threshold: float,
    parts: int,
    holdout: float | None = None,
) -> SrmResult:
    """The SRM result of ``scope`` (module docstring); ``fallback`` in variant order."""
    ids = list(scope.variants)
    counts = [float(observed.get(v, 0)) for v in ids]
    total_w = sum(fallback)
    share = [w / total_w if total_w > 0 else 0.0 for w in fallback]
    shown = {v: int(c) for v, c in zip(ids, counts, strict=True)}
    if len(ids) < 2 or sum(counts) == 0:
        return SrmResult(1.0, False, shown, dict(zip(ids, share, strict=True)))
    sql, names = srm_sql(d, relation, scope, parts, holdout)
    row = dict(zip(names, store.query(sql)[0], strict=True))
    missing = _f(row["missing"])
    expected = [_f(row[f"e{j}"]) + missing * share[j] for j in range(len(ids))]
    variance = [
        _f(row[f"e{j}"]) - _f(row[f"ee{j}"]) + missing * share[j] * (1.0 - share[j])
        for j in range(len(ids))
    ]
    n = sum(expected)
    seq = sequential_srm(counts, expected, variance, threshold=threshold)
    chi2 = srm(counts, expected if n > 0 else share, threshold=threshold).p_value
    return SrmResult(
        p_value=seq.p_value,
        flag=bool(seq.flagged),
        observed=shown,
        expected={v: (e / n if n > 0 else 0.0) for v, e in zip(ids, expected, strict=True)},
        chi2_p_value=chi2,
        arms=tuple(ids[i] for i in seq.flagged),
        unrecorded_units=int(missing),
    )
