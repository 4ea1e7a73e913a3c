"""Shared array aliases and small numeric helpers for the stats package.

Every function in :mod:`abllm.stats` accepts plain floats *or* numpy arrays in the fields of the
summary dataclasses; arrays broadcast, so one call can analyse many metrics, arms and segments.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import numpy as np
import numpy.typing as npt

FloatArray: TypeAlias = npt.NDArray[np.float64]
#: A scalar or an array of values; fields of summaries accept either.
Value: TypeAlias = float | FloatArray
#: Alternative hypothesis: ``greater`` means H1 says the effect is above the null value.
Alternative: TypeAlias = Literal["two-sided", "greater", "less"]


def arr(x: Value) -> FloatArray:
    """``x`` as a float64 array (no copy when it already is one)."""
    return np.asarray(x, dtype=np.float64)
