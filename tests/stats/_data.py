"""Fixed data sets shared by the stats tests (seeded, deterministic)."""

from __future__ import annotations

import numpy as np

from abllm.stats import CupedStats, MeanStats, RatioStats


def lognormal_arms(seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit ratings-like values for control and treatment (unequal n and variance)."""
    rng = np.random.default_rng(seed)
    return rng.lognormal(1.2, 0.5, 340), rng.lognormal(1.26, 0.6, 410)


def mean_pair(seed: int = 7) -> tuple[MeanStats, MeanStats]:
    a, b = lognormal_arms(seed)
    return MeanStats.from_values(a), MeanStats.from_values(b)


def ratio_units(rng: np.random.Generator, n: int, per_call: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit (total latency, calls): calls vary by unit and latency is unit-correlated."""
    calls = rng.poisson(4.0, n) + 1
    unit_speed = rng.lognormal(0.0, 0.3, n)
    latency = rng.gamma(shape=calls * 2.0, scale=per_call * unit_speed / 2.0)
    return latency, calls.astype(float)


def ratio_pair(seed: int = 11) -> tuple[RatioStats, RatioStats]:
    rng = np.random.default_rng(seed)
    num_c, den_c = ratio_units(rng, 500, 800.0)
    num_t, den_t = ratio_units(rng, 520, 760.0)
    return RatioStats.from_values(num_c, den_c), RatioStats.from_values(num_t, den_t)


def cuped_data(
    seed: int = 5,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(y, x) per arm, with x a strongly correlated pre-exposure covariate."""
    rng = np.random.default_rng(seed)
    x_c, x_t = rng.gamma(4.0, 1.0, 600), rng.gamma(4.0, 1.0, 640)
    y_c = 0.8 * x_c + rng.normal(0, 1.0, 600) + 1.0
    y_t = 0.8 * x_t + rng.normal(0, 1.0, 640) + 1.15
    return (y_c, x_c), (y_t, x_t)


def cuped_pair(seed: int = 5) -> tuple[CupedStats, CupedStats]:
    (y_c, x_c), (y_t, x_t) = cuped_data(seed)
    return CupedStats.from_values(y_c, x_c), CupedStats.from_values(y_t, x_t)
