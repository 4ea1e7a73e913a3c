"""``from abllm.openfeature import AbllmProvider``: abllm experiments as OpenFeature flags.

The implementation lives in :mod:`abllm.integrations.openfeature` (needs ``abllm[openfeature]``);
this module is its public import path.
"""

from abllm.integrations.openfeature import AbllmProvider

__all__ = ["AbllmProvider"]
