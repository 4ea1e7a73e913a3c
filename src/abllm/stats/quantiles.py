"""Quantile metrics (p50/p95/p99 latency, TTFT) with unit-clustered standard errors.

Method (what the analysis layer must supply, per arm, all computable in SQL):

1. ``estimate``: the sample quantile q̂ of the event values at ``level`` (e.g. 0.95), and
   ``n_events``.
2. ``lower`` / ``upper``: sample quantiles of the same events at the levels returned by
   :func:`quantile_bound_levels` (``level ∓ 1.96·√(level(1−level)/n)``), with the same quantile
   function as the estimate (``quantile_cont``/``quantileExact``/``percentile_cont``). If the
   event count used there is not exactly ``n_events`` (e.g. taken from an earlier count), pass
   it as ``n_star``.
3. ``cluster``: per unit *i*, ``b_i`` = events with value ≤ q̂ and ``m_i`` = events, summarised
   as ``RatioStats(n=units, sum_num=Σb, sum_den=Σm, sum_num_sq=Σb², sum_den_sq=Σm²,
   sum_num_den=Σb·m)``. Omit it only when every unit has exactly one event.

Why this is valid when a unit sends many requests: F̂(q̂) = Σb/Σm is a ratio metric over
units, so its variance under clustering follows from the delta method (Deng, Knoblich & Lu
2018, "Applying the Delta Method in Metric Analytics", KDD, §4 "quantile metrics"). The
density at the quantile is estimated from the spacing of the i.i.d. order-statistic interval
(Woodruff 1952; Price & Bonett 2001), giving
``se(q̂) = (upper − lower)/(2·1.96) · √(n_star/n_events) · √(Var_cluster(F̂) / (p(1−p)/n))``
— the i.i.d. outer-CI standard error inflated by the design effect. This is GrowthBook's
``QuantileClusteredStatistic`` without its extra (n−1)/n factor. Differences between arms are
normal (independent arms); the relative lift uses Fieller's interval like every other metric.
Quantile summaries do not add: recompute them for merged data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from abllm.errors import ValidationError
from abllm.stats._estimates import Estimates, first_error
from abllm.stats._types import FloatArray, Value, arr
from abllm.stats.results import ArmColumns, ErrorCode
from abllm.stats.summaries import RatioStats, ratio_variance

#: z used to build the ``lower``/``upper`` levels (fixed: it cancels in the standard error).
LEVEL_Z = float(special.ndtri(0.975))


def quantile_bound_levels(level: Value, n_events: Value) -> tuple[FloatArray, FloatArray]:
    """Levels at which the store computes ``lower`` and ``upper`` (clipped to [0, 1])."""
    p, n = arr(level), arr(n_events)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = LEVEL_Z * np.sqrt(p * (1.0 - p) / n)
    return np.clip(p - half, 0.0, 1.0), np.clip(p + half, 0.0, 1.0)


@dataclass(frozen=True)
class QuantileStats:
    """One arm's quantile inputs; see the module docstring for how to compute each field."""

    level: Value
    n_events: Value
    estimate: Value
    lower: Value
    upper: Value
    cluster: RatioStats | None = None
    n_star: Value | None = None

    def __post_init__(self) -> None:
        p = arr(self.level)
        if not np.all((p > 0) & (p < 1)):
            raise ValidationError(f"QuantileStats.level must be in (0, 1), got {self.level}")

    @classmethod
    def from_events(
        cls,
        values: FloatArray | Sequence[float],
        units: npt.ArrayLike | None,
        level: float,
    ) -> QuantileStats:
        """Reference implementation on raw events (tests, tiny data; SQL does this at scale).

        ``units`` labels each event's unit (None: one unit per event). Uses numpy's default
        (linear) quantile, like ``quantile_cont``.
        """
        x = arr(values)  # type: ignore[arg-type]
        n = float(x.size)
        lo_level, hi_level = quantile_bound_levels(level, n)
        estimate, lower, upper = np.quantile(x, [level, float(lo_level), float(hi_level)])
        cluster = None
        if units is not None:
            codes = np.unique(np.asarray(units), return_inverse=True)[1].reshape(-1)
            below = np.bincount(codes, weights=(x <= estimate).astype(float)).astype(np.float64)
            events = np.bincount(codes).astype(np.float64)
            cluster = RatioStats.from_values(below, events)
        return cls(level, n, float(estimate), float(lower), float(upper), cluster)

    @classmethod
    def stack(cls, items: Sequence[QuantileStats]) -> QuantileStats:
        """Array-backed summary of many arms/segments (all with or all without clusters)."""
        if not items:
            raise ValidationError("QuantileStats.stack needs at least one summary")
        clustered = {s.cluster is not None for s in items}
        if len(clustered) != 1:
            raise ValidationError("QuantileStats.stack: mix of clustered and unclustered arms")

        def col(name: str) -> FloatArray:
            return np.array([getattr(s, name) for s in items], dtype=np.float64)

        n_star = np.array(
            [s.n_events if s.n_star is None else s.n_star for s in items], dtype=np.float64
        )
        cluster = None
        if clustered == {True}:
            cluster = RatioStats.stack([s.cluster for s in items if s.cluster is not None])
        return cls(
            level=col("level"),
            n_events=col("n_events"),
            estimate=col("estimate"),
            lower=col("lower"),
            upper=col("upper"),
            cluster=cluster,
            n_star=n_star,
        )

    @property
    def variance(self) -> FloatArray:
        """Squared standard error of ``estimate`` (unit-clustered when ``cluster`` is set)."""
        return quantile_variance(self)


