"""Sample ratio mismatch: are units split across arms as configured?

Pearson χ² goodness of fit of the observed unit counts against the configured weights,
flagged at p < 0.001 (Fabijan et al. 2019, "Diagnosing Sample Ratio Mismatch in Online
Controlled Experiments", KDD). An SRM means assignment or logging is broken and no other
result of the experiment can be trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from abllm.errors import ValidationError
from abllm.stats._types import FloatArray

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SrmResult:
    """χ² statistic, its df and p-value, expected counts, and whether SRM is flagged."""

    statistic: float
    df: int
    p_value: float
    expected: tuple[float, ...]
    flagged: bool


def srm_p_values(counts: npt.ArrayLike, weights: Sequence[float]) -> FloatArray:
    """SRM p-values for many segments at once: ``counts`` has shape ``(..., arms)``.

    Arms with weight 0 are left out of the test; units in such an arm are themselves a
    mismatch (p = 0). A segment with no units has p = 1.
    """
    c = np.asarray(counts, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if c.shape[-1] != w.size:
        raise ValidationError(f"srm: {c.shape[-1]} counts but {w.size} weights")
    if np.any(w < 0) or not np.any(w > 0):
        raise ValidationError("srm: weights must be >= 0 with at least one > 0")
    active = w > 0
    share = w[active] / w[active].sum()
    total = c[..., active].sum(axis=-1, keepdims=True)
    expected = total * share
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.sum((c[..., active] - expected) ** 2 / expected, axis=-1)
    df = int(active.sum()) - 1
    p = special.chdtrc(df, stat) if df > 0 else np.ones_like(stat)
    p = np.where(total[..., 0] > 0, p, 1.0)
    stray = c[..., ~active].sum(axis=-1) > 0
    return np.asarray(np.where(stray, 0.0, p), dtype=np.float64)


def srm(
    counts: Sequence[float], weights: Sequence[float], threshold: float = SRM_THRESHOLD
) -> SrmResult:
    """SRM check for one experiment (or segment); matches ``scipy.stats.chisquare``."""
    c = np.asarray(counts, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if c.ndim != 1 or c.size < 2:
        raise ValidationError("srm needs one count per arm and at least 2 arms")
    if np.any(c < 0):
        raise ValidationError("srm: counts must be >= 0")
    p = float(srm_p_values(c, list(weights)))
    active = w > 0
    expected = np.where(active, c[active].sum() * w / w[active].sum(), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(active, (c - expected) ** 2 / expected, 0.0)
    stat = float(terms.sum()) if p > 0 or active.all() else float("inf")
    return SrmResult(
        statistic=stat,
        df=int(active.sum()) - 1,
        p_value=p,
        expected=tuple(float(e) for e in expected),
        flagged=p < threshold,
    )


#: Intrinsic time Σp(1−p) at which the sequential SRM test is tightest (≈ 10,000 units at
#: 50/50). Fixed in advance: a data-dependent ρ would break the always-valid guarantee.
SRM_TUNING = 2500.0


@dataclass(frozen=True)
class SequentialSrm:
    """Per-arm always-valid SRM p-values (Bonferroni over arms) and the flagged arms."""

    p_values: tuple[float, ...]
    p_value: float
    flagged: tuple[int, ...]


def sequential_srm(
    observed: Sequence[float],
    expected: Sequence[float],
    variance: Sequence[float],
    threshold: float = SRM_THRESHOLD,
    tuning: float = SRM_TUNING,
) -> SequentialSrm:
    """An SRM test that may be repeated at every controller tick (one experiment's arms).

    See :func:`sequential_srm_p_values` for the method; ``flagged`` are the arms whose
    adjusted p-value is below ``threshold``.
    """
    o = np.asarray(observed, dtype=np.float64)
    if o.ndim != 1 or o.size < 2:
        raise ValidationError("sequential_srm needs one observed, expected and variance per arm")
    adjusted = sequential_srm_p_values(o, expected, variance, threshold, tuning)
    flagged = tuple(int(i) for i in np.flatnonzero(adjusted < threshold))
    return SequentialSrm(tuple(float(p) for p in adjusted), float(adjusted.min()), flagged)


def sequential_srm_p_values(
    observed: npt.ArrayLike,
    expected: npt.ArrayLike,
    variance: npt.ArrayLike,
    threshold: float = SRM_THRESHOLD,
    tuning: float = SRM_TUNING,
) -> FloatArray:
    """Always-valid per-arm SRM p-values, Bonferroni over the arms (the last axis).

    For arm j, ``S_j = O_j − E_j`` with ``E_j = Σ_units p_uj`` (the probability each unit had of
    landing in arm j, from what was served) is a martingale under "assignment works", with
    variance process ``V_j = Σ_units p_uj(1 − p_uj)``. The two-sided normal-mixture boundary of
    Howard, Ramdas, McAuliffe & Sekhon (2021, eq. 3.7; :mod:`abllm.stats.sequential`) in
    intrinsic time ``V_j`` gives an always-valid p-value per arm; Bonferroni over the k arms
    keeps the experiment's false-alarm rate at ``threshold`` over any number of looks.
    Bernoulli increments are sub-Gaussian with variance factor 1/4 = p(1 − p) at p = ½, so at
    a 50/50 split the bound is exact (Ville's inequality), and asymptotically valid otherwise.
    Per-arm p-values also say *which* arms the mismatch concerns. ``threshold`` only tunes ρ.
    """
    from abllm.stats.sequential import sequential_p_value

    o, e, v = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (observed, expected, variance))
    )
    k = o.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(v > 0, (o - e) / np.sqrt(v), 0.0)
        raw = sequential_p_value(
            z, np.maximum(v, 0.0), alpha=threshold, tuning_n=tuning, alternative="two-sided"
        )
    # An arm no unit could land in (V = 0) that has units is a certain mismatch.
    raw = np.where(v > 0, raw, np.where(o > e + 0.5, 0.0, 1.0))
    return np.asarray(np.minimum(1.0, raw * k), dtype=np.float64)
