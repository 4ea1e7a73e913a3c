"""The gateway: an OpenAI-compatible proxy that runs the experiment on every call.

```python
from abllm.gateway import Gateway, GatewaySettings, InMemoryStateView, StateReader
gw = Gateway(config, providers, pipeline=pipeline, state=InMemoryStateView())
```

The HTTP layer (:class:`ChatCompletionsEndpoint`, mounted by ``abllm.server.create_app``) is the
usual way in. Runtime state (kill switch, paused arms, stage weights) comes from any object with
``get(experiment_id) -> RuntimeState`` (:class:`StateReader`; ``abllm.state.StateView`` is one).
"""

from abllm.gateway.asgi import CHAT_PATH, ChatCompletionsEndpoint
from abllm.gateway.core import Gateway
from abllm.gateway.measure import CallRecord
from abllm.gateway.model import (
    Assigner,
    EventSink,
    GatewaySettings,
    LoopAssigner,
    ProviderSource,
    Routed,
    TraceInfo,
)
from abllm.gateway.request import BadRequest, ChatCall, parse_chat_call
from abllm.gateway.resilience import ResilienceSettings
from abllm.gateway.routing import Router, unit_id_for
from abllm.gateway.shape import shape_request
from abllm.gateway.state import InMemoryStateView, StateReader
from abllm.gateway.streaming import StreamSession

__all__ = [
    "CHAT_PATH",
    "Assigner",
    "BadRequest",
    "CallRecord",
    "ChatCall",
    "ChatCompletionsEndpoint",
    "EventSink",
    "Gateway",
    "GatewaySettings",
    "InMemoryStateView",
    "LoopAssigner",
    "ProviderSource",
    "ResilienceSettings",
    "Routed",
    "Router",
    "StateReader",
    "StreamSession",
    "TraceInfo",
    "parse_chat_call",
    "shape_request",
    "unit_id_for",
]
