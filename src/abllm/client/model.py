"""The SDK's small types: settings, what a unit was served, what a wrapped call did."""

from __future__ import annotations

from dataclasses import dataclass

from abllm.assign import Assignment, Reason


@dataclass(frozen=True)
class ClientSettings:
    """Knobs of :class:`Client` beyond its constructor's arguments (defaults suit production).

    ``batch_size``/``flush_interval_s``: a batch of events goes to the server when this many
    wait or this long after the first; ``max_buffer``: events held in memory while the server is
    away (beyond, new events are dropped and counted); ``timeout_s``: per HTTP request;
    ``max_backoff_s``: longest pause between retries of a failed request (a ``Retry-After`` is
    obeyed as given, up to 300 s); ``exposure_cache_size``: units whose exposure this process
    remembers (LRU); ``close_timeout_s``: how long ``close()`` and the exit hook wait for
    delivery.
    """

    batch_size: int = 500
    flush_interval_s: float = 1.0
    max_buffer: int = 50_000
    timeout_s: float = 10.0
    max_backoff_s: float = 30.0
    exposure_cache_size: int = 100_000
    close_timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Served:
    """What this process served a unit: kept (LRU) for exposures and feedback attribution."""

    experiment_id: str
    experiment_version: int
    variant_id: str | None
    counted: bool


def counted(a: Assignment) -> bool:
    """Whether the unit's events count: in an arm, or in the holdback (DESIGN.md, gateway)."""
    return a.variant_id is not None or a.reason == Reason.HOLDOUT


@dataclass(frozen=True, slots=True)
class LastCall:
    """What the wrapper did with the last call made in this thread or task (``wrapper.last``).

    ``experiment_id`` is None for a call that named no experiment (passed through untouched).
    ``variant_id`` is the arm the unit counts in (None when out of the experiment or in the
    holdback; ``reason`` says which); ``served_variant_id`` is the variant whose config was sent
    (the control for units that are out); ``model`` is the model actually requested.
    """

    trace_id: str
    experiment_id: str | None
    variant_id: str | None
    served_variant_id: str | None
    unit_id: str | None
    reason: str
    model: str | None
