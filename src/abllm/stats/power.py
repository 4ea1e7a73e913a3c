"""Power and planning: units per arm for an MDE, the MDE for a sample, days to run.

The test is the two-sample normal (z) test of a difference in means: with per-unit standard
deviations σ_C, σ_T and n_C, n_T = ratio·n_C units, se = √(σ_C²/n_C + σ_T²/n_T) and for an
effect δ the power is Φ(δ/se − z_{1−α/2}) + Φ(−δ/se − z_{1−α/2}) (two-sided; both tails, as
statsmodels' ``NormalIndPower``) or Φ(δ/se − z_{1−α}) (one-sided in the effect's direction).
Sample sizes solve that equation exactly (Brent's method from the one-tail closed form
n = (z_{1−α/2} + z_{power})²(σ_C² + σ_T²/ratio)/δ²; e.g. Chow, Shao & Wang, "Sample Size
Calculations in Clinical Research", §3.2). For a rate p the standard deviations are
√(p(1−p)) at the baseline and at the alternative rate p + δ (unpooled).

:func:`rule_sample_size` sizes for the test the decision rule actually runs: the always-valid
(normal-mixture) boundary instead of z_{1−α/2}, at α/m for m treatments under Holm or BH (their
first step is Bonferroni), judged at the planned look alone — the looks before it only add
power, so the plan is conservative (``tests/analysis/test_power_rule.py`` simulates it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import optimize, special

from abllm.errors import ValidationError
from abllm.stats._types import Alternative
from abllm.stats.sequential import mixture_rho


def _z(q: float) -> float:
    return float(special.ndtri(q))


def _check_common(alpha: float, power: float, ratio: float) -> None:
    if not 0 < alpha < 0.5:
        raise ValidationError(f"alpha must be in (0, 0.5), got {alpha}")
    if not 0 < power < 1:
        raise ValidationError(f"power must be in (0, 1), got {power}")
    if not ratio > 0:
        raise ValidationError(f"ratio (treatment units per control unit) must be > 0, got {ratio}")


def power_at(
    n_per_arm: float,
    mde: float,
    sd: float,
    *,
    sd_treatment: float | None = None,
    alpha: float = 0.05,
    alternative: Alternative = "two-sided",
    ratio: float = 1.0,
) -> float:
    """Power to detect an absolute effect ``mde`` with ``n_per_arm`` control units.

    ``alternative="less"`` looks for a decrease of ``|mde|``; otherwise an increase (or either
    direction for two-sided).
    """
    sd_t = sd if sd_treatment is None else sd_treatment
    se = math.sqrt(sd * sd / n_per_arm + sd_t * sd_t / (ratio * n_per_arm))
    lam = abs(mde) / se
    if alternative == "two-sided":
        crit = _z(1.0 - alpha / 2.0)
        return float(special.ndtr(lam - crit) + special.ndtr(-lam - crit))
    return float(special.ndtr(lam - _z(1.0 - alpha)))


def sample_size(
    mde: float,
    sd: float,
    *,
    sd_treatment: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    ratio: float = 1.0,
) -> float:
    """Control units needed (exact, not rounded) to detect absolute effect ``mde``."""
    _check_common(alpha, power, ratio)
    if not mde != 0 or not math.isfinite(mde):
        raise ValidationError(f"mde must be a non-zero number, got {mde}")
    if not sd > 0 or (sd_treatment is not None and not sd_treatment > 0):
        raise ValidationError(f"sd must be > 0, got {sd}")
    sd_t = sd if sd_treatment is None else sd_treatment
    crit = _z(1.0 - alpha / 2.0) if alternative == "two-sided" else _z(1.0 - alpha)
    unit_var = sd * sd + sd_t * sd_t / ratio
    n_one_tail = (crit + _z(power)) ** 2 * unit_var / (mde * mde)
    if alternative != "two-sided":
        return n_one_tail

    def gap(n: float) -> float:
        return power_at(n, mde, sd, sd_treatment=sd_t, alpha=alpha, ratio=ratio) - power

    # The far tail only adds power, so the root lies at or below the one-tail solution.
    lo = n_one_tail / 2.0
    while gap(lo) > 0:
        lo /= 2.0
    return float(optimize.brentq(gap, lo, n_one_tail, xtol=1e-12, rtol=1e-15))


def minimum_detectable_effect(
    n_per_arm: float,
    sd: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    ratio: float = 1.0,
    baseline_rate: float | None = None,
) -> float:
    """Smallest absolute effect detected with ``power`` given ``n_per_arm`` control units.

    With ``baseline_rate`` the treatment sd follows the alternative rate (``sd`` is ignored).
    """
    _check_common(alpha, power, ratio)
    if not n_per_arm > 0:
        raise ValidationError(f"units per arm must be > 0, got {n_per_arm}")
    if baseline_rate is None:
        if not sd > 0:
            raise ValidationError(f"sd must be > 0, got {sd}")

        def gap_mean(d: float) -> float:
            return power_at(n_per_arm, d, sd, alpha=alpha, alternative=alternative,
                            ratio=ratio) - power  # fmt: skip

        crit = _z(1.0 - alpha / 2.0) if alternative == "two-sided" else _z(1.0 - alpha)
        upper = (crit + _z(power)) * math.sqrt(sd * sd * (1.0 + 1.0 / ratio) / n_per_arm)
        if alternative != "two-sided":
            return upper
        return float(optimize.brentq(gap_mean, upper / 4.0, upper, xtol=1e-14, rtol=1e-15))
    p0 = _check_rate(baseline_rate)

    def gap_rate(d: float) -> float:
        p1 = p0 + d
        return power_at(n_per_arm, d, _rate_sd(p0), sd_treatment=_rate_sd(p1), alpha=alpha,
                        alternative=alternative, ratio=ratio) - power  # fmt: skip

    top = (1.0 - p0) * (1.0 - 1e-12)
    if gap_rate(top) < 0:
        raise ValidationError(
            f"no increase from rate {p0} is detectable with {n_per_arm} units per arm"
        )
    return float(optimize.brentq(gap_rate, 1e-12, top, xtol=1e-15, rtol=1e-15))


def days_needed(total_units: float, daily_units: float, traffic_fraction: float = 1.0) -> int:
    """Whole days until ``total_units`` units have entered at ``daily_units`` per day."""
    if not daily_units > 0:
        raise ValidationError(f"daily units must be > 0, got {daily_units}")
    if not 0 < traffic_fraction <= 1:
        raise ValidationError(f"traffic fraction must be in (0, 1], got {traffic_fraction}")
    return max(1, math.ceil(total_units / (daily_units * traffic_fraction) - 1e-9))


def _check_rate(rate: float) -> float:
    if not 0 < rate < 1:
        raise ValidationError(f"baseline rate must be in (0, 1), got {rate}")
    return rate


def _rate_sd(p: float) -> float:
    return math.sqrt(p * (1.0 - p))


@dataclass(frozen=True)
class PowerPlan:
    """A sample-size plan: inputs echoed back, units per arm, total units, days."""

    baseline: float
    sd: float
    mde: float
    mde_relative: float | None
    alpha: float
    power: float
    alternative: Alternative
    arms: int
    units_per_arm: int
    total_units: int
    daily_units: float | None
    days: int | None
    sequential: bool = False
    correction: str = "none"
    min_units_per_arm: int = 0


def plan(
    *,
    mde: float | None = None,
    baseline_mean: float | None = None,
    sd: float | None = None,
    baseline_rate: float | None = None,
    relative: bool = False,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: Alternative = "two-sided",
    arms: int = 2,
    units_per_arm: int | None = None,
    daily_units: float | None = None,
    sequential: bool = False,
    correction: str = "none",
    min_units_per_arm: int = 0,
) -> PowerPlan:
    """Plan an experiment from a baseline mean and sd (or a rate).

    With ``sequential``, ``correction`` (holm/bh across the ``arms − 1`` treatments) and
    ``min_units_per_arm`` the plan is the decision rule's (:func:`rule_sample_size`, two-sided):
    what ``abllm power`` prints by default and ``recommendation.units_needed`` counts down.

    Give ``mde`` (absolute, or a fraction of the baseline with ``relative=True``) to get units
    per arm, or ``units_per_arm`` to get the MDE. ``arms`` counts the control; every arm gets
    the same units; ``days`` needs ``daily_units`` (eligible units entering per day).
    """
    if baseline_rate is not None:
        if baseline_mean is not None or sd is not None:
            raise ValidationError("give either baseline_rate or baseline_mean with sd, not both")
        base, sd_c = _check_rate(baseline_rate), _rate_sd(baseline_rate)
    else:
        if baseline_mean is None or sd is None:
            raise ValidationError("give baseline_mean and sd (or baseline_rate)")
        if not sd > 0:
            raise ValidationError(f"sd must be > 0, got {sd}")
        base, sd_c = baseline_mean, sd
    if arms < 2:
        raise ValidationError(f"arms must be >= 2 (control included), got {arms}")
    if (mde is None) == (units_per_arm is None):
        raise ValidationError("give exactly one of mde and units_per_arm")
    rule = sequential or correction != "none" or min_units_per_arm > 0
    if rule and alternative != "two-sided":
        raise ValidationError("the decision rule's tests are two-sided; drop --one-sided")
    if units_per_arm is not None and rule:
        effect = _rule_mde(units_per_arm, sd_c, baseline_rate, alpha, power, arms, correction,
                           sequential, min_units_per_arm)  # fmt: skip
        n = units_per_arm
    elif units_per_arm is not None:
        effect = minimum_detectable_effect(
            units_per_arm, sd_c, alpha=alpha, power=power, alternative=alternative,
            baseline_rate=baseline_rate,
        )  # fmt: skip
        n = units_per_arm
    else:
        assert mde is not None
        if not mde > 0:
            raise ValidationError(f"mde must be > 0, got {mde}")
        if relative and base == 0:
            raise ValidationError("a relative mde needs a non-zero baseline")
        effect = mde * abs(base) if relative else mde
        sd_t = sd_c
        if baseline_rate is not None:
            if not 0 < base + effect < 1:
                raise ValidationError(f"baseline rate + mde must stay below 1, got {base + effect}")
            sd_t = _rate_sd(base + effect)
        if rule:
            n = rule_sample_size(effect, sd_c, sd_treatment=sd_t, alpha=alpha, power=power,
                                 treatments=arms - 1, correction=correction,
                                 sequential=sequential, min_units_per_arm=min_units_per_arm,
                                 arms=arms)  # fmt: skip
        else:
            exact = sample_size(effect, sd_c, sd_treatment=sd_t, alpha=alpha, power=power,
                                alternative=alternative)  # fmt: skip
            n = math.ceil(exact - 1e-9)
    total = n * arms
    return PowerPlan(
        baseline=base,
        sd=sd_c,
        mde=effect,
        mde_relative=effect / abs(base) if base != 0 else None,
        alpha=alpha,
        power=power,
        alternative=alternative,
        arms=arms,
        units_per_arm=n,
        total_units=total,
        daily_units=daily_units,
        days=None if daily_units is None else days_needed(total, daily_units),
        sequential=sequential,
        correction=correction,
        min_units_per_arm=min_units_per_arm,
    )


def _rule_mde(
    n: int,
    sd: float,
    baseline_rate: float | None,
    alpha: float,
    power: float,
    arms: int,
    correction: str,
    sequential: bool,
    min_units: int,
) -> float:
    """The smallest effect the rule detects with ``power`` at ``n`` units per arm."""
    m = max(arms - 1, 1) if correction in ("holm", "bh") else 1
    p0 = baseline_rate

    def gap(d: float) -> float:
        sd_t = _rate_sd(p0 + d) if p0 is not None else sd
        if not sequential:
            return power_at(n, d, sd, sd_treatment=sd_t, alpha=alpha / m) - power
        tuning = max(n, min_units) * arms
        return sequential_power_at(n, d, sd, sd_treatment=sd_t, alpha=alpha, comparisons=m,
                                   tuning_n=tuning) - power  # fmt: skip

    top = (1.0 - p0) * (1.0 - 1e-12) if p0 is not None else 100.0 * sd
    if gap(top) < 0:
        raise ValidationError(f"no effect is detectable with {n} units per arm")
    return float(optimize.brentq(gap, 1e-12 * max(sd, 1e-12), top, xtol=1e-14))


def sequential_power_at(
    n_per_arm: float,
    mde: float,
    sd: float,
    *,
    sd_treatment: float | None = None,
    alpha: float = 0.05,
    comparisons: int = 1,
    tuning_n: float,
) -> float:
    """Power of the two-sided always-valid test with ``n_per_arm`` units in each of the two arms
    compared, rejecting when the sequential p-value is ≤ ``alpha / comparisons``.

    The mixture boundary in z units at N = 2n units (Howard et al. 2021, eq. 3.7; ρ tuned at
    ``tuning_n`` with ``alpha`` as in :func:`abllm.stats.sequential_p_value`) is
    z*² = (N + ρ)/N · (2·log(comparisons/α) + log((N + ρ)/ρ)).
    """
    sd_t = sd if sd_treatment is None else sd_treatment
    big_n = 2.0 * n_per_arm
    rho = mixture_rho(tuning_n, alpha, one_sided=False)
    level = alpha / max(comparisons, 1)
    log_term = 2.0 * math.log(1.0 / level) + math.log1p(big_n / rho)
    crit = math.sqrt((big_n + rho) / big_n * log_term)
    lam = abs(mde) / math.sqrt((sd * sd + sd_t * sd_t) / n_per_arm)
    return float(special.ndtr(lam - crit) + special.ndtr(-lam - crit))


def rule_sample_size(
    mde: float,
    sd: float,
    *,
    sd_treatment: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    treatments: int = 1,
    correction: str = "holm",
    sequential: bool = True,
    min_units_per_arm: int = 0,
    arms: int = 2,
) -> int:
    """Units per arm the decision rule needs to reach ``power`` at effect ``mde``.

    ``correction`` ``holm``/``bh`` splits ``alpha`` over the ``treatments``; ``sequential``
    uses the always-valid boundary, tuned (like the analysis) at the planned total
    ``max(n, min_units_per_arm) × arms``. The answer is never below ``min_units_per_arm``:
    the floor is on top of the power calculation, not instead of it.
    """
    _check_common(alpha, power, 1.0)
    if not (mde != 0 and math.isfinite(mde) and sd > 0):
        raise ValidationError(f"need a non-zero mde and sd > 0, got mde={mde}, sd={sd}")
    m = max(treatments, 1) if correction in ("holm", "bh") else 1
    if not sequential:
        n = sample_size(abs(mde), sd, sd_treatment=sd_treatment, alpha=alpha / m, power=power)
        return max(math.ceil(n - 1e-9), min_units_per_arm)

    def gap(n: float) -> float:
        tuning = max(n, float(min_units_per_arm)) * max(arms, 2)
        return sequential_power_at(n, mde, sd, sd_treatment=sd_treatment, alpha=alpha,
                                   comparisons=m, tuning_n=tuning) - power  # fmt: skip

    lo = max(sample_size(abs(mde), sd, sd_treatment=sd_treatment, alpha=alpha / m,
                         power=power) / 2.0, 1.0)  # fmt: skip
    hi = lo * 4.0
    while gap(hi) < 0:
        hi *= 2.0
    n = float(optimize.brentq(gap, lo, hi, xtol=1e-6))
    return max(math.ceil(n - 1e-9), min_units_per_arm)
