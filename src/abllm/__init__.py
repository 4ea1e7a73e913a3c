"""abllm: production A/B testing and gradual rollout for LLM features.

The names below are the public API; everything else lives in the subpackages named in
``DESIGN.md`` (``abllm.config``, ``abllm.assign``, ``abllm.stats``, ``abllm.events``, ...).
"""

from abllm.assign import Assignment, Reason, RuntimeState, assign, assign_many
from abllm.client import Client
from abllm.config import Experiment, ExperimentFile, Variant, load_experiments
from abllm.errors import AbllmError, ConfigError

__version__ = "0.1.0"

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
    "assign",
    "assign_many",
    "load_experiments",
]
