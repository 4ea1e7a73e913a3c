"""Thompson sampling: how likely each arm is best, traffic weights with a floor, one choice.

Thompson sampling plays each arm with the posterior probability that it is the best arm
(Thompson 1933; Chapelle & Li 2011; Russo et al. 2018, §1 and §3). Serving traffic in
proportion to that probability — "randomized probability matching" (Scott 2010, "A modern
Bayesian look at the multi-armed bandit", Appl. Stoch. Models Bus. Ind. 26) — is the batched
form: the rollout controller recomputes :func:`allocation` every few minutes and applies it as
``RuntimeState.weights``.

Those weights only steer **new** units. A unit that was already assigned keeps its variant (the
sticky-assignment store of the rollout/assign layer), so a bandit never reshuffles users; it
changes which arm the next units land in.

The probability of being best has no closed form beyond two arms, so it is estimated by Monte
Carlo: ``draws`` joint samples of every arm's mean, and the share of samples in which each arm
is the largest. The standard error of each share is at most 0.5/√draws (0.005 at 10,000).
Deterministic under a seed: pass an ``int`` or a ``numpy.random.Generator``. A controller
that wants reproducible yet changing weights can seed with the state's update counter
(``state.allocation(rng=state.updates)``); per-request callers should reuse one Generator
rather than build one per call.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from abllm.bandit.posteriors import Posterior
from abllm.errors import ValidationError

#: Seed for the generator: an int, an existing Generator, or None for fresh entropy.
SeedLike = int | np.random.Generator | None

MAX_DRAWS = 10_000_000


def _generator(rng: SeedLike) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _check_arms(posteriors: Mapping[str, Posterior]) -> list[str]:
    ids = list(posteriors)
    if not ids:
        raise ValidationError("posteriors: need at least one arm")
    return ids


def probability_best(
    posteriors: Mapping[str, Posterior],
    draws: int = 10_000,
    rng: SeedLike = None,
    *,
    higher_is_better: bool = True,
) -> dict[str, float]:
    """P(arm is best) for each arm, by ``draws`` vectorised Monte Carlo samples.

    Example::

        probability_best({"a": BetaPosterior(31, 171), "b": BetaPosterior(41, 161)}, rng=0)
        # {'a': 0.1..., 'b': 0.8...}
    """
    ids = _check_arms(posteriors)
    if not 1 <= draws <= MAX_DRAWS:
        raise ValidationError(f"draws must be between 1 and {MAX_DRAWS:,}, got {draws}")
    gen = _generator(rng)
    samples = np.empty((len(ids), draws), dtype=np.float64)
    for i, arm in enumerate(ids):
        samples[i] = posteriors[arm].sample(gen, draws)
    best = np.argmax(samples if higher_is_better else -samples, axis=0)
    counts = np.bincount(best, minlength=len(ids))
    return {arm: float(counts[i]) / draws for i, arm in enumerate(ids)}


def apply_floor(shares: Mapping[str, float], floor: float) -> dict[str, float]:
    """Give every arm at least ``floor`` of the traffic, keep the rest in proportion.

    Arms below the floor are raised to it and the remaining mass is shared among the other
    arms in proportion to their shares; this repeats until no arm falls below (at most one
    round per arm). The result sums to 1. A floor keeps exploring arms that look bad early
    — the posterior can be wrong while data is thin — and keeps every arm's sample growing
    for the eventual fixed-split analysis.
    """
    ids = list(shares)
    k = len(ids)
    if k == 0:
        raise ValidationError("shares: need at least one arm")
    if not (floor >= 0 and floor * k <= 1 + 1e-12):
        raise ValidationError(
            f"floor must be >= 0 and floor x arms <= 1; got floor={floor} with {k} arms "
            f"(at most {1 / k:.4g})"
        )
    p = np.array([shares[i] for i in ids], dtype=np.float64)
    if np.any(~np.isfinite(p)) or np.any(p < 0):
        raise ValidationError("shares must be finite numbers >= 0")
    fixed = np.zeros(k, dtype=bool)
    w = np.empty(k, dtype=np.float64)
    while True:
        free = ~fixed
        free_mass = max(1.0 - floor * fixed.sum(), 0.0)
        total = p[free].sum()
        w[fixed] = floor
        if free.any():
            w[free] = free_mass * (p[free] / total if total > 0 else 1.0 / free.sum())
        newly = free & (w < floor)
        if not newly.any():
            break
        fixed |= newly
    return {arm: float(w[i]) for i, arm in enumerate(ids)}


def allocation(
    posteriors: Mapping[str, Posterior],
    draws: int = 10_000,
    floor: float = 0.05,
    rng: SeedLike = None,
    *,
    higher_is_better: bool = True,
) -> dict[str, float]:
    """Traffic weights for new units: P(best) per arm with an exploration ``floor``.

    The weights sum to 1 and are meant for ``RuntimeState.weights`` (which the assignment
    normalises anyway). Leave paused arms out of ``posteriors``: they get no weight.

    Example::

        weights = allocation(state.posteriors(), floor=0.05, rng=42)
        runtime = dataclasses.replace(runtime, weights=weights)
    """
    best = probability_best(posteriors, draws, rng, higher_is_better=higher_is_better)
    return apply_floor(best, floor)


def choose(
    posteriors: Mapping[str, Posterior],
    rng: SeedLike = None,
    *,
    higher_is_better: bool = True,
) -> str:
    """One Thompson-sampling choice: draw each arm's mean once, return the best arm's id.

    This is seed 000's ``selectVariant`` for callers that pick per request. It is not sticky:
    use it for per-request decisions (which prompt for this call), not to assign units.
    """
    ids = _check_arms(posteriors)
    gen = _generator(rng)
    values = np.array([float(posteriors[arm].sample(gen, 1)[0]) for arm in ids])
    return ids[int(np.argmax(values if higher_is_better else -values))]
