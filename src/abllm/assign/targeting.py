"""Evaluate targeting rules against a unit's attributes (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from abllm.config import TargetingRule


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _compare(actual: Any, expected: Any, op: str) -> bool:
    """Order comparison; numbers compare numerically, anything else as strings."""
    try:
        if isinstance(expected, int | float) and not isinstance(expected, bool):
            a, b = float(actual), float(expected)
            return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
    except (TypeError, ValueError):
        return False
    sa, sb = str(actual), str(expected)
    return {"gt": sa > sb, "gte": sa >= sb, "lt": sa < sb, "lte": sa <= sb}[op]


def _same(actual: Any, expected: Any) -> bool:
    """Equality that lets ``"5"`` match ``5``: attributes often arrive as strings (headers, CLI)."""
    if actual == expected:
        return True
    if isinstance(expected, bool) or isinstance(actual, bool):
        return str(actual).lower() == str(expected).lower()
    return str(actual) == str(expected)


def rule_matches(rule: TargetingRule, attributes: Mapping[str, Any]) -> bool:
    """Whether one rule holds; a missing attribute fails all ops but not_in, ne and exists."""
    present = attributes.get(rule.attribute) is not None
    actual = attributes.get(rule.attribute)
    op = rule.op
    if op == "exists":
        return present == (rule.value is not False)
    if op == "ne":
        return not (present and _same(actual, rule.value))
    if op == "not_in":
        values = rule.value if isinstance(rule.value, list) else []
        return not (present and any(_same(actual, v) for v in values))
    if not present:
        return False
    if op == "eq":
        return _same(actual, rule.value)
    if op == "in":
        values = rule.value if isinstance(rule.value, list) else []
        return any(_same(actual, v) for v in values)
    if op == "regex":
        return _regex(str(rule.value)).search(str(actual)) is not None
    return _compare(actual, rule.value, op)


def is_targeted(rules: Sequence[TargetingRule], attributes: Mapping[str, Any]) -> bool:
    """True when every rule holds (an experiment without rules targets everyone)."""
    return all(rule_matches(rule, attributes) for rule in rules)
