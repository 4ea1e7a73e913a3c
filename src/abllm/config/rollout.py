"""Rollout plans and guardrails: how traffic moves and what stops it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(_Strict):
    """One step of a rollout plan.

    ``traffic`` is the share of eligible units in the experiment (percent); ``weights`` the
    per-arm split by variant id. A stage starts ``after_days`` after the experiment starts
    (time schedule) or when the controller advances it; ``gated`` stages advance only when every
    guardrail holds with at least ``min_units`` per arm.
    """

    name: str | None = None
    traffic: float | None = Field(default=None, ge=0, le=100)
    weights: dict[str, float] | None = None
    after_days: float | None = Field(default=None, ge=0)
    min_hours: float | None = Field(default=None, ge=0)
    gated: bool = False
    min_units: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _has_effect(self) -> Stage:
        if self.traffic is None and self.weights is None:
            raise ValueError("a stage needs `traffic` or `weights`")
        if self.weights is not None and sum(self.weights.values()) <= 0:
            raise ValueError("stage weights must sum to more than 0")
        return self


class WinnerStage(_Strict):
    """A step of the winner rollout: ``percent`` of units on the winner for ``hours``."""

    percent: float = Field(gt=0, le=100)
    hours: float = Field(default=0, ge=0)


def _default_winner_stages() -> list[WinnerStage]:
    # Seed 000: 75 % for 24 h, then 95 % for 48 h, then 100 %.
    return [
        WinnerStage(percent=75, hours=24),
        WinnerStage(percent=95, hours=48),
        WinnerStage(percent=100),
    ]


class RolloutPlan(_Strict):
    """Staged exposure: a time schedule, per-arm traffic stages and a winner rollout.

    The controller starts the experiment at ``stages[0]`` and, with ``auto_advance``, moves to
    the next stage once its conditions hold (``after_days`` since start, the current stage's
    ``min_hours``, and for ``gated`` stages every guardrail holding with ``min_units`` per arm);
    a stage with none of these conditions is advanced by hand. After a decision names a
    winner, ``winner`` stages move that share of units to it; reaching 100 % completes the
    experiment. ``check_interval_s`` is how often the controller evaluates guardrails;
    ``alert_webhook`` receives this experiment's alerts (besides the controller's own hooks).
    """

    stages: list[Stage] = Field(default_factory=list)
    winner: list[WinnerStage] = Field(default_factory=_default_winner_stages)
    auto_advance: bool = True
    auto_winner: bool = Field(
        default=False,
        description="start the winner rollout when the analysis recommends shipping a variant",
    )
    check_interval_s: float = Field(default=60.0, gt=0)
    alert_webhook: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="POST the experiment's guardrail alerts as JSON to this URL",
    )


class Guardrail(_Strict):
    """A bound on a live metric that pauses a variant or rolls back a stage when breached.

    Bounds: ``max`` / ``min`` are absolute; ``max_ratio`` / ``min_ratio`` are relative to the
    control's value. Each is checked with a one-sided sequential test once at least
    ``min_units`` units per arm have data, so it can be evaluated every minute.

    ``metric`` is one of the experiment's metrics or an analysis built-in: ``error_rate``,
    ``latency_ms``, ``p50_latency_ms`` / ``p95_latency_ms`` / ``p99_latency_ms``, ``ttft_ms``
    (and its p50/p95/p99), ``cost_per_request``, ``cost_per_success``, ``fallback_rate``,
    ``schema_failure_rate``, ``rating``, ``thumbs_up``, ``retried``, ``abandoned``.
    ``alpha`` must lie in (0, 0.5), the range the analysis accepts; the bound × arm tests of
    one experiment share it (Bonferroni, docs/analysis.md "Guardrails").
    ``action``: ``pause`` sends the arm's units to control, ``rollback`` returns to the
    previous stage (pausing the arm at the first stage), ``alert`` only calls the alert hooks.
    """

    metric: str = Field(min_length=1)
    max: float | None = None
    min: float | None = None
    max_ratio: float | None = Field(default=None, gt=0)
    min_ratio: float | None = Field(default=None, gt=0)
    action: Literal["pause", "rollback", "alert"] = "pause"
    min_units: int = Field(default=100, ge=0)
    alpha: float = Field(
        default=0.01,
        gt=0,
        lt=0.5,
        description="false-alarm rate of the experiment's guardrails together (Bonferroni)",
    )

    @model_validator(mode="after")
    def _has_bound(self) -> Guardrail:
        if all(v is None for v in (self.max, self.min, self.max_ratio, self.min_ratio)):
            raise ValueError("a guardrail needs one of max, min, max_ratio, min_ratio")
        return self
