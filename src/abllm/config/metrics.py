"""Metric definitions and the decision rule: the experiment's pre-registration."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EventType = Literal["exposure", "llm_call", "feedback", "outcome"]

#: Fields whose metrics default to ``direction: decrease`` when the config does not say.
LOWER_IS_BETTER = frozenset(
    {
        "latency_ms",
        "ttft_ms",
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "error",
        "edit_distance",
        "retried",
        "abandoned",
        "fallback",
    }
)


class Metric(BaseModel):
    """One metric, computed per unit first and then compared across variants.

    - ``mean``: per-unit aggregation (``aggregation``) of ``field``, averaged over units with data.
    - ``proportion``: a unit is a success if any of its events has ``field`` true.
    - ``ratio``: Σ value / Σ events over units (per-request means; delta method).
    - ``quantile``: the ``quantile`` of ``field`` over events, unit-clustered CIs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: Literal["mean", "proportion", "ratio", "quantile"] = "mean"
    event: EventType = "feedback"
    field: str = Field(min_length=1, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    aggregation: Literal["sum", "mean", "count", "max", "last"] = "mean"
    denominator: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="ratio only: sum this field for the denominator instead of counting events",
    )
    quantile: float | None = Field(default=None, gt=0, lt=1)
    direction: Literal["increase", "decrease"] = "increase"
    role: Literal["primary", "secondary", "guardrail"] = "secondary"
    exclude_errors: bool | None = Field(
        default=None,
        description="drop errored llm_call events; default true for quality metrics",
    )
    fill_missing: bool = Field(
        default=False,
        description="count exposed units without data as 0 (a failure for proportions)",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_direction(cls, data: Any) -> Any:
        """Latency, cost, tokens, errors, edits, retries and abandons are better when lower."""
        if (
            isinstance(data, dict)
            and "direction" not in data
            and data.get("field") in LOWER_IS_BETTER
        ):
            return {**data, "direction": "decrease"}
        return data

    @model_validator(mode="after")
    def _check_type_fields(self) -> Metric:
        if self.type == "quantile" and self.quantile is None:
            raise ValueError("quantile metrics need `quantile` (e.g. 0.95)")
        if self.type != "quantile" and self.quantile is not None:
            raise ValueError("`quantile` is only allowed when type is quantile")
        if self.denominator is not None and self.type != "ratio":
            raise ValueError("`denominator` is only allowed when type is ratio")
        return self


class DecisionRule(BaseModel):
    """Thresholds fixed before launch: how the recommendation is reached.

    The defaults follow the seed articles: alpha 0.05, power 0.8, at least 1,000 units per arm,
    and a treatment ships only if its error rate is at most 1.1x and its p95 latency at most 1.2x
    the control's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    power: float = Field(default=0.8, gt=0, lt=1)
    mde: float | None = Field(default=None, gt=0, description="minimum detectable effect")
    mde_type: Literal["relative", "absolute"] = "relative"
    min_units_per_arm: int = Field(default=1000, ge=0)
    max_duration_days: float | None = Field(default=None, gt=0)
    sequential: bool = Field(default=True, description="decide on always-valid p-values")
    correction: Literal["holm", "bh", "none"] = "holm"
    max_error_rate_ratio: float = Field(default=1.1, gt=0)
    max_p95_latency_ratio: float = Field(default=1.2, gt=0)
    srm_p_value: float = Field(default=0.001, gt=0, lt=1)
