"""How the ``sim`` provider grounds its answers and grades answers as a judge.

Two behaviours make an offline eval of simulated variants find real differences:

- **Grounding.** Each word of a simulated answer is, with probability ``(quality - 1) / 4``,
  taken from the question (the last user message) instead of the fixed vocabulary. A
  higher-quality variant therefore repeats more of what was asked, which ``contains`` and a
  judge can see.
- **Grading.** A request whose ``response_format`` is the JSON schema named
  :data:`JUDGE_SCHEMA_NAME` is a judge call (``abllm.eval`` builds it): its last user message is
  a JSON object with ``input``, ``expected`` (optional), ``output`` and ``scale`` ``[lo, hi]``.
  The sim answers ``{"score", "reason"}`` where the score is ``lo + round(g * (hi - lo))`` and
  ``g`` is the share of the answer's words found in the input or the expected answer: a
  deterministic judge that reads the answer, so better-grounded variants score higher.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

#: The ``response_format.json_schema.name`` that marks a judge request.
JUDGE_SCHEMA_NAME = "abllm_judge"

_WORD = re.compile(r"[a-z0-9]+")


def words_of(text: str) -> list[str]:
    """Lower-case alphanumeric words of ``text``."""
    return _WORD.findall(text.lower())


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message ("" when there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return _text(message.get("content"))
    return ""


def ground(words: list[str], question: str, quality: float, seed: int) -> list[str]:
    """Replace each word by a question word with probability ``(quality - 1) / 4``.

    A separate RNG (from ``seed``) keeps the simulator's other draws unchanged.
    """
    pool = words_of(question)
    if not pool:
        return words
    share = (quality - 1.0) / 4.0
    rng = random.Random(seed ^ 0x5DEECE66D)
    return [rng.choice(pool) if rng.random() < share else w for w in words]


def _judge_schema(params: dict[str, Any]) -> bool:
    fmt = params.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return False
    spec = fmt.get("json_schema")
    return isinstance(spec, dict) and spec.get("name") == JUDGE_SCHEMA_NAME


def grade(messages: list[dict[str, Any]], params: dict[str, Any]) -> str | None:
    """The sim judge's JSON answer for a judge request, or None when this is not one."""
    if not _judge_schema(params):
        return None
    try:
        task = json.loads(last_user_text(messages))
        lo, hi = (int(x) for x in task["scale"])
        answer = words_of(str(task.get("output") or ""))
        reference = set(words_of(str(task.get("input") or "")))
        reference |= set(words_of(str(task.get("expected") or "")))
    except (ValueError, KeyError, TypeError):
        return None
    grounded = sum(w in reference for w in answer) / len(answer) if answer else 0.0
    score = lo + round(grounded * (hi - lo))
    reason = f"{grounded:.0%} of the answer's words come from the question or the reference"
    return json.dumps({"score": score, "reason": reason})
