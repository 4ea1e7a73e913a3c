"""Scheduled replays: the rollout controller runs ``eval.schedule`` and alerts on drift.

:meth:`EvalScheduler.tick` is a side task of :class:`abllm.rollout.RolloutController`: at each
controller tick it starts the experiments whose schedule is due in one background thread (a
replay can take minutes and must not delay guardrails), one run after another. Each run is
compared (``--compare-to``) with the experiment's previous run of the same dataset; a variant
whose mean score moved by more than ``max_drift[scorer]`` raises an ``eval_drift`` alert, and a
run that cannot start or fails raises ``eval_failed``, both through the controller's hooks.
When a schedule is due is read from the store (the last run's start), so a restart does not
replay at once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from abllm.config import EvalConfig, EvalSchedule, Experiment
from abllm.errors import AbllmError
from abllm.eval.dataset import Dataset, load_dataset
from abllm.eval.scorers import plan_scorers
from abllm.eval.service import EvalOptions, EvalOutcome, run_eval
from abllm.eval.store import last_run_at, latest_run
from abllm.events import EventStore
from abllm.providers import ProviderRegistry
from abllm.rollout.alerts import Alert

log = logging.getLogger("abllm.eval")

Fire = Callable[[Alert], None]


def drift_breaches(report: dict[str, Any], schedule: EvalSchedule) -> list[dict[str, Any]]:
    """The (variant, scorer) drifts beyond ``max_drift`` in a report with a ``drift`` block."""
    out = []
    for variant, by_scorer in report.get("drift", {}).get("variants", {}).items():
        for scorer, bound in schedule.max_drift.items():
            d = by_scorer.get(scorer)
            if d is None or d["diff"] is None or abs(d["diff"]) <= bound:
                continue
            out.append({"variant": variant, "scorer": scorer, "bound": bound, **d})
    return out


class EvalScheduler:
    """Runs due ``eval.schedule`` replays for ``experiments`` against ``store``.

    Example::

        scheduler = EvalScheduler(config.experiments, events)
        controller = RolloutController(state, config.experiments, results,
                                       side_tasks=[scheduler.tick])
        ...
        scheduler.close()   # waits for a replay in flight
    """

    def __init__(self, experiments: Sequence[Experiment], store: EventStore) -> None:
        self.experiments = [e for e in experiments if e.eval and e.eval.schedule]
        self.store = store
        self._last: dict[str, datetime] = {}
        self._thread: threading.Thread | None = None

    def __bool__(self) -> bool:
        return bool(self.experiments)

    def due(self, now: datetime) -> list[Experiment]:
        """The experiments whose schedule is due at ``now``."""
        out = []
        for exp in self.experiments:
            schedule = self._schedule(exp)
            last = self._last.get(exp.id) or last_run_at(self.store, exp.id)
            if last is None or (now - last).total_seconds() >= schedule.every_s:
                out.append(exp)
        return out

    def tick(self, now: datetime, fire: Fire) -> None:
        """Start the due replays in the background, unless a previous batch still runs."""
        if self._thread is not None and self._thread.is_alive():
            return
        due = self.due(now)
        if not due:
            return
        for exp in due:
            self._last[exp.id] = now
        self._thread = threading.Thread(
            target=self._run_all, args=(due, fire), name="abllm-eval", daemon=True
        )
        self._thread.start()

    def _run_all(self, due: list[Experiment], fire: Fire) -> None:
        for exp in due:
            self.run(exp, fire)

    @staticmethod
    def _schedule(exp: Experiment) -> EvalSchedule:
        assert exp.eval is not None and exp.eval.schedule is not None
        return exp.eval.schedule

    def run(self, exp: Experiment, fire: Fire) -> dict[str, Any] | None:
        """One replay of ``exp`` now; returns its report (None when it failed, alerted)."""
        schedule = self._schedule(exp)
        try:
            dataset = load_dataset(Path(schedule.dataset))
            defaults = plan_scorers(exp, dataset.rows, (exp.eval or EvalConfig()).scorers or ())
            scorers = tuple(dict.fromkeys([*defaults, *schedule.max_drift]))
            opts = EvalOptions(
                scorers=scorers,
                repeat=schedule.repeat,
                concurrency=schedule.concurrency,
                compare_to=latest_run(self.store, exp.id, dataset.sha256),
            )
            outcome = asyncio.run(self._replay(exp, dataset, opts))
        except AbllmError as exc:
            self._alert(fire, exp, "eval_failed", f"scheduled eval failed: {exc.message}", {})
            return None
        except Exception as exc:  # a broken replay must not stop the controller
            log.exception("scheduled eval of %s failed", exp.id)
            message = f"scheduled eval failed: {type(exc).__name__}: {exc}"
            self._alert(fire, exp, "eval_failed", message, {})
            return None
        report = outcome.report
        breaches = drift_breaches(report, schedule)
        if breaches:
            parts = [
                f"{b['variant']} {b['scorer']} {b['previous']:.4g} -> {b['current']:.4g} "
                f"(diff {b['diff']:+.4g}, bound {b['bound']:g})"
                for b in breaches
            ]
            extra = {
                "run_id": report["run_id"],
                "compare_to": report["drift"]["compare_to"],
                "drift": breaches,
            }
            self._alert(fire, exp, "eval_drift", "eval drift: " + "; ".join(parts), extra)
        return report

    async def _replay(self, exp: Experiment, dataset: Dataset, opts: EvalOptions) -> EvalOutcome:
        registry = ProviderRegistry(limit=opts.concurrency)
        try:
            outcome = await run_eval(exp, dataset, opts, self.store, registry)
        finally:
            await registry.aclose()
        if outcome.store_error is not None:
            raise outcome.store_error
        return outcome

    @staticmethod
    def _alert(fire: Fire, exp: Experiment, kind: str, message: str, extra: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        fire(Alert(exp.id, kind, message, now, severity="warning", extra=extra))

    def close(self) -> None:
        """Wait for a replay in flight to finish."""
        if self._thread is not None:
            self._thread.join()
