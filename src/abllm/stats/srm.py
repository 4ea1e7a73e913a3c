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
