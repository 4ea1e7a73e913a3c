"""Typed results: one :class:`Comparison` per treatment-vs-control, or a columnar table.

Degenerate input never raises: the result carries an :class:`ErrorCode`, the arm summaries
that could be computed, NaN for what could not, and ``significant=False`` — so a dashboard
still renders. :meth:`Comparison.as_dict` turns NaN/inf into ``None`` for JSON.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from itertools import repeat
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from abllm.stats._types import FloatArray
from abllm.stats.config import Hypothesis, TestConfig

MetricKind: TypeAlias = Literal["mean", "proportion", "ratio", "cuped", "quantile"]


class ErrorCode(StrEnum):
    """Why a comparison has no inference (first matching reason wins, in this order)."""

    EMPTY_ARM = "empty_arm"  # an arm has no units
    TOO_FEW_UNITS = "too_few_units"  # an arm has fewer than 2 units
    TOO_FEW_EVENTS = "too_few_events"  # quantile: too few events for the requested level
    NO_EVENT_COUNT = "no_event_count"  # quantile: no event count placed the CI's levels
    ZERO_DENOMINATOR = "zero_denominator"  # ratio: Σ denominator is 0 in an arm
    ZERO_VARIANCE = "zero_variance"  # the standard error of the difference is 0
    NONPOSITIVE_BASELINE = "nonpositive_baseline"  # relative hypothesis, control mean ≤ 0


#: Integer codes used in :class:`ComparisonTable` (0 = no error).
ERROR_CODES: tuple[ErrorCode | None, ...] = (None, *ErrorCode)


def _json_num(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass(frozen=True, slots=True)
class ArmSummary:
    """One arm: units, the metric's estimate, per-unit sd, its standard error and CI.

    For quantiles ``mean`` is the quantile estimate and ``sd`` is NaN; ``n`` counts units.
    """

    n: float
    mean: float
    sd: float
    se: float
    ci: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment versus control for one metric (and one segment).

    ``diff`` is μT − μC (CUPED-adjusted for ``cuped``); ``rel_lift`` is μT/μC − 1 with a
    Fieller (or, for proportions, Koopman score) interval: the relative lifts the test does not
    reject, so ``rel_ci`` excludes 0 (or a relative margin ``m``) exactly when
    ``p_value < alpha`` — unless the control mean is itself indistinguishable from 0, when
    ``rel_ci`` is (−inf, inf). For one-sided hypotheses the intervals are two-sided at
    ``1 − 2·alpha`` so their relevant end is the one-sided bound. ``seq_*`` are the
    always-valid counterparts. ``significant`` uses ``adjusted_p_value``: the decision p-value
    (sequential when ``sequential``) after any multiple-testing correction.
    """

    kind: MetricKind
    control: ArmSummary
    treatment: ArmSummary
    diff: float
    diff_se: float
    df: float
    diff_ci: tuple[float, float]
    rel_lift: float
    rel_ci: tuple[float, float]
    p_value: float
    seq_p_value: float
    seq_diff_ci: tuple[float, float]
    seq_rel_ci: tuple[float, float]
    chance_to_win: float
    expected_loss: float
    expected_loss_control: float
    adjusted_p_value: float
    significant: bool
    error: ErrorCode | None
    alpha: float
    hypothesis: Hypothesis
    sequential: bool

    @property
    def decision_p_value(self) -> float:
        """The p-value decisions use before correction: sequential or fixed-horizon."""
        return self.seq_p_value if self.sequential else self.p_value

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict: NaN and ±inf become ``None``; tuples become lists."""

        def clean(v: Any) -> Any:
            if isinstance(v, float):
                return _json_num(v)
            if isinstance(v, tuple):
                return [clean(x) for x in v]
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            return v

        raw = dataclasses.asdict(self)
        raw["error"] = None if self.error is None else str(self.error)
        return {k: clean(v) for k, v in raw.items()}


@dataclass(frozen=True)
class ArmColumns:
    """Columnar :class:`ArmSummary` fields (arrays of one shape)."""

    n: FloatArray
    mean: FloatArray
    sd: FloatArray
    se: FloatArray
    ci_lower: FloatArray
    ci_upper: FloatArray


@dataclass(frozen=True)
class ComparisonTable:
    """Many comparisons of one metric kind as arrays of one shape (e.g. segments × arms).

    The vectorised engine returns this; :meth:`row` / :meth:`rows` give typed
    :class:`Comparison` objects. Field meanings are those of :class:`Comparison`.
    """

    kind: MetricKind
    config: TestConfig
    control: ArmColumns
    treatment: ArmColumns
    diff: FloatArray
    diff_se: FloatArray
    df: FloatArray
    diff_ci_lower: FloatArray
    diff_ci_upper: FloatArray
    rel_lift: FloatArray
    rel_ci_lower: FloatArray
    rel_ci_upper: FloatArray
    p_value: FloatArray
    seq_p_value: FloatArray
    seq_diff_ci_lower: FloatArray
    seq_diff_ci_upper: FloatArray
    seq_rel_ci_lower: FloatArray
    seq_rel_ci_upper: FloatArray
    chance_to_win: FloatArray
    expected_loss: FloatArray
    expected_loss_control: FloatArray
    adjusted_p_value: FloatArray
    error_code: npt.NDArray[np.int8]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.diff.shape)

    def __len__(self) -> int:
        return int(self.diff.size)

    @property
    def decision_p_value(self) -> FloatArray:
        return self.seq_p_value if self.config.sequential else self.p_value

    @property
    def significant(self) -> npt.NDArray[np.bool_]:
        """``adjusted_p_value < alpha`` where there is no error."""
        with np.errstate(invalid="ignore"):
            return np.asarray((self.adjusted_p_value < self.config.alpha) & (self.error_code == 0))

    @property
    def errors(self) -> list[ErrorCode | None]:
        """Error per comparison, flattened in C order like :meth:`rows`."""
        return [ERROR_CODES[c] for c in self.error_code.reshape(-1).tolist()]

    def with_adjusted(self, adjusted_p_value: FloatArray) -> ComparisonTable:
        """A copy whose ``adjusted_p_value`` (and hence ``significant``) is replaced."""
        return dataclasses.replace(
            self, adjusted_p_value=np.broadcast_to(adjusted_p_value, self.diff.shape)
        )

    def row(self, i: int) -> Comparison:
        """Comparison ``i`` (flat, C-order index)."""
        return self.rows(np.array([i]))[0]

    def rows(self, index: npt.NDArray[np.intp] | None = None) -> list[Comparison]:
        """Typed comparisons, flattened in C order (or those at flat ``index``)."""
        idx = np.arange(self.diff.size) if index is None else index
        k = int(idx.size)

        def col(x: npt.NDArray[Any]) -> list[Any]:
            return list(np.asarray(x).reshape(-1)[idx].tolist())

        def pair(lo: FloatArray, hi: FloatArray) -> Iterator[tuple[float, float]]:
            return zip(col(lo), col(hi), strict=True)

        def arms(a: ArmColumns) -> list[ArmSummary]:
            return list(
                map(
                    ArmSummary,
                    col(a.n),
                    col(a.mean),
                    col(a.sd),
                    col(a.se),
                    pair(a.ci_lower, a.ci_upper),
                )
            )

        cfg = self.config
        errors = [ERROR_CODES[e] for e in col(self.error_code)]
        # map() over columns: building 2,000 results is the slow part of a large analysis.
        return list(
            map(
                Comparison,
                repeat(self.kind, k),
                arms(self.control),
                arms(self.treatment),
                col(self.diff),
                col(self.diff_se),
                col(self.df),
                pair(self.diff_ci_lower, self.diff_ci_upper),
                col(self.rel_lift),
                pair(self.rel_ci_lower, self.rel_ci_upper),
                col(self.p_value),
                col(self.seq_p_value),
                pair(self.seq_diff_ci_lower, self.seq_diff_ci_upper),
                pair(self.seq_rel_ci_lower, self.seq_rel_ci_upper),
                col(self.chance_to_win),
                col(self.expected_loss),
                col(self.expected_loss_control),
                col(self.adjusted_p_value),
                col(self.significant),
                errors,
                repeat(cfg.alpha, k),
                repeat(cfg.hypothesis, k),
                repeat(cfg.sequential, k),
            )
        )
