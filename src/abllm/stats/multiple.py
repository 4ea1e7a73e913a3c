"""Multiple-testing correction over metrics × arms (× segments), scope chosen by the caller.

A *family* is the set of p-values corrected together; ``groups`` labels each p-value's family
(e.g. the segment, or the metric, or nothing for one family over everything). Holm (1979,
"A simple sequentially rejective multiple test procedure") controls the family-wise error
rate; Benjamini & Hochberg (1995) control the false discovery rate. Both match
``statsmodels.stats.multitest.multipletests`` (``holm``, ``fdr_bh``). Missing p-values (NaN:
comparisons with an error code) are left out of their family and stay NaN.

Always-valid (sequential) p-values can be corrected the same way: Holm is valid for any
p-values, BH under independence or positive dependence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from abllm.errors import ValidationError
from abllm.stats._types import FloatArray, arr
from abllm.stats.results import Comparison, ComparisonTable

Correction: TypeAlias = Literal["holm", "bh", "none"]


def adjust_p_values(
    p_values: FloatArray | Sequence[float],
    method: Correction = "holm",
    groups: npt.ArrayLike | None = None,
) -> FloatArray:
    """Adjusted p-values of the same shape, corrected within each family of ``groups``."""
    p = arr(p_values)  # type: ignore[arg-type]
    if method == "none":
        return p.copy()
    if method not in ("holm", "bh"):
        raise ValidationError(f"correction must be holm, bh or none, not {method!r}")
    flat = p.reshape(-1)
    if groups is None:
        codes = np.zeros(flat.size, dtype=np.intp)
    else:
        labels = np.asarray(groups).reshape(-1)
        if labels.size != flat.size:
            raise ValidationError(
                f"groups has {labels.size} labels for {flat.size} p-values; they must match"
            )
        codes = np.unique(labels, return_inverse=True)[1].reshape(-1)
    valid = np.flatnonzero(np.isfinite(flat))
    out = np.full(flat.size, np.nan)
    if valid.size == 0:
        return out.reshape(p.shape)
    pv, gv = flat[valid], codes[valid]
    order = np.lexsort((pv, gv))
    ps, gs = pv[order], gv[order]
    counts = np.bincount(gs)
    starts = np.cumsum(counts) - counts
    m = counts[gs].astype(np.float64)
    rank = np.arange(ps.size) - starts[gs]  # 0-based rank within the family
    families = np.split(np.arange(ps.size), starts[counts > 0][1:])
    if method == "holm":
        step = np.minimum(1.0, (m - rank) * ps)
        parts = [np.maximum.accumulate(step[f]) for f in families]
    else:
        step = np.minimum(1.0, ps * m / (rank + 1.0))
        parts = [np.minimum.accumulate(step[f][::-1])[::-1] for f in families]
    out[valid[order]] = np.concatenate(parts)
    return out.reshape(p.shape)


def adjust_table(
    table: ComparisonTable, method: Correction = "holm", groups: npt.ArrayLike | None = None
) -> ComparisonTable:
    """Correct a table's decision p-values; ``groups`` has the table's shape (or is None)."""
    adjusted = adjust_p_values(table.decision_p_value, method, groups)
    return table.with_adjusted(adjusted)


def adjust_comparisons(
    comparisons: Sequence[Comparison],
    method: Correction = "holm",
    groups: Sequence[Hashable] | None = None,
) -> list[Comparison]:
    """Copies of ``comparisons`` with ``adjusted_p_value`` and ``significant`` updated.

    Example — correct over all metrics × arms within each segment::

        adjust_comparisons(results, "holm", groups=[r_segment for ...])
    """
    p = np.array([c.decision_p_value for c in comparisons], dtype=np.float64)
    labels = None
    if groups is not None:
        index: dict[Hashable, int] = {}
        labels = np.array([index.setdefault(g, len(index)) for g in groups], dtype=np.intp)
    adjusted = adjust_p_values(p, method, labels).tolist()
    return [
        dataclasses.replace(
            c,
            adjusted_p_value=a,
            significant=bool(c.error is None and a < c.alpha),
        )
        for c, a in zip(comparisons, adjusted, strict=True)
    ]
