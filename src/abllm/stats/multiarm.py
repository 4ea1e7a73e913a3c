"""Every treatment against the control, corrected for the number of arms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from abllm.errors import ValidationError
from abllm.stats._types import arr
from abllm.stats.compare import S, compare_many
from abllm.stats.config import TestConfig
from abllm.stats.multiple import Correction, adjust_table
from abllm.stats.proportions import ChiSquareResult, proportions_chi2
from abllm.stats.results import Comparison
from abllm.stats.summaries import ProportionStats

_DEFAULT = TestConfig()


@dataclass(frozen=True)
class ArmsAnalysis:
    """Per-treatment comparisons (keyed like the input) after correction across the arms.

    ``omnibus`` is the k-arm χ² test for proportion metrics (None otherwise).
    """

    comparisons: dict[str, Comparison]
    correction: Correction
    omnibus: ChiSquareResult | None


def analyze_arms(
    control: S,
    treatments: Mapping[str, S],
    config: TestConfig = _DEFAULT,
    correction: Correction = "holm",
) -> ArmsAnalysis:
    """Compare each treatment with ``control`` in one vectorised call, then correct.

    The family is the treatments of this one metric; to correct over metrics × arms (the
    scope is the analysis layer's choice) collect the comparisons and use
    :func:`abllm.stats.adjust_comparisons` with ``correction="none"`` here.

    >>> from abllm.stats import ProportionStats
    >>> res = analyze_arms(ProportionStats(5000, 500),
    ...                    {"b": ProportionStats(5000, 580), "c": ProportionStats(5000, 505)})
    >>> res.comparisons["b"].significant, res.comparisons["c"].significant
    (True, False)
    """
    if not treatments:
        raise ValidationError("analyze_arms needs at least one treatment")
    names = list(treatments)
    arms: list[S] = [treatments[k] for k in names]
    if any(type(a) is not type(control) for a in arms):
        raise ValidationError("analyze_arms: every arm must be the same kind of summary")
    stacked = type(control).stack(arms)
    table = adjust_table(compare_many(control, stacked, config), correction)
    omnibus = None
    if isinstance(control, ProportionStats):
        all_arms: list[ProportionStats] = [control]
        all_arms += [a for a in arms if isinstance(a, ProportionStats)]
        if all(np.all(arr(a.n) > 0) for a in all_arms):
            omnibus = proportions_chi2(all_arms)
    return ArmsAnalysis(dict(zip(names, table.rows(), strict=True)), correction, omnibus)
