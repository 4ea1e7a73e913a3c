"""Simulation: Thompson sampling loses less than a uniform split on a 3-arm Bernoulli problem.

Regret is the pseudo-regret Σ (p_best − p_arm) over units, the quantity Thompson sampling
minimises (Russo et al. 2018, §2; Chapelle & Li 2011, §3). Seeded and bounded (< 5 s).
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from abllm.bandit import BanditState, choose

RATES = {"control": 0.10, "concise": 0.12, "structured": 0.18}
BEST = max(RATES.values())


def _batched(seed: int, bandit: bool, batches: int = 40, per_batch: int = 250) -> float:
    """Batched Thompson: the controller recomputes weights after every batch of new units."""
    rng = np.random.default_rng(seed)
    state = BanditState.start("sim", list(RATES), "bernoulli")
    regret = 0.0
    for _ in range(batches):
        weights = state.allocation(floor=0.05, rng=rng) if bandit else dict.fromkeys(RATES, 1 / 3)
        counts = rng.multinomial(per_batch, list(weights.values()))
        batch = {}
        for (arm, p), n in zip(RATES.items(), counts, strict=True):
            wins = int(rng.binomial(n, p))
            batch[arm] = [1.0] * wins + [0.0] * (int(n) - wins)
            regret += n * (BEST - p)
        state = state.add_rewards(batch)
    return regret


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_batched_thompson_regret_is_far_below_uniform(seed: int) -> None:
    started = time.perf_counter()
    uniform = _batched(seed, bandit=False)
    thompson = _batched(seed, bandit=True)
    assert time.perf_counter() - started < 5.0
    assert uniform == pytest.approx(10_000 * (BEST - np.mean(list(RATES.values()))), rel=0.05)
    assert thompson < 0.5 * uniform


def test_per_request_choice_learns_the_best_arm() -> None:
    """Seed 000's selectVariant/recordResult loop, on the BanditState API."""
    rng = np.random.default_rng(7)
    state = BanditState.start("sim", list(RATES), "bernoulli")
    picks = []
    for _ in range(3000):
        arm = choose(state.posteriors(), rng)
        picks.append(arm)
        state = state.record(arm, float(rng.random() < RATES[arm]))
    late = picks[-1000:]
    assert late.count("structured") / len(late) > 0.6
    regret = sum(BEST - RATES[a] for a in picks)
    uniform = len(picks) * (BEST - np.mean(list(RATES.values())))
    assert regret < 0.6 * uniform
    weights = state.allocation(floor=0.05, rng=rng)
    assert max(weights, key=weights.__getitem__) == "structured"
    assert min(weights.values()) >= 0.05 - 1e-12
