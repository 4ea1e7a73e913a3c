"""The gateway's small types: settings, the provider/event interfaces, a routed request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from abllm.assign import Assignment, RuntimeState
from abllm.assign.sticky import Assigned
from abllm.config import Experiment, LLMConfig, Variant
from abllm.events import Event
from abllm.gateway.resilience import ResilienceSettings
from abllm.providers import Provider


class ProviderSource(Protocol):
    """Where providers come from: ``abllm.providers.ProviderRegistry`` or a test double."""

    def get(self, llm: LLMConfig) -> Provider:
        """The pooled provider client serving ``llm``."""
        ...


@dataclass(frozen=True)
class GatewaySettings:
    """Gateway knobs that are not part of an experiment's definition."""

    default_experiment: str | None = None
    resilience: ResilienceSettings = field(default_factory=ResilienceSettings)
    exposure_cache_size: int = 200_000
    trace_cache_size: int = 200_000
    assignment_cache_size: int = 200_000


class Assigner(Protocol):
    """Assigns a unit; :func:`abllm.assign.assign` is the default and
    ``abllm.assign.sticky.StickyAssigner`` keeps units on their first variant as weights move.
    The SDK (``abllm.Client``) calls :meth:`assign`; the gateway needs a :class:`LoopAssigner`.
    """

    def assign(
        self,
        experiment: Experiment,
        unit_id: str,
        attributes: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        state: RuntimeState | None = None,
    ) -> Assignment:
        """The unit's assignment."""
        ...


class LoopAssigner(Assigner, Protocol):
    """An :class:`Assigner` the gateway can call on its event loop.

    Called once per new (unit, runtime state). An implementation that talks to a store must
    not block the loop and must answer quickly: when its store is slow or down it returns the
    hash assignment with a ``fallback`` cause rather than raise (``StickyAssigner`` does).
    """

    async def assign_async(
        self,
        experiment: Experiment,
        unit_id: str,
        attributes: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        state: RuntimeState | None = None,
    ) -> Assigned:
        """The unit's assignment, and why it is a stand-in (None: it is not)."""
        ...


class EventSink(Protocol):
    """Where events go: ``abllm.events.EventPipeline`` (buffered, never blocks the caller)."""

    def emit(self, event: Event) -> None:
        """Queue one event; raise ``Backpressure`` when full."""
        ...


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """Who a trace id belongs to, for feedback that names only the trace."""

    experiment_id: str
    experiment_version: int
    variant_id: str | None
    unit_id: str | None
    counted: bool = True


#: The one reason a unit outside the arms is still measured: the holdback is compared with
#: everyone exposed (``abllm.analysis.holdback``), so its units get an exposure with no variant.
HOLDOUT = "holdout"


@dataclass(slots=True)
class Routed:
    """One request after routing and assignment."""

    experiment: Experiment
    variant: Variant
    variant_id: str | None
    unit_id: str | None
    reason: str
    trace_id: str
    started: float

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        """The X-Abllm-* headers every answer carries."""
        return [
            (b"x-abllm-experiment", self.experiment.id.encode()),
            (b"x-abllm-variant", self.variant.id.encode()),
            (b"x-abllm-trace-id", self.trace_id.encode()),
        ]

    @property
    def counted(self) -> bool:
        """Whether this request's events are recorded: a unit in an arm or in the holdback."""
        return self.unit_id is not None and (self.variant_id is not None or self.reason == HOLDOUT)

    @property
    def metrics_label(self) -> str:
        """The ``variant`` label in Prometheus: the arm, else why the unit is out."""
        return self.variant_id or f"out:{self.reason}"

    @property
    def fallback(self) -> Variant | None:
        """The control, when it may answer for a failed treatment."""
        exp = self.experiment
        control = exp.control
        if exp.fallback_to_control and self.variant.id != control.id:
            return control
        return None
