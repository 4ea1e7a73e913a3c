"""One ``abllm eval`` run end to end: plan the scorers, replay, store, report."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from abllm.config import Experiment
from abllm.errors import AbllmError, ValidationError
from abllm.eval.dataset import Dataset
from abllm.eval.judge import prompt_sha
from abllm.eval.model import RunInfo, StoredRun
from abllm.eval.report import build_report, output_rows
from abllm.eval.runner import Runner, RunSpec
from abllm.eval.scorers import plan_scorers
from abllm.eval.store import load_run, save_run
from abllm.events import EventStore
from abllm.gateway.model import ProviderSource


@dataclass(frozen=True)
class EvalOptions:
    """The command line's choices (``--scorer``, ``--repeat``, ``--concurrency``,
    ``--compare-to``)."""

    scorers: tuple[str, ...] = ()
    repeat: int = 1
    concurrency: int = 8
    compare_to: str | None = None
    on_progress: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True)
class EvalOutcome:
    """The ``--json`` report and the ``--output`` rows of a finished run."""

    report: dict[str, Any]
    rows: list[dict[str, Any]]
    store_error: AbllmError | None = None


def prepare(
    exp: Experiment, dataset: Dataset, opts: EvalOptions, store: EventStore
) -> tuple[list[str], StoredRun | None]:
    """Check everything that can fail before any provider is called: the scorers, the
    numbers, and the earlier run ``--compare-to`` names."""
    if opts.repeat < 1:
        raise ValidationError(f"--repeat {opts.repeat}: must be at least 1")
    if opts.concurrency < 1:
        raise ValidationError(f"--concurrency {opts.concurrency}: must be at least 1")
    scorers = plan_scorers(exp, dataset.rows, opts.scorers)
    previous = None
    if opts.compare_to is not None:
        previous = load_run(store, opts.compare_to)
        if previous.info.experiment_id != exp.id:
            raise ValidationError(
                f"--compare-to {opts.compare_to}: that run evaluated experiment "
                f"{previous.info.experiment_id!r}, not {exp.id!r}"
            )
    return scorers, previous


async def run_eval(
    exp: Experiment,
    dataset: Dataset,
    opts: EvalOptions,
    store: EventStore,
    providers: ProviderSource,
) -> EvalOutcome:
    """Replay ``dataset`` through every variant of ``exp``, store the run and report it."""
    scorers, previous = prepare(exp, dataset, opts, store)
    judge_cfg = exp.eval.judge if exp.eval is not None and "judge" in scorers else None
    judge = None
    if judge_cfg is not None:
        judge = {
            "provider": judge_cfg.llm.provider,
            "model": judge_cfg.llm.model,
            "prompt_version": judge_cfg.prompt_version,
            "prompt_sha": prompt_sha(judge_cfg),
        }
    info = RunInfo(
        run_id=str(uuid.uuid4()),
        experiment_id=exp.id,
        experiment_version=exp.version,
        started=datetime.now(UTC),
        dataset=dataset.path,
        dataset_sha256=dataset.sha256,
        repeat=opts.repeat,
        scorers=tuple(scorers),
        judge=judge,
    )
    spec = RunSpec(exp, dataset.rows, scorers, opts.repeat, opts.concurrency, opts.on_progress)
    trials = await Runner(spec, providers).run()
    variants = {
        v.id: {
            "provider": v.llm.provider,
            "model": v.llm.model,
            **({"prompt_version": v.llm.prompt_version} if v.llm.prompt_version else {}),
        }
        for v in exp.variants
    }
    report = build_report(exp, info, len(dataset.rows), trials, previous)
    outcome = EvalOutcome(report, output_rows(trials, opts.repeat))
    # The results are reported even when storing them fails: a long run is not thrown away.
    try:
        save_run(store, info, trials, variants, log_payloads=exp.log_payloads)
    except AbllmError as exc:
        report["stored"] = False
        return replace(outcome, store_error=exc)
    report["stored"] = True
    return outcome
