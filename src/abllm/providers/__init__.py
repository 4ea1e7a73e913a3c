"""LLM providers behind one Protocol: ``sim`` (offline default), OpenAI-compatible, Anthropic.

Public API (other packages import only these names)::

    from abllm.providers import ChatRequest, ChatResponse, Provider, ProviderRegistry

    registry = ProviderRegistry()                    # one pooled aiohttp session per base_url
    provider = registry.get(llm)                     # by llm.provider ("sim"|"openai"|"anthropic")
    await provider.complete(req: ChatRequest, llm: LLMConfig, timeout_s: float) -> ChatResponse
    provider.stream(req, llm, timeout_s) -> AsyncIterator[StreamChunk]  # last chunk has usage
    await registry.aclose()
    get_provider(name, base_url=None) -> Provider    # unshared instance

    # errors: abllm.errors.ProviderError(.error_type in ERROR_TYPES, .status); HTTP upstream
    # errors are UpstreamError (adds .upstream_status, .retry_after)

    # resilience (the gateway composes these; see abllm.providers.resilience)
    breakers = BreakerRegistry(failure_threshold=5, reset_timeout_s=30.0, half_open_max_calls=1)
    breaker = breakers.for_llm(llm)                  # per (provider, base_url, model)
    await breaker.call(lambda: provider.complete(req, llm, t))   # CircuitOpenError when open
    breaker.guard_stream(provider.stream(req, llm, t))          # records at stream end / error
    await call_with_retries(fn(attempt, remaining_s), RetryPolicy(max_retries=2), budget_s)
    await start_stream(chunks) -> AsyncIterator      # raises errors before the first chunk now

    # cost (price table in LiteLLM's format, shipped as prices.json)
    cost_usd(model, input_tokens, output_tokens, overrides=None, *, price=llm.price) -> float|None
    price_for(model, overrides=None, *, price=None) -> Price | None

    # sim helpers
    plan(req, llm, timeout_s=None) -> SimPlan        # the sim's deterministic decisions
    simulate_feedback(sim_profile, rng: random.Random) -> {rating, thumbs_up, task_completed}
    chunk_text(chunk) -> str; usage_of(chunk) -> (input_tokens, output_tokens) | None
"""

from abllm.providers._http import UpstreamError
from abllm.providers.anthropic_messages import AnthropicProvider
from abllm.providers.base import (
    ERROR_TYPES,
    ChatRequest,
    ChatResponse,
    Provider,
    StreamChunk,
    chunk_text,
    usage_of,
)
from abllm.providers.openai_compat import OpenAIProvider
from abllm.providers.prices import Price, cost_usd, price_for, price_table
from abllm.providers.registry import ProviderRegistry, get_provider
from abllm.providers.resilience import (
    RETRYABLE,
    BreakerRegistry,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    RetryPolicy,
    call_with_retries,
    start_stream,
)
from abllm.providers.sim import SimFeedback, SimPlan, SimProvider, plan, simulate_feedback

__all__ = [
    "ERROR_TYPES",
    "RETRYABLE",
    "AnthropicProvider",
    "BreakerRegistry",
    "BreakerState",
    "ChatRequest",
    "ChatResponse",
    "CircuitBreaker",
    "CircuitOpenError",
    "OpenAIProvider",
    "Price",
    "Provider",
    "ProviderRegistry",
    "RetryPolicy",
    "SimFeedback",
    "SimPlan",
    "SimProvider",
    "StreamChunk",
    "UpstreamError",
    "call_with_retries",
    "chunk_text",
    "cost_usd",
    "get_provider",
    "plan",
    "price_for",
    "price_table",
    "simulate_feedback",
    "start_stream",
    "usage_of",
]
