"""What one gateway call measured, and the events it becomes.

One ``llm_call`` event per request, attributed to the unit's assigned variant even when the
control's fallback served the answer (intent to treat: the failure counts against the treatment,
``error`` = 1 and ``fallback`` = 1). Tokens and cost add up every call that reported usage,
because the caller paid for all of them. The unit's ``exposure`` event is emitted on its first
request seen by this process (analysis counts the first per unit, so repeats would only cost
storage); a unit in the holdback gets an exposure (and ``llm_call`` events) with no variant, for
the holdback report. A unit id that is itself PII (an email as ``user``) is stored as a stable
pseudonym.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from abllm.config import Experiment, LLMConfig
from abllm.config.llm import ModelPrice
from abllm.events import Event, EventType
from abllm.events.models import uuid7
from abllm.providers import Price, cost_usd, price_for
from abllm.telemetry import CallObservation, pseudonymous_id, redact

#: Prompts and answers logged with ``log_payloads`` are cut to this many characters each, so an
#: event stays well under the 32 KB event limit.
PAYLOAD_CHARS = 8_000


@dataclass(slots=True)
class CallRecord:
    """Measurements of one request, filled in as the call proceeds."""

    llm: LLMConfig
    stream: bool
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    cost_known: bool = True
    error_type: str | None = None
    error_message: str | None = None
    finish_reason: str | None = None
    fallback: bool = False
    fallback_model: str | None = None
    schema_valid: bool | None = None
    attempts: int = 0
    response_model: str | None = None
    aborted: bool = False
    answer: list[str] = field(default_factory=list)

    def add_usage(
        self, llm: LLMConfig, model: str, input_tokens: int | None, output_tokens: int | None
    ) -> None:
        """Add one call's usage and its price (an unknown price makes the total unknown).

        ``model`` is the model the upstream reports (dated names are matched by the price
        table); ``llm.price`` overrides the table for that variant.
        """
        if input_tokens is not None:
            self.input_tokens = (self.input_tokens or 0) + input_tokens
        if output_tokens is not None:
            self.output_tokens = (self.output_tokens or 0) + output_tokens
        if input_tokens is None and output_tokens is None:
            return
        entry = _price(model, llm.price)
        price = None if entry is None else entry.cost(input_tokens or 0, output_tokens or 0)
        if price is None:
            self.cost_known = False
            self.cost_usd = None
        elif self.cost_known:
            self.cost_usd = (self.cost_usd or 0.0) + price

    def observation(self, experiment_id: str, variant_id: str) -> CallObservation:
        """The Prometheus view of this call."""
        return CallObservation(
            experiment=experiment_id,
            variant=variant_id,
            latency_s=self.latency_ms / 1000.0,
            ttft_s=None if self.ttft_ms is None else self.ttft_ms / 1000.0,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost_usd=self.cost_usd,
            error_type=self.error_type,
            fallback=self.fallback,
        )


_PRICES: dict[tuple[str, ModelPrice | None], Price | None] = {}


def _price(model: str, override: ModelPrice | None) -> Price | None:
    """``price_for`` memoised per (model, override): the table lookup normalises names with
    regexes and reads the environment, too slow to repeat on every call. An unknown model goes
    once through ``cost_usd`` for its warning."""
    key = (model, override)
    if key in _PRICES:
        return _PRICES[key]
    entry = price_for(model, price=override)
    if entry is None:
        cost_usd(model, 0, 0, price=override)  # logs the one "no price" warning
    if len(_PRICES) > 4096:
        _PRICES.clear()
    _PRICES[key] = entry
    return entry


def _event(**fields: Any) -> Event:
    # The gateway builds these fields itself (finite numbers, known types), so validation is
    # skipped; ids and timestamps are given explicitly because pydantic's default-factory path in
    # model_construct inspects the factory's signature on every call (≈ 10 µs).
    return Event.model_construct(event_id=uuid7(), ts=datetime.now(UTC), **fields)


def exposure_event(
    exp: Experiment,
    variant_id: str | None,
    unit_id: str,
    trace_id: str,
    reason: str,
    weights: tuple[float, ...] | None = None,
    probability: float | None = None,
) -> Event:
    """The unit's exposure to its variant (None for a unit in the holdback).

    ``weights``/``probability`` (``Assignment``) are recorded as ``attrs.assign_weights`` and
    ``attrs.assign_p`` so SRM and adaptive estimates use what was served (docs/analysis.md).
    """
    attrs: dict[str, str | float] = {"reason": reason}
    if weights is not None:
        attrs["assign_weights"] = encode_weights(weights)
    if probability is not None:
        attrs["assign_p"] = probability
    return _event(
        type=EventType.exposure,
        experiment_id=exp.id,
        experiment_version=exp.version,
        variant_id=variant_id,
        unit_id=pseudonymous_id(unit_id),
        trace_id=trace_id,
        metrics={},
        attrs=attrs,
    )


def encode_weights(weights: tuple[float, ...]) -> str:
    """``attrs.assign_weights``: comma-separated, in the experiment's variant order."""
    return ",".join(f"{w:.12g}" for w in weights)


def llm_call_event(
    exp: Experiment,
    variant_id: str | None,
    unit_id: str,
    trace_id: str,
    rec: CallRecord,
    prompt: list[dict[str, Any]] | None,
) -> Event:
    """The measured call, for the assigned variant."""
    llm = rec.llm
    metrics: dict[str, float | int | bool | None] = {
        "latency_ms": round(rec.latency_ms, 3),
        "ttft_ms": None if rec.ttft_ms is None else round(rec.ttft_ms, 3),
        "input_tokens": rec.input_tokens,
        "output_tokens": rec.output_tokens,
        "cost_usd": rec.cost_usd,
        "error": rec.error_type is not None,
        "fallback": rec.fallback,
        "schema_valid": rec.schema_valid,
    }
    attrs: dict[str, str | int | float | bool | None] = {
        "model": llm.model,
        "provider": llm.provider,
        "prompt_version": llm.prompt_version,
        "finish_reason": rec.finish_reason,
        "error_type": rec.error_type,
        "stream": rec.stream,
        "attempts": rec.attempts,
    }
    if rec.response_model and rec.response_model != llm.model:
        attrs["response_model"] = rec.response_model
    if rec.aborted:
        attrs["client_aborted"] = True
    if rec.fallback_model is not None:
        attrs["fallback_model"] = rec.fallback_model
    if rec.error_message is not None:
        attrs["error_message"] = redact(rec.error_message)[:500]
    if exp.log_payloads and prompt is not None:
        attrs["prompt"] = redact(_prompt_text(prompt))[:PAYLOAD_CHARS]
        attrs["response"] = redact("".join(rec.answer))[:PAYLOAD_CHARS]
    return _event(
        type=EventType.llm_call,
        experiment_id=exp.id,
        experiment_version=exp.version,
        variant_id=variant_id,
        unit_id=pseudonymous_id(unit_id),
        trace_id=trace_id,
        metrics=metrics,
        attrs=attrs,
    )


def payload_chars(rec: CallRecord, prompt: list[dict[str, Any]] | None) -> int:
    """About how many characters ``log_payloads`` would redact for this call (cheap bound)."""
    size = sum(len(text) for text in rec.answer)
    for message in prompt or ():
        content = message.get("content")
        size += len(content) if isinstance(content, str) else len(str(content))
    return size


def _prompt_text(messages: list[dict[str, Any]]) -> str:
    lines = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        lines.append(f"{message.get('role')}: {content}")
    return "\n".join(lines)
