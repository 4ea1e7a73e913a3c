"""What to test and how: the hypothesis and the analysis settings of a comparison."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from abllm.errors import ValidationError
from abllm.stats._types import Alternative

_ALTERNATIVES = ("two-sided", "greater", "less")


@dataclass(frozen=True)
class Hypothesis:
    """H0 and H1 for the effect of treatment over control.

    The effect is the difference ``μT − μC`` or, with ``relative=True``, the relative lift
    ``μT/μC − 1``. H0 says the effect equals ``null`` (two-sided) or is on the far side of it;
    ``alternative="greater"`` means H1: effect > ``null``.

    Examples::

        Hypothesis()                                   # two-sided, no difference
        Hypothesis.non_inferiority(0.10, higher_is_better=False)
        # H1: error rate is less than 10 % worse than control (μT/μC − 1 < 0.10)
        Hypothesis("greater", null=0.10, relative=True)
        # guardrail breach: H1: treatment is more than 10 % above control
    """

    alternative: Alternative = "two-sided"
    null: float = 0.0
    relative: bool = False

    def __post_init__(self) -> None:
        if self.alternative not in _ALTERNATIVES:
            raise ValidationError(
                f"hypothesis.alternative must be one of {', '.join(_ALTERNATIVES)}, "
                f"not {self.alternative!r}"
            )
        if not math.isfinite(self.null):
            raise ValidationError("hypothesis.null must be a finite number")
        if self.relative and self.null <= -1.0:
            raise ValidationError("hypothesis.null must be > -1 for a relative hypothesis")

    @classmethod
    def non_inferiority(
        cls, margin: float, *, higher_is_better: bool, relative: bool = True
    ) -> Hypothesis:
        """H1: the treatment is worse than control by less than ``margin`` (≥ 0).

        ``higher_is_better=False`` (error rate, latency, cost): H1 is effect < +margin;
        otherwise H1 is effect > −margin.
        """
        if not margin >= 0:
            raise ValidationError(f"non-inferiority margin must be >= 0, got {margin}")
        if higher_is_better:
            return cls("greater", -margin, relative)
        return cls("less", margin, relative)

    @property
    def null_ratio(self) -> float:
        """μT/μC under H0 for a relative hypothesis; 1.0 for an absolute one."""
        return 1.0 + self.null if self.relative else 1.0


@dataclass(frozen=True)
class GaussianPrior:
    """Normal prior on the absolute difference for the Gaussian Bayesian model."""

    mean: float = 0.0
    sd: float = 1.0

    def __post_init__(self) -> None:
        if not self.sd > 0:
            raise ValidationError(f"prior.sd must be > 0, got {self.sd}")


@dataclass(frozen=True)
class TestConfig:
    """Settings shared by every comparison of one analysis.

    - ``alpha``: significance level; CIs are ``1 − alpha`` (two-sided tests) or
      ``1 − 2·alpha`` two-sided intervals whose relevant end is the one-sided bound.
    - ``sequential``: decide (``significant``, adjusted p) on the always-valid p-value;
      both the fixed-horizon and the sequential results are always reported.
    - ``sequential_tuning_n``: total units (both arms) at which the confidence sequence is
      tightest; the planned sample size is a good choice (GrowthBook's default is 5,000).
    - ``higher_is_better``: direction for chance to win and expected loss.
    - ``bayes``: ``gaussian`` (any metric) or ``beta_binomial`` (proportions; other kinds fall
      back to gaussian) with ``beta_prior`` = (a, b).
    """

    __test__ = False  # not a pytest class despite the name

    alpha: float = 0.05
    hypothesis: Hypothesis = Hypothesis()
    higher_is_better: bool = True
    sequential: bool = False
    sequential_tuning_n: float = 5000.0
    bayes: Literal["gaussian", "beta_binomial"] = "gaussian"
    prior: GaussianPrior | None = None
    beta_prior: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 0.5:
            raise ValidationError(f"alpha must be in (0, 0.5), got {self.alpha}")
        if not self.sequential_tuning_n > 0:
            raise ValidationError(
                f"sequential_tuning_n must be > 0, got {self.sequential_tuning_n}"
            )
        if self.bayes not in ("gaussian", "beta_binomial"):
            raise ValidationError(f"bayes must be gaussian or beta_binomial, not {self.bayes!r}")
        if min(self.beta_prior) <= 0:
            raise ValidationError(f"beta_prior parameters must be > 0, got {self.beta_prior}")
