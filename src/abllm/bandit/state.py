"""``BanditState``: an experiment's per-arm sufficient statistics, so posteriors survive restarts.

The state keeps what the posterior needs and nothing else — per arm ``n``, Σreward and
Σreward² (:class:`ArmStats`, additive like the stats package's summaries) — plus the model
(kind, prior, direction). Posteriors are derived on demand, so a restart, a JSON round trip or
a merge of two shards gives the same answer.

Two ways to feed it:

* **incremental** rewards as they arrive: :meth:`BanditState.add_rewards`,
  :meth:`BanditState.record`, or :meth:`BanditState.add_stats` for a batch's summaries;
* **snapshots**: :meth:`BanditState.with_stats` replaces every arm's statistics with a
  cumulative summary, e.g. the analysis layer's per-variant ``MeanStats``/``ProportionStats``
  of the reward metric. Snapshots are cumulative, so replacing (not adding) avoids counting a
  unit twice.

Example::

    state = BanditState.start("exp_prompt", ["control", "concise"], "bernoulli")
    state = state.add_rewards({"control": [1, 0, 0], "concise": [1, 1, 0]})
    weights = state.allocation(floor=0.05, rng=7)      # -> RuntimeState.weights
    text = state.to_json(); assert BanditState.from_json(text) == state
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, get_args

from abllm.bandit.allocation import SeedLike, allocation, choose, probability_best
from abllm.bandit.arms import ArmStats, Prior, Summary, json_field, json_number, json_prior
from abllm.bandit.posteriors import (
    BetaPosterior,
    BetaPrior,
    NormalInverseGamma,
    Posterior,
    StudentTPosterior,
)
from abllm.errors import NotFound, ValidationError

BanditKind = Literal["bernoulli", "gaussian"]
KINDS: tuple[str, ...] = get_args(BanditKind)
#: Version of the JSON layout written by :meth:`BanditState.to_json`.
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class BanditState:
    """Per-arm statistics and the model; immutable — updates return a new state.

    ``prior`` None means the kind's default: Beta(1, 1) for ``bernoulli``, the pooled
    unit-information prior (:meth:`NormalInverseGamma.unit_information`) for ``gaussian``.
    ``higher_is_better`` False makes the smallest mean the best (latency, cost).
    ``updates`` counts applied updates, ``updated_at`` is the last one's time (UTC).
    """

    experiment_id: str
    kind: BanditKind
    arms: Mapping[str, ArmStats]
    reward_metric: str | None = None
    higher_is_better: bool = True
    prior: Prior | None = None
    updates: int = 0
    updated_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.experiment_id:
            raise ValidationError("experiment_id must not be empty")
        if self.kind not in KINDS:
            raise ValidationError(f"kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if not self.arms:
            raise ValidationError("arms: a bandit needs at least one arm")
        arms = dict(self.arms)
        for vid, stats in arms.items():
            if not isinstance(stats, ArmStats):
                raise ValidationError(f"arms.{vid}: expected ArmStats, got {type(stats).__name__}")
            if self.kind == "bernoulli" and not 0 <= stats.sum <= stats.n:
                raise ValidationError(
                    f"arms.{vid}: bernoulli needs 0 <= successes <= n, "
                    f"got successes={stats.sum}, n={stats.n}"
                )
        expected: type = BetaPrior if self.kind == "bernoulli" else NormalInverseGamma
        if self.prior is not None and not isinstance(self.prior, expected):
            raise ValidationError(
                f"prior: a {self.kind} bandit needs a {expected.__name__} prior, "
                f"not {type(self.prior).__name__}"
            )
        if self.updated_at is not None and self.updated_at.tzinfo is None:
            raise ValidationError("updated_at must be timezone-aware (UTC)")
        object.__setattr__(self, "arms", MappingProxyType(arms))

    @classmethod
    def start(
        cls,
        experiment_id: str,
        variant_ids: Iterable[str],
        kind: BanditKind = "bernoulli",
        *,
        reward_metric: str | None = None,
        higher_is_better: bool = True,
        prior: Prior | None = None,
    ) -> BanditState:
        """A fresh state with no data for each variant (in the given order)."""
        ids = list(variant_ids)
        if len(set(ids)) != len(ids):
            raise ValidationError(f"variant_ids: duplicate ids in {ids}")
        return cls(
            experiment_id=experiment_id,
            kind=kind,
            arms={vid: ArmStats() for vid in ids},
            reward_metric=reward_metric,
            higher_is_better=higher_is_better,
            prior=prior,
        )

    # ----------------------------------------------------------------- posteriors and policy

    def posteriors(self, exclude: Collection[str] = ()) -> dict[str, Posterior]:
        """Each arm's posterior of its mean reward (arms in ``exclude`` left out)."""
        keep = {vid: s for vid, s in self.arms.items() if vid not in exclude}
        if self.kind == "bernoulli":
            beta = self.prior if isinstance(self.prior, BetaPrior) else BetaPrior()
            return {vid: BetaPosterior.from_counts(s.n, s.sum, beta) for vid, s in keep.items()}
        nig = (
            self.prior
            if isinstance(self.prior, NormalInverseGamma)
            # Pool over every arm (paused ones too) so the prior does not move when arms pause.
            else NormalInverseGamma.unit_information(
                (s.n, s.sum, s.sum_sq) for s in self.arms.values()
            )
        )
        return {
            vid: StudentTPosterior.from_stats(s.n, s.sum, s.sum_sq, nig) for vid, s in keep.items()
        }

    def probability_best(
        self, draws: int = 10_000, rng: SeedLike = None, exclude: Collection[str] = ()
    ) -> dict[str, float]:
        """P(best) per arm; see :func:`abllm.bandit.probability_best`."""
        return probability_best(
            self.posteriors(exclude), draws, rng, higher_is_better=self.higher_is_better
        )

    def allocation(
        self,
        draws: int = 10_000,
        floor: float = 0.05,
        rng: SeedLike = None,
        exclude: Collection[str] = (),
    ) -> dict[str, float]:
        """Weights for new units (``RuntimeState.weights``); paused arms go in ``exclude``."""
        return allocation(
            self.posteriors(exclude), draws, floor, rng, higher_is_better=self.higher_is_better
        )

    def choose(self, rng: SeedLike = None, exclude: Collection[str] = ()) -> str:
        """One per-request Thompson choice; see :func:`abllm.bandit.choose`."""
        return choose(self.posteriors(exclude), rng, higher_is_better=self.higher_is_better)

    # ----------------------------------------------------------------------------- updates

    def _known(self, variant_id: str, source: str) -> None:
        if variant_id not in self.arms:
            raise NotFound(
                f"{source}: unknown variant {variant_id!r} (arms: {', '.join(self.arms)})"
            )

    def _with_arms(self, arms: Mapping[str, ArmStats], now: datetime | None) -> BanditState:
        return replace(
            self, arms=arms, updates=self.updates + 1, updated_at=now or datetime.now(UTC)
        )

    def add_stats(self, stats: Mapping[str, Summary], now: datetime | None = None) -> BanditState:
        """Add a batch's per-arm statistics (rewards not seen before) to the state."""
        arms = dict(self.arms)
        for vid, summary in stats.items():
            self._known(vid, "stats")
            arms[vid] = arms[vid] + ArmStats.from_summary(summary)
        return self._with_arms(arms, now)

    def add_rewards(
        self, rewards: Mapping[str, Iterable[float]], now: datetime | None = None
    ) -> BanditState:
        """Add raw rewards per arm; Bernoulli rewards must be 0/1 (or bools)."""
        batch: dict[str, ArmStats] = {}
        for vid, values in rewards.items():
            self._known(vid, "rewards")
            y = [float(v) for v in values]
            if not all(math.isfinite(v) for v in y):
                raise ValidationError(f"rewards.{vid}: rewards must be finite numbers")
            batch[vid] = ArmStats.from_rewards(y)
            if self.kind == "bernoulli" and any(v not in (0.0, 1.0) for v in y):
                raise ValidationError(f"rewards.{vid}: bernoulli rewards must be 0 or 1")
        return self.add_stats(batch, now)

    def record(self, variant_id: str, reward: float, now: datetime | None = None) -> BanditState:
        """Add one reward (seed 000's ``recordResult``)."""
        return self.add_rewards({variant_id: [reward]}, now)

    def with_stats(self, stats: Mapping[str, Summary], now: datetime | None = None) -> BanditState:
        """Replace all arms' statistics with a cumulative snapshot.

        Arms missing from ``stats`` had no units in the snapshot and are reset to no data
        (the analysis layer leaves variants without units out of its summaries).
        """
        for vid in stats:
            self._known(vid, "stats")
        arms = {
            vid: ArmStats.from_summary(stats[vid]) if vid in stats else ArmStats()
            for vid in self.arms
        }
        return self._with_arms(arms, now)

    # -------------------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (the layout of :meth:`to_json`)."""
        prior: dict[str, float] | None = None
        if isinstance(self.prior, BetaPrior):
            prior = {"alpha": self.prior.alpha, "beta": self.prior.beta}
        elif isinstance(self.prior, NormalInverseGamma):
            p = self.prior
            prior = {"mu0": p.mu0, "kappa0": p.kappa0, "alpha0": p.alpha0, "beta0": p.beta0}
        return {
            "schema_version": SCHEMA_VERSION,
            "experiment_id": self.experiment_id,
            "kind": self.kind,
            "reward_metric": self.reward_metric,
            "higher_is_better": self.higher_is_better,
            "prior": prior,
            "arms": {
                vid: {"n": s.n, "sum": s.sum, "sum_sq": s.sum_sq} for vid, s in self.arms.items()
            },
            "updates": self.updates,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }

    def to_json(self) -> str:
        """The state as JSON text; :meth:`from_json` reads it back to an equal state."""
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BanditState:
        """Rebuild a state from :meth:`to_dict`'s layout; errors name the bad field."""
        if not isinstance(data, Mapping):
            raise ValidationError("bandit state must be a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValidationError(f"schema_version: expected {SCHEMA_VERSION}, got {version!r}")
        kind = json_field(data, "kind", str)
        raw_arms = json_field(data, "arms", Mapping)
        arms = {
            str(vid): ArmStats(
                json_number(a, f"arms.{vid}", "n"),
                json_number(a, f"arms.{vid}", "sum"),
                json_number(a, f"arms.{vid}", "sum_sq"),
            )
            for vid, a in raw_arms.items()
        }
        when = data.get("updated_at")
        try:
            updated_at = datetime.fromisoformat(when) if when is not None else None
        except (TypeError, ValueError):
            raise ValidationError(f"updated_at: not an ISO-8601 time: {when!r}") from None
        metric = data.get("reward_metric")
        if metric is not None and not isinstance(metric, str):
            raise ValidationError("reward_metric must be a string or null")
        return cls(
            experiment_id=json_field(data, "experiment_id", str),
            kind=kind,  # checked in __post_init__
            arms=arms,
            reward_metric=metric,
            higher_is_better=json_field(data, "higher_is_better", bool),
            prior=json_prior(kind, data.get("prior")),
            updates=json_field(data, "updates", int),
            updated_at=updated_at,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> BanditState:
        """Parse :meth:`to_json`'s output."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"bandit state is not valid JSON: {exc}") from None
        return cls.from_dict(data)
