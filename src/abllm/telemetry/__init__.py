"""Telemetry: PII redaction before persistence, Prometheus metrics, OpenTelemetry GenAI spans."""

from abllm.telemetry.metrics import CONTENT_TYPE_LATEST, CallObservation, GatewayMetrics
from abllm.telemetry.redact import Redactor, pseudonymous_id, redact, redact_value
from abllm.telemetry.tracing import (
    LLMSpanStart,
    end_llm_span,
    start_llm_span,
    trace_id_from_traceparent,
)

__all__ = [
    "CONTENT_TYPE_LATEST",
    "CallObservation",
    "GatewayMetrics",
    "LLMSpanStart",
    "Redactor",
    "end_llm_span",
    "pseudonymous_id",
    "redact",
    "redact_value",
    "start_llm_span",
    "trace_id_from_traceparent",
]
