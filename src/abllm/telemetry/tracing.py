"""OpenTelemetry spans for LLM calls, with the GenAI semantic-convention attributes.

abllm installs no exporter: spans go wherever the host application's ``TracerProvider`` sends
them, and without one the API's no-op tracer makes each span cost a few microseconds. Attribute
names follow the OpenTelemetry GenAI conventions (``gen_ai.*``,
https://opentelemetry.io/docs/specs/semconv/gen-ai/); abllm's own live under ``abllm.*``.
The span's trace id is not abllm's ``trace_id``: that one comes from the caller's
``traceparent`` when present (see :func:`trace_id_from_traceparent`), so both line up.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode

TRACER_NAME = "abllm.gateway"

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_from_traceparent(header: str | None) -> str | None:
    """The 32-hex trace id of a W3C ``traceparent`` header, or None when absent or invalid."""
    if not header:
        return None
    match = _TRACEPARENT.match(header.strip().lower())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1)


@dataclass(frozen=True, slots=True)
class LLMSpanStart:
    """Request-side attributes known before the provider is called."""

    provider: str
    model: str
    experiment_id: str
    variant_id: str
    trace_id: str
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stream: bool = False


#: A proxy tracer: it delegates to the global provider once the host sets one, so it can be made
#: at import. ``trace.get_tracer`` per call would re-read the environment on every request.
_TRACER = trace.get_tracer(TRACER_NAME)
_CHECK_EVERY_S = 1.0
_tracing = [False, -_CHECK_EVERY_S]  # [a TracerProvider is installed, when last checked]


def tracing_enabled() -> bool:
    """Whether the host installed a TracerProvider, re-checked at most once a second.

    Without one every span is a no-op; skipping it saves a few microseconds a request, and a
    provider installed later is picked up within a second.
    """
    now = time.monotonic()
    if now - _tracing[1] >= _CHECK_EVERY_S:
        provider = trace.get_tracer_provider()
        _tracing[0] = not isinstance(provider, trace.ProxyTracerProvider)
        _tracing[1] = now
    return bool(_tracing[0])


def start_llm_span(start: LLMSpanStart) -> Span:
    """Start a CLIENT span named ``chat {model}``; attributes are set only when recording."""
    if not tracing_enabled():
        return INVALID_SPAN
    span = _TRACER.start_span(f"chat {start.model}", kind=SpanKind.CLIENT)
    if span.is_recording():
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.provider.name", start.provider)
        span.set_attribute("gen_ai.system", start.provider)
        span.set_attribute("gen_ai.request.model", start.model)
        if start.temperature is not None:
            span.set_attribute("gen_ai.request.temperature", start.temperature)
        if start.top_p is not None:
            span.set_attribute("gen_ai.request.top_p", start.top_p)
        if start.max_tokens is not None:
            span.set_attribute("gen_ai.request.max_tokens", start.max_tokens)
        span.set_attribute("abllm.experiment.id", start.experiment_id)
        span.set_attribute("abllm.variant.id", start.variant_id)
        span.set_attribute("abllm.trace_id", start.trace_id)
        span.set_attribute("abllm.stream", start.stream)
    return span


def end_llm_span(
    span: Span,
    *,
    response_model: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    finish_reasons: Sequence[str],
    error_type: str | None,
    fallback: bool,
) -> None:
    """Set the response-side attributes and end the span."""
    if span is INVALID_SPAN:
        return
    if span.is_recording():
        if response_model:
            span.set_attribute("gen_ai.response.model", response_model)
        if input_tokens is not None:
            span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
        if output_tokens is not None:
            span.set_attribute("gen_ai.usage.output_tokens", output_tokens)
        if finish_reasons:
            span.set_attribute("gen_ai.response.finish_reasons", list(finish_reasons))
        span.set_attribute("abllm.fallback", fallback)
        if error_type is not None:
            span.set_attribute("error.type", error_type)
            if not fallback:
                span.set_status(Status(StatusCode.ERROR, error_type))
    span.end()
