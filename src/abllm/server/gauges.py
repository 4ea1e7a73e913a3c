"""The runtime-state gauges of ``GET /metrics``, read from the state the gateway already holds.

The gateway reads kill/pause/weights from its :class:`~abllm.gateway.StateReader` on every
request; the gauges read the same object when Prometheus scrapes, so ``abllm_experiment_killed``
turns 1 on the scrape after ``abllm kill`` reaches the process. With a ``StateView`` (what
``abllm serve`` uses) the full state adds the rollout stage and the guardrail hold.
"""

from __future__ import annotations

from collections.abc import Callable

from abllm.config import ExperimentFile
from abllm.gateway import StateReader
from abllm.state import StateView
from abllm.telemetry.metrics import ExperimentGauges


def runtime_gauges(
    config: ExperimentFile, state: StateReader
) -> Callable[[], list[ExperimentGauges]]:
    """A reader of every configured experiment's gauges, for ``watch_experiments``."""

    def read() -> list[ExperimentGauges]:
        out = []
        for exp in config.experiments:
            runtime = state.get(exp.id)
            full = state.state(exp.id) if isinstance(state, StateView) else None
            out.append(
                ExperimentGauges(
                    experiment=exp.id,
                    killed=runtime.killed,
                    paused=runtime.paused,
                    stage=None if full is None else full.stage,
                    traffic=exp.traffic if runtime.traffic is None else runtime.traffic,
                    variants=tuple(v.id for v in exp.variants),
                    paused_variants=runtime.paused_variants,
                    held=False if full is None else full.held,
                )
            )
        return out

    return read
