"""Sufficient statistics per arm: what the store computes in SQL and the engine consumes.

Each summary is a frozen dataclass of sums that *add*: the summary of two disjoint sets of
units is the field-wise sum, so partial aggregates (per day, per shard, per segment) merge
exactly. Fields accept floats or numpy arrays of one shape; arrays let one call analyse many
metrics × segments at once (see :meth:`_Summary.stack`).

The unit of analysis is the unit of randomisation (DESIGN.md): every ``n`` below counts units,
and per-request measures are ratio metrics over units (:class:`RatioStats`), never a plain mean
over events.

Variance without cancellation: Σy² − (Σy)²/n loses every digit when the values sit far from
0 relative to their spread (1e8 ± 1e-3: y² ≈ 1e16 has an ulp of 2). So ``MeanStats`` and
``RatioStats`` may carry the *central* sums — ``m2`` = Σ(y − ȳ)², and for ratios ``m2_num``,
``m2_den`` and the co-moment ``c_num_den`` = Σ(x − x̄)(d − d̄) — which the store computes with
its numerically stable ``var_samp``/``covar_samp`` (Welford/Youngs–Cramer updates), and which
:func:`abllm.stats.MeanStats.from_values` computes by two passes. Summaries add with the
pairwise update of Chan, Golub & LeVeque (1979, "Updating formulae and a pairwise algorithm for
computing sample variances"): m2 = m2_a + m2_b + δ²·n_a·n_b/n. Without them (``None``, the
default) the variance falls back to the raw sums.

Dataclass equality works for float fields; array-backed summaries should be compared with
``numpy.testing``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np

from abllm.errors import ValidationError
from abllm.stats._types import FloatArray, Value, arr


class _Summary:
    """Shared behaviour: field-wise addition and stacking into arrays.

    ``_CENTRAL`` names the optional central sums (module docstring) and, for each, the raw
    fields it belongs to: ``(central, sum_a, sum_b, raw_sum_ab)``.
    """

    _CENTRAL: tuple[tuple[str, str, str, str], ...] = ()

    def __add__(self, other: Self) -> Self:
        if type(other) is not type(self):
            return NotImplemented
        central = {c[0] for c in self._CENTRAL}
        values = {
            f.name: getattr(self, f.name) + getattr(other, f.name)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.name not in central
        }
        if any(getattr(x, c) is not None for x in (self, other) for c in central):
            for name, a, b, _ in self._CENTRAL:
                values[name] = _merge_central(self, other, name, a, b)
        return type(self)(**values)

    def central(self, name: str) -> FloatArray:
        """The central sum ``name``: as stored, or from the raw sums when not stored."""
        stored = getattr(self, name)
        if stored is not None:
            return arr(stored)
        _, a, b, ab = next(c for c in self._CENTRAL if c[0] == name)
        n = arr(getattr(self, "n"))  # noqa: B009 - every summary has n
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = arr(getattr(self, ab)) - arr(getattr(self, a)) * arr(getattr(self, b)) / n
        return np.where(n > 0, raw, 0.0)

    @classmethod
    def stack(cls, items: Sequence[Self]) -> Self:
        """One summary whose fields are arrays, element ``i`` taken from ``items[i]``.

        This is how many metrics or segments go through one vectorised call.
        """
        if not items:
            raise ValidationError(f"{cls.__name__}.stack needs at least one summary")
        central = {c[0] for c in cls._CENTRAL}
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        out = {
            n: np.array([getattr(s, n) for s in items], dtype=np.float64)
            for n in names
            if n not in central
        }
        if any(getattr(s, c) is not None for s in items for c in central):
            for c in central:
                out[c] = np.array([s.central(c) for s in items], dtype=np.float64)
        return cls(**out)


def _merge_central(x: _Summary, y: _Summary, name: str, a: str, b: str) -> FloatArray:
    """Chan–Golub–LeVeque pairwise update of a central (co-)moment."""
    n_x, n_y = arr(getattr(x, "n")), arr(getattr(y, "n"))  # noqa: B009
    n = n_x + n_y
    with np.errstate(divide="ignore", invalid="ignore"):
        da = arr(getattr(y, a)) / n_y - arr(getattr(x, a)) / n_x
        db = arr(getattr(y, b)) / n_y - arr(getattr(x, b)) / n_x
        cross = np.where((n_x > 0) & (n_y > 0), da * db * n_x * n_y / n, 0.0)
    return np.asarray(x.central(name) + y.central(name) + cross, dtype=np.float64)


@dataclass(frozen=True)
class MeanStats(_Summary):
    """A per-unit metric (rating, tokens per unit, converted as 0/1 …): ``n`` units, Σy, Σy².

    SQL: ``count(*), sum(y), sum(y*y)`` over the per-unit values of one arm.
    """

    n: Value
    sum: Value
    sum_sq: Value
    m2: Value | None = None

    _CENTRAL = (("m2", "sum", "sum", "sum_sq"),)

    @classmethod
    def from_values(cls, values: FloatArray | Sequence[float]) -> MeanStats:
        """Summary of raw per-unit values (tests, tiny data), central sum by two passes."""
        y = arr(values)  # type: ignore[arg-type]
        m2 = float(((y - y.mean()) ** 2).sum()) if y.size else 0.0
        return cls(n=float(y.size), sum=float(y.sum()), sum_sq=float((y * y).sum()), m2=m2)

    @property
    def mean(self) -> FloatArray:
        return mean_of(self.n, self.sum)

    @property
    def variance(self) -> FloatArray:
        """Unbiased sample variance (ddof = 1): ``m2/(n − 1)``, from the raw sums without m2."""
        if self.m2 is None:
            return variance_of(self.n, self.sum, self.sum_sq)
        return central_variance(self.n, self.m2)


@dataclass(frozen=True)
class ProportionStats(_Summary):
    """A binary per-unit metric: ``n`` units of which ``successes`` converted.

    SQL: ``count(*), sum(converted)`` over units.
    """

    n: Value
    successes: Value

    @property
    def rate(self) -> FloatArray:
        return mean_of(self.n, self.successes)


@dataclass(frozen=True)
class RatioStats(_Summary):
    """A ratio over units, Σnum / Σden: latency per call, cost per request, tokens per call.

    Per unit *i* the store computes ``num_i`` (e.g. total latency) and ``den_i`` (e.g. number
    of calls); this summary holds ``n`` units, Σnum, Σden, Σnum², Σden², Σnum·den. The variance
    of the ratio uses the delta method over units (Deng, Knoblich & Lu 2018, "Applying the
    Delta Method in Metric Analytics", KDD, eq. 3), which is what makes per-request metrics
    valid when a unit sends many requests.
    """

    n: Value
    sum_num: Value
    sum_den: Value
    sum_num_sq: Value
    sum_den_sq: Value
    sum_num_den: Value
    m2_num: Value | None = None
    m2_den: Value | None = None
    c_num_den: Value | None = None

    _CENTRAL = (
        ("m2_num", "sum_num", "sum_num", "sum_num_sq"),
        ("m2_den", "sum_den", "sum_den", "sum_den_sq"),
        ("c_num_den", "sum_num", "sum_den", "sum_num_den"),
    )

    @classmethod
    def from_values(
        cls, num: FloatArray | Sequence[float], den: FloatArray | Sequence[float]
    ) -> RatioStats:
        """Summary of per-unit numerators and denominators (tests, tiny data)."""
        x, d = arr(num), arr(den)  # type: ignore[arg-type]
        dx, dd = (x - x.mean(), d - d.mean()) if x.size else (x, d)
        return cls(
            n=float(x.size),
            sum_num=float(x.sum()),
            sum_den=float(d.sum()),
            sum_num_sq=float((x * x).sum()),
            sum_den_sq=float((d * d).sum()),
            sum_num_den=float((x * d).sum()),
            m2_num=float((dx * dx).sum()),
            m2_den=float((dd * dd).sum()),
            c_num_den=float((dx * dd).sum()),
        )

    @property
    def ratio(self) -> FloatArray:
        return mean_of(self.sum_den, self.sum_num)

    @property
    def ratio_variance(self) -> FloatArray:
        """Delta-method variance of the ratio *estimate* (already divided by ``n``)."""
        return ratio_variance(self)


@dataclass(frozen=True)
class CupedStats(_Summary):
    """A per-unit outcome ``y`` with a pre-exposure covariate ``x`` for CUPED.

    ``x`` must not be affected by the treatment: the unit's value of the same metric (or its
    prior usage, tokens per second …) before its first exposure; 0 for units without history.
    SQL: ``count(*), sum(y), sum(y*y), sum(x), sum(x*x), sum(x*y)``. Deng, Xu, Kohavi & Walker
    2013, "Improving the Sensitivity of Online Controlled Experiments by Utilizing
    Pre-Experiment Data" (WSDM).
    """

    n: Value
    sum: Value
    sum_sq: Value
    sum_x: Value
    sum_x_sq: Value
    sum_xy: Value

    @classmethod
    def from_values(
        cls, y: FloatArray | Sequence[float], x: FloatArray | Sequence[float]
    ) -> CupedStats:
        """Summary of per-unit outcomes and covariates (tests, tiny data)."""
        yy, xx = arr(y), arr(x)  # type: ignore[arg-type]
        return cls(
            n=float(yy.size),
            sum=float(yy.sum()),
            sum_sq=float((yy * yy).sum()),
            sum_x=float(xx.sum()),
            sum_x_sq=float((xx * xx).sum()),
            sum_xy=float((xx * yy).sum()),
        )

    @property
    def outcome(self) -> MeanStats:
        return MeanStats(n=self.n, sum=self.sum, sum_sq=self.sum_sq)

    @property
    def covariate(self) -> MeanStats:
        return MeanStats(n=self.n, sum=self.sum_x, sum_sq=self.sum_x_sq)


def mean_of(n: Value, total: Value) -> FloatArray:
    """``total / n``; NaN where ``n`` is 0 (no warning)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return arr(total) / arr(n)


