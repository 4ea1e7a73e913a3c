"""abllm.bandit — Thompson sampling that shifts traffic toward the better arm.

Pure (numpy/scipy, no I/O) apart from :mod:`abllm.bandit.persist`'s file helper.

::

    from abllm.bandit import BanditState

    state = BanditState.start("exp_prompt", ["control", "concise", "structured"], "bernoulli")
    state = state.with_stats(summaries)          # analysis' per-variant ProportionStats
    weights = state.allocation(floor=0.05, rng=seed)
    runtime = dataclasses.replace(runtime, weights=weights)   # steers NEW units only

Models: Beta-Bernoulli and normal-inverse-gamma Gaussian posteriors
(:mod:`abllm.bandit.posteriors`); P(best) by Monte Carlo, exploration floor and per-request
choice (:mod:`abllm.bandit.allocation`); persisted sufficient statistics
(:class:`BanditState`, JSON). Sources: Chapelle & Li 2011; Russo et al. 2018, "A Tutorial on
Thompson Sampling"; Scott 2010; Murphy 2007 for the conjugate updates.

Use a bandit to *optimise* (less exposure to the worse arm); use a fixed split to *measure*:
with moving weights the arms are no longer comparable over time and the SRM check, which
assumes fixed weights, does not apply (seed 000, "Multi-Armed Bandit as an Alternative").
"""

from abllm.bandit.allocation import (
    SeedLike,
    allocation,
    apply_floor,
    choose,
    probability_best,
)
from abllm.bandit.arms import ArmStats
from abllm.bandit.configure import state_for_experiment
from abllm.bandit.persist import load_state, save_state
from abllm.bandit.posteriors import (
    BetaPosterior,
    BetaPrior,
    NormalInverseGamma,
    Posterior,
    StudentTPosterior,
)
from abllm.bandit.state import KINDS, SCHEMA_VERSION, BanditKind, BanditState

__all__ = [
    "KINDS",
    "SCHEMA_VERSION",
    "ArmStats",
    "BanditKind",
    "BanditState",
    "BetaPosterior",
    "BetaPrior",
    "NormalInverseGamma",
    "Posterior",
    "SeedLike",
    "StudentTPosterior",
    "allocation",
    "apply_floor",
    "choose",
    "load_state",
    "probability_best",
    "save_state",
    "state_for_experiment",
]
