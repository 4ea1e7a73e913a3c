"""An eval run as the ``--json`` document, the ``--output`` rows and the ``--compare-to`` drift.

Per-row scores are the mean over a row's trials (``--repeat``); every comparison pairs those
per-row scores, so each dataset row counts once however many trials it had.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from abllm.config import Experiment
from abllm.eval.compare import (
    Comparison,
    ScoreSummary,
    compare_rows,
    paired,
    pass_hat_k,
    summarize,
)
from abllm.eval.model import RunInfo, StoredRun, Trial
from abllm.eval.scorers import BINARY

#: variant id -> scorer -> row id -> score (mean over the row's trials)
RowScores = dict[str, dict[str, dict[str, float]]]


def row_scores(trials: Sequence[Trial]) -> RowScores:
    """Per-row scores, averaged over trials, keyed by variant, scorer and row id."""
    sums: dict[tuple[str, str, str], list[float]] = {}
    for t in trials:
        for name, value in t.scores.items():
            sums.setdefault((t.variant_id, name, t.row_id), []).append(value)
    out: RowScores = {}
    for (variant, name, row), values in sums.items():
        out.setdefault(variant, {}).setdefault(name, {})[row] = sum(values) / len(values)
    return out


def binary_rows(name: str, repeat: int) -> bool:
    """Whether per-row scores are 0/1 (a 0/1 scorer with one trial a row)."""
    return name in BINARY and repeat == 1


def _summary(s: ScoreSummary) -> dict[str, Any]:
    return {"mean": s.mean, "n": s.n, "ci": list(s.ci) if s.ci is not None else None}


def _comparison(c: Comparison) -> dict[str, Any]:
    return {
        "diff": c.diff,
        "ci": list(c.ci) if c.ci is not None else None,
        "p_value": c.p_value,
        "n": c.n,
        "test": c.test,
    }


def _pass_k(trials: Sequence[Trial], variant: str, name: str, repeat: int) -> float | None:
    """pass^k over the rows the scorer applies to; a failed call counts as a failed trial."""
    passes: dict[str, int] = {}
    for t in trials:
        if t.variant_id == variant and name in t.scores:
            passes[t.row_id] = passes.get(t.row_id, 0) + int(t.scores[name] == 1.0)
    return pass_hat_k(list(passes.values()), repeat, repeat)


def _variant(
    exp: Experiment, info: RunInfo, trials: Sequence[Trial], scores: RowScores, vid: str
) -> dict[str, Any]:
    llm = exp.variant(vid).llm
    mine = [t for t in trials if t.variant_id == vid]
    out: dict[str, Any] = {
        "control": vid == exp.control.id,
        "provider": llm.provider,
        "model": llm.model,
        "prompt_version": llm.prompt_version,
        "calls": len(mine),
        "errors": sum(t.error_type is not None for t in mine),
        "judge_errors": sum(t.judge_error is not None for t in mine),
        "tool_calls": sum(len(t.tool_calls) for t in mine),
        "tool_violations": sum(t.tool_violations for t in mine),
        "scores": {},
    }
    for name in info.scorers:
        values = list(scores.get(vid, {}).get(name, {}).values())
        entry = _summary(summarize(values, binary_rows(name, info.repeat)))
        if info.repeat > 1 and name in BINARY:
            entry["pass_k"] = _pass_k(trials, vid, name, info.repeat)
        out["scores"][name] = entry
    return out


def _comparisons(exp: Experiment, info: RunInfo, scores: RowScores) -> dict[str, Any]:
    control = exp.control.id
    out: dict[str, Any] = {}
    for variant in exp.variants:
        if variant.id == control:
            continue
        out[variant.id] = {}
        for name in info.scorers:
            base = scores.get(control, {}).get(name, {})
            treat = scores.get(variant.id, {}).get(name, {})
            shared = [k for k in base if k in treat]
            binary = binary_rows(name, info.repeat)
            cmp = paired([base[k] for k in shared], [treat[k] for k in shared], binary)
            out[variant.id][name] = _comparison(cmp)
    return out


def drift(info: RunInfo, scores: RowScores, previous: StoredRun) -> dict[str, Any]:
    """Per variant and scorer: this run against an earlier one (paired on shared rows)."""
    before = row_scores(previous.trials)
    out: dict[str, Any] = {}
    for vid, by_scorer in scores.items():
        if vid not in before:
            continue
        out[vid] = {}
        for name in info.scorers:
            now, then = by_scorer.get(name, {}), before[vid].get(name, {})
            if not now or not then:
                continue
            binary = binary_rows(name, max(info.repeat, previous.info.repeat))
            cmp = compare_rows(then, now, binary, allow_unpaired=True)
            out[vid][name] = {
                "previous": summarize(list(then.values()), binary).mean,
                "current": summarize(list(now.values()), binary).mean,
                **_comparison(cmp),
                "paired": cmp.test != "welch_t",
            }
    return {
        "compare_to": previous.info.run_id,
        "previous_started": previous.info.started.isoformat(),
        "previous_experiment_version": previous.info.experiment_version,
        "variants": out,
    }


def build_report(
    exp: Experiment,
    info: RunInfo,
    rows: int,
    trials: Sequence[Trial],
    previous: StoredRun | None = None,
) -> dict[str, Any]:
    """The ``abllm eval --json`` document (docs/eval.md shows it)."""
    scores = row_scores(trials)
    doc: dict[str, Any] = {
        "run_id": info.run_id,
        "experiment_id": info.experiment_id,
        "experiment_version": info.experiment_version,
        "started": info.started.isoformat(),
        "dataset": {"path": info.dataset, "rows": rows, "sha256": info.dataset_sha256},
        "repeat": info.repeat,
        "scorers": list(info.scorers),
        "judge": info.judge,
        "variants": {v.id: _variant(exp, info, trials, scores, v.id) for v in exp.variants},
        "comparisons": _comparisons(exp, info, scores),
    }
    if previous is not None:
        doc["drift"] = drift(info, scores, previous)
    return doc


def output_rows(trials: Sequence[Trial], repeat: int) -> list[dict[str, Any]]:
    """One ``--output`` line per (row, variant): ``{row_id, variant_id, output, scores}``.

    ``scores`` are the per-row scores the comparisons use; with ``--repeat`` the line also
    lists every trial's output and scores under ``trials``.
    """
    scores = row_scores(trials)
    grouped: dict[tuple[str, str], list[Trial]] = {}
    for t in trials:
        grouped.setdefault((t.row_id, t.variant_id), []).append(t)
    lines = []
    for (row, variant), group in grouped.items():
        group.sort(key=lambda t: t.trial)
        line: dict[str, Any] = {
            "row_id": row,
            "variant_id": variant,
            "output": group[0].output,
            "scores": {
                name: by_row[row]
                for name, by_row in scores.get(variant, {}).items()
                if row in by_row
            },
        }
        errors = [t.error_type for t in group if t.error_type is not None]
        if errors:
            line["error_type"] = errors[0]
        if group[0].judge_reason is not None:
            line["judge_reason"] = group[0].judge_reason
        if group[0].judge_error is not None:
            line["judge_error"] = group[0].judge_error
        if group[0].tool_calls:
            line["tool_calls"] = list(group[0].tool_calls)
            line["tool_violations"] = group[0].tool_violations
        if repeat > 1:
            line["trials"] = [
                {"output": t.output, "scores": t.scores}
                | ({"tool_calls": list(t.tool_calls)} if t.tool_calls else {})
                for t in group
            ]
        lines.append(line)
    return lines
