"""Seeded, vectorised simulations: false-positive rate, peeking, and CI coverage.

Each simulation draws per-unit data with numpy, reduces it to the sufficient statistics the
store would send, and analyses every experiment in one vectorised call.
"""

from __future__ import annotations

import numpy as np

from abllm.stats import (
    CupedStats,
    Hypothesis,
    MeanStats,
    ProportionStats,
    RatioStats,
    TestConfig,
    compare_many,
)

EXPERIMENTS = 2000


def _mean_stats(y: np.ndarray) -> MeanStats:
    """Per-experiment summaries of per-unit values along the last axis."""
    return MeanStats(float(y.shape[-1]), y.sum(axis=-1), (y * y).sum(axis=-1))


def _ratio_stats(num: np.ndarray, den: np.ndarray) -> RatioStats:
    return RatioStats(
        np.full(num.shape[0], num.shape[1], dtype=float),
        num.sum(1),
        den.sum(1),
        (num * num).sum(1),
        (den * den).sum(1),
        (num * den).sum(1),
    )


def _units(
    rng: np.random.Generator, shape: tuple[int, int], per_call: float
) -> tuple[np.ndarray, np.ndarray]:
    calls = rng.poisson(3.0, shape) + 1.0
    speed = rng.lognormal(0.0, 0.3, shape)
    return rng.gamma(calls * 2.0, per_call * speed / 2.0), calls


def test_aa_fixed_horizon_false_positive_rate() -> None:
    rng = np.random.default_rng(101)
    y = rng.lognormal(1.0, 0.6, (2, EXPERIMENTS, 200))  # skewed per-unit metric
    means = compare_many(_mean_stats(y[0]), _mean_stats(y[1]))
    conv = rng.binomial(1, 0.08, (2, EXPERIMENTS, 1000)).sum(axis=2).astype(float)
    props = compare_many(ProportionStats(1000.0, conv[0]), ProportionStats(1000.0, conv[1]))
    num_c, den_c = _units(rng, (EXPERIMENTS, 300), 800.0)
    num_t, den_t = _units(rng, (EXPERIMENTS, 300), 800.0)
    ratios = compare_many(_ratio_stats(num_c, den_c), _ratio_stats(num_t, den_t))
    for name, table in (("mean", means), ("proportion", props), ("ratio", ratios)):
        fpr = float(np.mean(table.p_value < 0.05))
        assert 0.04 <= fpr <= 0.06, (name, fpr)
        assert np.all(table.error_code == 0)


def test_peeking_twenty_times_sequential_stays_valid_naive_does_not() -> None:
    rng = np.random.default_rng(202)
    looks, per_look = 20, 50
    y = rng.normal(3.8, 1.0, (2, EXPERIMENTS, looks, per_look))
    s, ss = np.cumsum(y.sum(3), axis=2), np.cumsum((y * y).sum(3), axis=2)
    n = per_look * np.arange(1.0, looks + 1)  # units per arm at each look
    ctl, trt = MeanStats(n, s[0], ss[0]), MeanStats(n, s[1], ss[1])
    two = compare_many(ctl, trt, TestConfig(sequential_tuning_n=2000))
    naive_fpr = float(np.mean((two.p_value < 0.05).any(axis=1)))
    seq_fpr = float(np.mean((two.seq_p_value < 0.05).any(axis=1)))
    assert seq_fpr <= 0.05, seq_fpr
    assert naive_fpr > 0.10, naive_fpr  # the peeking problem, measured (≈ 0.2–0.25)
    assert float(np.mean(two.p_value[:, -1] < 0.05)) < 0.065  # a single look is fine
    one = compare_many(
        ctl, trt, TestConfig(hypothesis=Hypothesis("greater"), sequential_tuning_n=2000)
    )
    assert float(np.mean((one.seq_p_value < 0.05).any(axis=1))) <= 0.05


def test_confidence_sequence_covers_at_every_look() -> None:
    rng = np.random.default_rng(303)
    looks, per_look, effect = 20, 50, 0.25
    y_c = rng.normal(3.8, 1.0, (EXPERIMENTS, looks, per_look))
    y_t = rng.normal(3.8 + effect, 1.2, (EXPERIMENTS, looks, per_look))
    n = per_look * np.arange(1.0, looks + 1)

    def cum(y: np.ndarray) -> MeanStats:
        return MeanStats(n, np.cumsum(y.sum(2), axis=1), np.cumsum((y * y).sum(2), axis=1))

    t = compare_many(cum(y_c), cum(y_t), TestConfig(sequential_tuning_n=2000))
    always = np.all((t.seq_diff_ci_lower <= effect) & (effect <= t.seq_diff_ci_upper), axis=1)
    assert float(np.mean(always)) >= 0.95


def test_ci_coverage_of_a_known_effect() -> None:
    rng = np.random.default_rng(404)
    y_c = rng.lognormal(1.0, 0.5, (EXPERIMENTS, 300))
    y_t = 1.1 * rng.lognormal(1.0, 0.5, (EXPERIMENTS, 300))  # +10 %
    true_mean = np.exp(1.0 + 0.5**2 / 2)
    t = compare_many(_mean_stats(y_c), _mean_stats(y_t))
    diff_cov = np.mean((t.diff_ci_lower <= 0.1 * true_mean) & (0.1 * true_mean <= t.diff_ci_upper))
    rel_cov = np.mean((t.rel_ci_lower <= 0.1) & (t.rel_ci_upper >= 0.1))
    assert 0.935 <= diff_cov <= 0.965, diff_cov
    assert 0.935 <= rel_cov <= 0.965, rel_cov

    num_c, den_c = _units(rng, (EXPERIMENTS, 300), 800.0)
    num_t, den_t = _units(rng, (EXPERIMENTS, 300), 760.0)
    true_diff = (760.0 - 800.0) * np.exp(0.3**2 / 2)  # E[speed] for lognormal(0, 0.3)
    r = compare_many(_ratio_stats(num_c, den_c), _ratio_stats(num_t, den_t))
    ratio_cov = np.mean((r.diff_ci_lower <= true_diff) & (true_diff <= r.diff_ci_upper))
    assert 0.935 <= ratio_cov <= 0.965, ratio_cov


def test_cuped_coverage_and_variance_reduction() -> None:
    rng = np.random.default_rng(505)
    shape = (EXPERIMENTS, 400)
    x_c, x_t = rng.gamma(4.0, 1.0, shape), rng.gamma(4.0, 1.0, shape)
    y_c = 0.8 * x_c + rng.normal(0, 1.0, shape)
    y_t = 0.8 * x_t + rng.normal(0, 1.0, shape) + 0.1

    def cuped(y: np.ndarray, x: np.ndarray) -> CupedStats:
        return CupedStats(400.0, y.sum(1), (y * y).sum(1), x.sum(1), (x * x).sum(1), (x * y).sum(1))

    adj = compare_many(cuped(y_c, x_c), cuped(y_t, x_t))
    plain = compare_many(_mean_stats(y_c), _mean_stats(y_t))
    coverage = np.mean((adj.diff_ci_lower <= 0.1) & (adj.diff_ci_upper >= 0.1))
    assert 0.935 <= coverage <= 0.965, coverage
    assert float(np.median(adj.diff_se / plain.diff_se)) < 0.6  # ρ² ≈ 0.72 → se × ≈ 0.53
