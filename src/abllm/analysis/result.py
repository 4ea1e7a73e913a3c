"""The typed answer of an analysis: what each variant did, how sure we are, what to do next.

Every figure is a plain float (NaN when it cannot be computed, with ``error`` saying why), so a
dashboard renders a half-empty experiment instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from abllm.analysis.specs import Direction, Kind, Role


class Decision(StrEnum):
    """What the analysis recommends (seed 000's verdicts plus INVALID and PAUSE)."""

    CONTINUE = "CONTINUE"  # not enough evidence yet; ``units_needed`` says how much more
    SHIP = "SHIP"  # a treatment wins on the primary metric and passes every guard
    KEEP_CONTROL = "KEEP_CONTROL"  # treatments are worse, or win but break a guard
    NO_DIFFERENCE = "NO_DIFFERENCE"  # planned sample reached without a worthwhile effect
    INVALID = "INVALID"  # sample ratio mismatch: the assignment or logging is broken
    PAUSE = "PAUSE"  # a guardrail is breached: stop exposing the variant


@dataclass(frozen=True)
class Recommendation:
    """The decision, the variant it concerns (None when it concerns none) and why."""

    decision: Decision
    variant: str | None
    reason: str
    units_needed: int | None = None  # per arm, for CONTINUE when a power calculation applies


@dataclass(frozen=True)
class VariantResult:
    """One arm's size: ``units`` attributed to it and its ``share`` of all attributed units."""

    variant_id: str
    units: int
    share: float
    expected_share: float
    control: bool = False


@dataclass(frozen=True)
class ArmResult:
    """A metric in one arm: ``n`` units with data, the value (mean, rate, ratio or quantile)
    and its CI at the analysis' confidence level."""

    n: int
    mean: float
    ci: tuple[float, float]
    sd: float = float("nan")
    events: int | None = None  # ratio and quantile metrics: events behind the value


@dataclass(frozen=True)
class Comparison:
    """A treatment against control on one metric (differences are treatment − control)."""

    diff: float
    diff_ci: tuple[float, float]
    p_value: float
    p_value_sequential: float
    rel_lift: float
    rel_ci: tuple[float, float]
    chance_to_win: float
    p_value_adjusted: float
    significant: bool
    error: str | None = None
    seq_diff_ci: tuple[float, float] = (float("nan"), float("nan"))
    seq_rel_ci: tuple[float, float] = (float("nan"), float("nan"))
    expected_loss: float = float("nan")

    def better(self, direction: Direction) -> bool:
        """Whether the point estimate moves the metric in its good direction."""
        return self.diff > 0 if direction == "increase" else self.diff < 0


@dataclass(frozen=True)
class MetricResult:
    """One metric across arms; ``comparisons`` holds every treatment against control."""

    name: str
    kind: Kind
    role: Role
    direction: Direction
    builtin: bool
    label: str
    arms: dict[str, ArmResult]
    comparisons: dict[str, Comparison]


@dataclass(frozen=True)
class SrmResult:
    """Sample ratio mismatch of observed units against the mixture of weights served.

    ``p_value`` is the always-valid per-arm test (Bonferroni over arms) that decides ``flag``;
    ``chi2_p_value`` the Pearson χ² against the same expected counts; ``arms`` the arms the
    mismatch concerns; ``expected`` the expected shares; ``unrecorded_units`` units whose
    exposure recorded no weights (they expect the configured split). See
    ``abllm.analysis.srm``.
    """

    p_value: float
    flag: bool
    observed: dict[str, int]
    expected: dict[str, float]
    chi2_p_value: float = float("nan")
    arms: tuple[str, ...] = ()
    unrecorded_units: int = 0


@dataclass(frozen=True)
class GuardrailStatus:
    """One guardrail for one treatment: whether it is breached (with a sequential test)."""

    metric: str
    variant: str
    breached: bool
    action: str
    value: float
    bound: float
    p_value: float
    reason: str


@dataclass(frozen=True)
class ExperimentResult:
    """Everything ``abllm analyze`` reports, for the CLI, the API, the dashboard and rollouts."""

    experiment_id: str
    version: int
    control: str
    computed_at: datetime
    alpha: float
    variants: dict[str, VariantResult]
    metrics: dict[str, MetricResult]
    srm: SrmResult
    guardrails: list[GuardrailStatus]
    recommendation: Recommendation
    primary: str | None = None
    first_exposure: datetime | None = None
    last_event: datetime | None = None
    warnings: list[str] = field(default_factory=list)
    holdback: ExperimentResult | None = None

    @property
    def treatments(self) -> list[str]:
        """Variant ids other than the control, in config order."""
        return [v for v in self.variants if v != self.control]
