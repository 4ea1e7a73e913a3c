"""The pure scorers: one number per (row, variant answer), or None when a scorer does not apply.

``exact``, ``contains``, ``regex``, ``json_schema`` and ``refusal`` score 0 or 1 (so comparisons
use McNemar's test and ``--repeat`` reports pass^k); ``length`` (characters), ``latency_ms`` and
``cost_usd`` are measurements; ``judge`` (see :mod:`abllm.eval.judge`) is a rubric score.
Which scorers run is decided once per run by :func:`plan_scorers`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jsonschema.validators import validator_for

from abllm.config import SCORER_NAMES, EvalConfig, Experiment, Variant
from abllm.errors import ValidationError
from abllm.eval.dataset import EvalRow
from abllm.providers.refusal import RefusalDetector

#: Scorers whose values are 0 or 1.
BINARY: frozenset[str] = frozenset({"exact", "contains", "regex", "json_schema", "refusal"})
#: Scorers that run by default whatever the rows hold.
ALWAYS: tuple[str, ...] = ("length", "latency_ms", "cost_usd", "refusal")


@dataclass(frozen=True)
class Answer:
    """A variant's answer to one row, as the scorers see it (``output`` None: the call failed)."""

    output: str | None
    latency_ms: float | None
    cost_usd: float | None


def variant_schema(exp: Experiment, variant: Variant) -> dict[str, Any] | None:
    """The JSON schema the variant's answers must meet: its ``response_format`` schema, else
    the experiment's ``output_schema``."""
    fmt = variant.llm.params.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if isinstance(schema, dict):
            return schema
    return exp.output_schema


def plan_scorers(
    exp: Experiment, rows: Sequence[EvalRow], requested: Sequence[str] = ()
) -> list[str]:
    """The scorers of a run, in :data:`SCORER_NAMES` order.

    ``requested`` (``--scorer``) wins over ``eval.scorers``; otherwise every scorer that applies
    runs. A requested scorer that cannot run raises ``ValidationError`` naming why.
    """
    cfg = exp.eval or EvalConfig()
    unknown = sorted(set(requested) - set(SCORER_NAMES))
    if unknown:
        raise ValidationError(
            f"--scorer {unknown[0]!r}: unknown scorer (known: {', '.join(SCORER_NAMES)})"
        )
    has_expected = any(r.expected is not None for r in rows)
    has_schema = any(variant_schema(exp, v) is not None for v in exp.variants)
    applies = {
        "exact": has_expected,
        "contains": has_expected,
        "regex": cfg.regex is not None,
        "json_schema": has_schema,
        "judge": cfg.judge is not None,
        **dict.fromkeys(ALWAYS, True),
    }
    why = {
        "exact": "no dataset row has `expected`",
        "contains": "no dataset row has `expected`",
        "regex": "the experiment has no `eval.regex`",
        "json_schema": "no variant has an output schema",
        "judge": "the experiment has no `eval.judge`",
    }
    chosen = list(requested) or list(cfg.scorers or ())
    if not chosen:
        return [s for s in SCORER_NAMES if applies[s]]
    for name in chosen:
        if not applies[name]:
            raise ValidationError(f"scorer {name!r} cannot run: {why[name]}")
    return [s for s in SCORER_NAMES if s in chosen]


def _norm(text: str, case_sensitive: bool) -> str:
    text = text.strip()
    return text if case_sensitive else text.casefold()


class Scorers:
    """The pure scorers of one experiment, compiled once (regexes, schemas, refusal rules)."""

    def __init__(self, exp: Experiment) -> None:
        self.cfg = exp.eval or EvalConfig()
        self._regex = re.compile(self.cfg.regex) if self.cfg.regex is not None else None
        self._refusal = RefusalDetector(self.cfg.refusal_patterns)
        self._validators: dict[str, Any] = {}
        for variant in exp.variants:
            schema = variant_schema(exp, variant)
            if schema is not None:
                self._validators[variant.id] = validator_for(schema)(schema)
        self._fns: dict[str, Callable[[EvalRow, str, Answer, str], float | None]] = {
            "exact": self._exact,
            "contains": self._contains,
            "regex": self._regex_match,
            "json_schema": self._json_schema,
            "length": self._length,
            "latency_ms": self._latency_ms,
            "cost_usd": self._cost_usd,
            "refusal": self._refused,
        }

    def score(self, name: str, row: EvalRow, variant_id: str, answer: Answer) -> float | None:
        """Scorer ``name`` on one answer (not ``judge``, which needs a provider call)."""
        if answer.output is None:
            return None
        return self._fns[name](row, answer.output, answer, variant_id)

    def _exact(self, row: EvalRow, out: str, _a: Answer, _v: str) -> float | None:
        if row.expected is None:
            return None
        cs = self.cfg.case_sensitive
        return float(any(_norm(out, cs) == _norm(e, cs) for e in row.expected))

    def _contains(self, row: EvalRow, out: str, _a: Answer, _v: str) -> float | None:
        if row.expected is None:
            return None
        cs = self.cfg.case_sensitive
        return float(all(_norm(e, cs) in _norm(out, cs) for e in row.expected))

    def _regex_match(self, _r: EvalRow, out: str, _a: Answer, _v: str) -> float | None:
        return None if self._regex is None else float(self._regex.search(out) is not None)

    def _json_schema(self, _r: EvalRow, out: str, _a: Answer, variant_id: str) -> float | None:
        validator = self._validators.get(variant_id)
        if validator is None:
            return None
        try:
            value = json.loads(out)
        except json.JSONDecodeError:
            return 0.0
        return float(validator.is_valid(value))

    def _length(self, _r: EvalRow, out: str, _a: Answer, _v: str) -> float | None:
        return float(len(out))

    def _latency_ms(self, _r: EvalRow, _o: str, answer: Answer, _v: str) -> float | None:
        return answer.latency_ms

    def _cost_usd(self, _r: EvalRow, _o: str, answer: Answer, _v: str) -> float | None:
        return answer.cost_usd

    def _refused(self, _r: EvalRow, out: str, _a: Answer, _v: str) -> float | None:
        return float(self._refusal.is_refusal(out))
