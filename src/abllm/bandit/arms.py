"""Per-arm sufficient statistics for the bandit: additive, JSON-friendly, fed by the stats package.

Also the small parsing helpers the JSON codec of :class:`abllm.bandit.BanditState` uses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from abllm.bandit.posteriors import BetaPrior, NormalInverseGamma
from abllm.errors import ValidationError
from abllm.stats.summaries import MeanStats, ProportionStats


def _scalar(value: object, name: str) -> float:
    """A summary field as one finite float (array-backed summaries must have one element)."""
    a = np.asarray(value, dtype=np.float64)
    if a.size != 1:
        raise ValidationError(f"{name}: expected a single value, got an array of shape {a.shape}")
    x = float(a.reshape(()))
    if not math.isfinite(x):
        raise ValidationError(f"{name} must be finite, got {x}")
    return x


@dataclass(frozen=True)
class ArmStats:
    """One arm's sufficient statistics: ``n`` rewards, their sum and sum of squares.

    For Bernoulli rewards ``sum`` is the number of successes (and ``sum_sq`` equals it).
    """

    n: float = 0.0
    sum: float = 0.0
    sum_sq: float = 0.0

    def __post_init__(self) -> None:
        for name in ("n", "sum", "sum_sq"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValidationError(f"arm stats {name} must be finite, got {value}")
        if self.n < 0 or self.sum_sq < 0:
            raise ValidationError(f"arm stats need n >= 0 and sum_sq >= 0, got {self}")

    def __add__(self, other: ArmStats) -> ArmStats:
        return ArmStats(self.n + other.n, self.sum + other.sum, self.sum_sq + other.sum_sq)

    @classmethod
    def from_rewards(cls, rewards: Iterable[float]) -> ArmStats:
        """Statistics of raw rewards (booleans count as 1/0)."""
        y = np.fromiter((float(r) for r in rewards), dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise ValidationError("rewards must be finite numbers")
        return cls(float(y.size), float(y.sum()), float((y * y).sum()))

    @classmethod
    def from_summary(cls, summary: ArmStats | MeanStats | ProportionStats) -> ArmStats:
        """Accept the stats package's per-arm summaries (scalar fields) or ``ArmStats``."""
        if isinstance(summary, ArmStats):
            return summary
        if isinstance(summary, ProportionStats):
            s = _scalar(summary.successes, "successes")
            return cls(_scalar(summary.n, "n"), s, s)
        if isinstance(summary, MeanStats):
            return cls(
                _scalar(summary.n, "n"),
                _scalar(summary.sum, "sum"),
                _scalar(summary.sum_sq, "sum_sq"),
            )
        raise ValidationError(
            f"bandit statistics must be ArmStats, MeanStats or ProportionStats, "
            f"not {type(summary).__name__}"
        )


Summary = ArmStats | MeanStats | ProportionStats
Prior = BetaPrior | NormalInverseGamma


def json_field(data: Mapping[str, Any], name: str, kind: type) -> Any:
    """``data[name]`` when it has type ``kind`` (bools are not ints); else a named error."""
    value = data.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValidationError(f"{name}: expected {kind.__name__}, got {value!r}")
    return value


def json_number(data: object, where: str, name: str) -> float:
    """``data[name]`` as a float; the error names ``where.name``."""
    value = data.get(name) if isinstance(data, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{where}.{name}: expected a number, got {value!r}")
    return float(value)


def json_prior(kind: str, data: object) -> Prior | None:
    """The prior of a ``kind`` bandit from its JSON object (None stays None)."""
    if data is None:
        return None
    if kind == "bernoulli":
        return BetaPrior(json_number(data, "prior", "alpha"), json_number(data, "prior", "beta"))
    return NormalInverseGamma(
        *(json_number(data, "prior", name) for name in ("mu0", "kappa0", "alpha0", "beta0"))
    )