def variance_of(n: Value, total: Value, total_sq: Value) -> FloatArray:
    """Sample variance (ddof = 1) from Σy and Σy²; NaN for n < 2, clipped at 0."""
    n_ = arr(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = (arr(total_sq) - arr(total) ** 2 / n_) / (n_ - 1.0)
    return np.where(n_ >= 2, np.maximum(v, 0.0), np.nan)


def central_variance(n: Value, m2: Value) -> FloatArray:
    """Sample variance (ddof = 1) from the central sum Σ(y − ȳ)²; NaN for n < 2."""
    n_ = arr(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        v = arr(m2) / (n_ - 1.0)
    return np.where(n_ >= 2, np.maximum(v, 0.0), np.nan)


def covariance_of(n: Value, sum_a: Value, sum_b: Value, sum_ab: Value) -> FloatArray:
    """Sample covariance (ddof = 1) from Σa, Σb and Σab; NaN for n < 2."""
    n_ = arr(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (arr(sum_ab) - arr(sum_a) * arr(sum_b) / n_) / (n_ - 1.0)
    return np.where(n_ >= 2, c, np.nan)


def ratio_variance(s: RatioStats) -> FloatArray:
    """Var(Σnum/Σden) by the delta method over units.

    With per-unit means μ_x, μ_d, variances σ²_x, σ²_d and covariance σ_xd (ddof = 1),
    Var ≈ (σ²_x/μ_d² − 2 μ_x σ_xd/μ_d³ + μ_x² σ²_d/μ_d⁴) / n  (Deng et al. 2018, eq. 3;
    the same expression as GrowthBook's ``RatioStatistic``).
    """
    n = arr(s.n)
    mx, md = mean_of(n, s.sum_num), mean_of(n, s.sum_den)
    vx = central_variance(n, s.central("m2_num"))
    vd = central_variance(n, s.central("m2_den"))
    with np.errstate(divide="ignore", invalid="ignore"):
        cxd = np.where(n >= 2, s.central("c_num_den") / (n - 1.0), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_unit = vx / md**2 - 2.0 * mx * cxd / md**3 + mx**2 * vd / md**4
        return np.asarray(np.maximum(per_unit, 0.0) / n, dtype=np.float64)
