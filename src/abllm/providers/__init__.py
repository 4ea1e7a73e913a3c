"""LLM providers behind one Protocol: ``sim`` (offline default), OpenAI-compatible, Anthropic.

Public API (other packages import only these names)::

    from abllm.providers import ChatRequest, ChatResponse, Provider, SimProvider, StreamChunk
    from abllm.providers import plan, simulate_feedback, chunk_text, usage_of

    provider.complete(req: ChatRequest, llm: LLMConfig, timeout_s: float) -> ChatResponse
    provider.stream(req, llm, timeout_s) -> AsyncIterator[StreamChunk]   # last chunk has usage
    provider.aclose() -> None
"""

from abllm.providers.base import (
    ERROR_TYPES,
    ChatRequest,
    ChatResponse,
    Provider,
    StreamChunk,
    chunk_text,
    usage_of,
)
from abllm.providers.sim import SimFeedback, SimPlan, SimProvider, plan, simulate_feedback

__all__ = [
    "ERROR_TYPES",
    "ChatRequest",
    "ChatResponse",
    "Provider",
    "SimFeedback",
    "SimPlan",
    "SimProvider",
    "StreamChunk",
    "chunk_text",
    "plan",
    "simulate_feedback",
    "usage_of",
]
