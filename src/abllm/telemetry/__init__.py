"""Telemetry: PII redaction before persistence, Prometheus metrics, OpenTelemetry GenAI spans.

Redaction (standard library only) is imported eagerly; its function ``redact`` shares its
name with the submodule, and an eager binding is the one that always wins. Metrics and tracing
are lazy (PEP 562): importing the package loads neither prometheus_client nor OpenTelemetry.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from abllm.telemetry.redact import Redactor, pseudonymous_id, redact, redact_value

if TYPE_CHECKING:
    from abllm.telemetry.metrics import CONTENT_TYPE_LATEST, CallObservation, GatewayMetrics
    from abllm.telemetry.tracing import (
        LLMSpanStart,
        end_llm_span,
        start_llm_span,
        trace_id_from_traceparent,
    )

_EXPORTS = {
    "CONTENT_TYPE_LATEST": "abllm.telemetry.metrics",
    "CallObservation": "abllm.telemetry.metrics",
    "GatewayMetrics": "abllm.telemetry.metrics",
    "LLMSpanStart": "abllm.telemetry.tracing",
    "end_llm_span": "abllm.telemetry.tracing",
    "start_llm_span": "abllm.telemetry.tracing",
    "trace_id_from_traceparent": "abllm.telemetry.tracing",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'abllm.telemetry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
