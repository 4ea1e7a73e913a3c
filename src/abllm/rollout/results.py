"""What the policy needs to know about live data: one check per guardrail and arm.

The statistics (one-sided sequential tests with a minimum sample) are computed by the analysis
(``abllm.analysis`` on ``abllm.stats``); this module only carries their verdicts to the pure
policy, so the policy can be tested without a store and the numbers have one source of truth.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from abllm.config import Guardrail

if TYPE_CHECKING:
    from abllm.bandit import ArmStats


@dataclass(frozen=True)
class GuardrailCheck:
    """One guardrail on one treatment arm, as measured now.

    ``breached`` is the sequential test's verdict (already requiring the guardrail's minimum
    sample); ``value`` and ``bound`` are the metric's estimate and the limit it is held to
    (``upper``: the limit is a maximum). ``units`` counts the arm's units with data.
    """

    metric: str
    variant: str
    breached: bool
    value: float
    bound: float
    units: int
    action: str = "pause"
    p_value: float = float("nan")
    upper: bool = True
    reason: str = ""

    @property
    def within(self) -> bool:
        """The estimate is on the good side of the bound (False when either is unknown)."""
        if math.isnan(self.value) or math.isnan(self.bound):
            return False
        return self.value <= self.bound if self.upper else self.value >= self.bound

    def describe(self) -> str:
        """One line for audit reasons and alerts."""
        op = ">" if self.upper else "<"
        text = (
            f"{self.metric} of {self.variant} = {self.value:.4g} {op} bound {self.bound:.4g} "
            f"(n={self.units}"
        )
        if not math.isnan(self.p_value):
            text += f", sequential p={self.p_value:.2g}"
        text += ")"
        return f"{text}: {self.reason}" if self.reason else text


@dataclass(frozen=True)
class LiveResults:
    """Live figures of one experiment version at ``as_of``.

    ``units`` are units per arm; ``checks`` one per guardrail and treatment arm that has data;
    ``winner`` the variant the analysis recommends shipping, if any; ``rewards`` the bandit's
    per-arm reward statistics (experiments with a ``bandit:`` block).
    """

    experiment_id: str
    control: str
    units: Mapping[str, int] = field(default_factory=dict)
    checks: tuple[GuardrailCheck, ...] = ()
    winner: str | None = None
    as_of: datetime | None = None
    rewards: Mapping[str, ArmStats] = field(default_factory=dict)

    def checks_for(self, guardrail: Guardrail, variant: str) -> list[GuardrailCheck]:
        """The checks of ``guardrail`` on ``variant`` (matched by metric name)."""
        return [c for c in self.checks if c.metric == guardrail.metric and c.variant == variant]

    def to_json(self) -> dict[str, Any]:
        """JSON for logs and the status command."""
        return {
            "experiment_id": self.experiment_id,
            "control": self.control,
            "units": dict(self.units),
            "winner": self.winner,
            "checks": [
                {
                    "metric": c.metric,
                    "variant": c.variant,
                    "breached": c.breached,
                    "value": None if math.isnan(c.value) else c.value,
                    "bound": None if math.isnan(c.bound) else c.bound,
                    "units": c.units,
                    "action": c.action,
                    "p_value": None if math.isnan(c.p_value) else c.p_value,
                }
                for c in self.checks
            ],
        }
