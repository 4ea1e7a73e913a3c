"""The optional ``bandit:`` block of an experiment: Thompson-sampling traffic allocation.

::

    bandit:
      reward_metric: thumbs_up     # a metric of this experiment (proportion or mean)
      kind: bernoulli              # bernoulli | gaussian
      floor: 0.05                  # every arm keeps at least 5 % of new units
      update_every_s: 300          # how often the controller recomputes the weights

The bandit moves ``RuntimeState.weights``, so it only steers units not yet assigned; units
already in a variant stay there (sticky assignments).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from abllm.config.metrics import Metric


class BanditConfig(BaseModel):
    """Thompson sampling on one reward metric; see the module docstring for the YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reward_metric: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    kind: Literal["bernoulli", "gaussian"] = "bernoulli"
    floor: float = Field(
        default=0.05, ge=0, lt=1, description="minimum share of new units for every arm"
    )
    update_every_s: float = Field(default=300.0, gt=0, description="seconds between weight updates")

    def check(self, metrics: Sequence[Metric], n_variants: int) -> list[str]:
        """Problems with this block in its experiment, one line each naming the field.

        ``reward_metric`` must name one of ``metrics`` of a type the posteriors can use
        (``proportion`` for ``bernoulli``; ``mean`` or ``proportion`` for ``gaussian``), and
        ``floor`` × arms must not exceed 1.
        """
        problems: list[str] = []
        by_name = {m.name: m for m in metrics}
        metric = by_name.get(self.reward_metric)
        allowed = ("proportion",) if self.kind == "bernoulli" else ("mean", "proportion")
        if metric is None:
            known = ", ".join(sorted(by_name)) or "none"
            problems.append(
                f"bandit.reward_metric: {self.reward_metric!r} is not a metric of this "
                f"experiment (metrics: {known})"
            )
        elif metric.type not in allowed:
            problems.append(
                f"bandit.reward_metric: a {self.kind} bandit needs a "
                f"{' or '.join(allowed)} metric; {metric.name!r} is {metric.type}"
            )
        if n_variants > 0 and self.floor * n_variants > 1:
            problems.append(
                f"bandit.floor: {self.floor} x {n_variants} variants exceeds 1 "
                f"(at most {1 / n_variants:.4g})"
            )
        return problems
