from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from abllm.telemetry import (
    CallObservation,
    GatewayMetrics,
    LLMSpanStart,
    end_llm_span,
    start_llm_span,
    trace_id_from_traceparent,
    tracing,
)


def test_metrics_per_experiment_and_variant() -> None:
    m = GatewayMetrics()
    m.observe(CallObservation("exp", "a", 0.2, 0.05, 10, 20, 0.001, None, False))
    m.observe(CallObservation("exp", "b", 0.3, None, 5, 6, None, "timeout", True))
    m.observe_feedback("exp", "a")
    text = m.render().decode()
    assert 'abllm_requests_total{experiment="exp",outcome="ok",variant="a"} 1.0' in text
    assert 'abllm_requests_total{experiment="exp",outcome="fallback",variant="b"} 1.0' in text
    assert 'abllm_llm_errors_total{error_type="timeout",experiment="exp",variant="b"} 1.0' in text
    assert 'abllm_tokens_total{direction="output",experiment="exp",variant="a"} 20.0' in text
    assert 'abllm_request_latency_seconds_count{experiment="exp",variant="a"} 1.0' in text
    assert 'abllm_feedback_total{experiment="exp",variant="a"} 1.0' in text
    # Two apps in one process do not collide.
    GatewayMetrics().observe(CallObservation("exp", "a", 0.1, None, 1, 1, None, None, False))


def test_traceparent() -> None:
    tid = "4bf92f3577b34da6a3ce929d0e0e4736"
    assert trace_id_from_traceparent(f"00-{tid}-00f067aa0ba902b7-01") == tid
    assert trace_id_from_traceparent("garbage") is None
    assert trace_id_from_traceparent(None) is None
    assert trace_id_from_traceparent(f"00-{'0' * 32}-00f067aa0ba902b7-01") is None


def test_span_carries_genai_attributes(monkeypatch) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_TRACER", provider.get_tracer(tracing.TRACER_NAME))
    # tracing_enabled() notices an installed provider (checked at most once a second).
    monkeypatch.setattr(tracing.trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setattr(tracing, "_tracing", [False, -10.0])
    assert tracing.tracing_enabled()
    span = start_llm_span(
        LLMSpanStart("openai", "gpt-4o-mini", "exp", "b", "t1", temperature=0.2, max_tokens=50)
    )
    end_llm_span(
        span,
        response_model="gpt-4o-mini-2024",
        input_tokens=12,
        output_tokens=34,
        finish_reasons=["stop"],
        error_type=None,
        fallback=False,
    )
    (done,) = exporter.get_finished_spans()
    attrs = dict(done.attributes or {})
    assert done.name == "chat gpt-4o-mini"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.usage.input_tokens"] == 12
    assert attrs["gen_ai.usage.output_tokens"] == 34
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["abllm.variant.id"] == "b"


def test_no_exporter_by_default_is_cheap() -> None:
    span = start_llm_span(LLMSpanStart("sim", "m", "e", "v", "t"))
    assert not span.is_recording()
    end_llm_span(
        span,
        response_model=None,
        input_tokens=None,
        output_tokens=None,
        finish_reasons=(),
        error_type="timeout",
        fallback=False,
    )