def quantile_variance(s: QuantileStats) -> FloatArray:
    """se(q̂)² by the outer-CI width and the design effect of F̂ (module docstring)."""
    n = arr(s.n_events)
    n_star = n if s.n_star is None else arr(s.n_star)
    p = arr(s.level)
    with np.errstate(divide="ignore", invalid="ignore"):
        width = (arr(s.upper) - arr(s.lower)) / (2.0 * LEVEL_Z)
        var_iid = width**2 * n_star / n
        if s.cluster is None:
            return np.asarray(var_iid, dtype=np.float64)
        design_effect = ratio_variance(s.cluster) / (p * (1.0 - p) / n)
        return np.asarray(var_iid * design_effect, dtype=np.float64)


def quantile_estimates(c: QuantileStats, t: QuantileStats, alpha: float) -> Estimates:
    """Estimates for :mod:`abllm.stats.compare` (normal approximation, df = inf)."""
    var_c, var_t = quantile_variance(c), quantile_variance(t)
    q_c, q_t = arr(c.estimate), arr(t.estimate)
    z = float(special.ndtri(1.0 - alpha / 2.0))

    def units(s: QuantileStats) -> FloatArray:
        return arr(s.n_events) if s.cluster is None else arr(s.cluster.n)

    def too_few_events(s: QuantileStats) -> npt.NDArray[np.bool_]:
        # The bound levels leave (0, 1): no order statistic brackets the quantile.
        p, n = arr(s.level), arr(s.n_events)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray((n <= LEVEL_Z**2 * p / (1 - p)) | (n <= LEVEL_Z**2 * (1 - p) / p))

    def no_count(s: QuantileStats) -> npt.NDArray[np.bool_]:
        # ``n_star`` given but 0 while there are events: the levels came from no count.
        if s.n_star is None:
            return np.zeros(np.shape(s.n_events), dtype=bool)
        return np.asarray((arr(s.n_star) <= 0) & (arr(s.n_events) > 0))

    n_c, n_t = units(c), units(t)
    shape = np.broadcast_shapes(q_c.shape, q_t.shape, n_c.shape, n_t.shape)
    checks = [
        (ErrorCode.EMPTY_ARM, (n_c <= 0) | (n_t <= 0)),
        (ErrorCode.TOO_FEW_UNITS, (n_c < 2) | (n_t < 2)),
        (ErrorCode.TOO_FEW_EVENTS, too_few_events(c) | too_few_events(t)),
        (ErrorCode.NO_EVENT_COUNT, no_count(c) | no_count(t)),
        (ErrorCode.ZERO_VARIANCE, ~(var_c + var_t > 0)),
    ]
    nan = np.full(shape, np.nan)
    inf = np.full(shape, np.inf)
    se_c, se_t = np.sqrt(var_c), np.sqrt(var_t)

    def arm(n: FloatArray, q: FloatArray, se: FloatArray) -> ArmColumns:
        n_, q_, se_ = (np.broadcast_to(v, shape) for v in (n, q, se))
        return ArmColumns(n_, q_, nan, se_, q_ - z * se_, q_ + z * se_)

    return Estimates(
        "quantile",
        arm(n_c, q_c, se_c),
        arm(n_t, q_t, se_t),
        q_c,
        q_t,
        var_c,
        var_t,
        inf,
        inf,
        first_error(shape, checks),
    )
