"""abllm: production A/B testing and gradual rollout for LLM features.

The names below are the public API; everything else lives in the subpackages named in
``DESIGN.md`` (``abllm.config``, ``abllm.assign``, ``abllm.stats``, ``abllm.events``, ...).

The root is lazy (PEP 562): ``import abllm.stats`` or ``import abllm.assign`` loads only that
core, not the SDK, the server or telemetry. ``abllm.assign`` is the package; the function is
``from abllm.assign import assign``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from abllm.assign import Assignment, Reason, RuntimeState, assign_many
    from abllm.client import Client
    from abllm.config import Experiment, ExperimentFile, Variant, load_experiments
    from abllm.errors import AbllmError, ConfigError

__version__ = "0.1.0"

# name -> module that defines it; resolved on first access.
_EXPORTS = {
    "AbllmError": "abllm.errors",
    "Assignment": "abllm.assign",
    "Client": "abllm.client",
    "ConfigError": "abllm.errors",
    "Experiment": "abllm.config",
    "ExperimentFile": "abllm.config",
    "Reason": "abllm.assign",
    "RuntimeState": "abllm.assign",
    "Variant": "abllm.config",
    "assign_many": "abllm.assign",
    "load_experiments": "abllm.config",
}

__all__ = [
    "AbllmError",
    "Assignment",
    "Client",
    "ConfigError",
    "Experiment",
    "ExperimentFile",
    "Reason",
    "RuntimeState",
    "Variant",
    "assign_many",
    "load_experiments",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'abllm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
