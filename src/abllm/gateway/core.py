"""The request path: route → unit → assignment → provider call → measured events.

:class:`Gateway` holds everything long-lived (experiments, providers, breakers, the event
pipeline, the runtime-state view, metrics); one request is a :class:`Routed` plus a
:class:`~abllm.gateway.measure.CallRecord`. Nothing here awaits the event store: events go
through ``pipeline.emit`` (buffered), so a slow or failed store never slows or fails a call.

Fallback (issue 6, DESIGN.md "fail safe"): when the assigned variant is not the control and
``fallback_to_control`` holds, a failed call (after retries) or an answer that fails
``output_schema`` is answered by the control's config instead. The treatment's attempts may use
half of the time budget, so a hung treatment still leaves the control time to answer.

The experiment's ``timeout_s`` is a deadline on the whole request (``resilience.Deadlines``). Each
arm has its own circuit breaker (``BreakerRegistry.for_arm``), so a treatment that makes the
control's model fail opens only its own; every attempt of both paths, streaming or not, goes
through the one driver ``resilience.guarded``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson
from jsonschema.validators import validator_for
from prometheus_client import Counter

from abllm.assign import Assignment, RuntimeState, assign
from abllm.config import Experiment, ExperimentFile, LLMConfig, Variant
from abllm.errors import Backpressure, ProviderError
from abllm.events import Event
from abllm.gateway.measure import CallRecord, exposure_event, llm_call_event, payload_chars
from abllm.gateway.model import (
    EventSink,
    GatewaySettings,
    LoopAssigner,
    ProviderSource,
    Routed,
    TraceInfo,
)
from abllm.gateway.request import ChatCall
from abllm.gateway.resilience import Attempts, Deadlines, guarded, with_retries
from abllm.gateway.routing import (
    HEADER_EXPERIMENT,
    HEADER_TRACE,
    Router,
    attributes_from,
    unit_id_for,
)
from abllm.gateway.shape import shape_request
from abllm.gateway.state import InMemoryStateView, StateReader
from abllm.providers import (
    BreakerRegistry,
    ChatResponse,
    CircuitBreaker,
    Provider,
    RetryPolicy,
)
from abllm.telemetry import (
    GatewayMetrics,
    LLMSpanStart,
    end_llm_span,
    start_llm_span,
    trace_id_from_traceparent,
)
from abllm.telemetry.redact import INLINE_CHARS, reject_pii, run_off_loop

log = logging.getLogger("abllm.gateway")


#: Longest caller-chosen trace id kept (the event schema's id limit is 200).
TRACE_ID_CHARS = 128


def _caller_trace_id(value: str | None) -> str | None:
    """The caller's ``X-Abllm-Trace-Id``, unless it is too long or holds PII (then a fresh
    id is used and returned in the response header, so the caller can still join on it)."""
    if not value or len(value) > TRACE_ID_CHARS:
        return None
    try:
        return reject_pii(value, "trace id")
    except ValueError:
        return None


class Gateway:
    """The experiment-running proxy core, shared by the HTTP layer and tests."""

    def __init__(
        self,
        config: ExperimentFile,
        providers: ProviderSource,
        *,
        pipeline: EventSink | None = None,
        state: StateReader | None = None,
        metrics: GatewayMetrics | None = None,
        settings: GatewaySettings | None = None,
        assigner: LoopAssigner | None = None,
    ) -> None:
        self.config = config
        self.settings = settings or GatewaySettings()
        self.router = Router.build(config, self.settings.default_experiment)
        self.providers = providers
        self.pipeline = pipeline
        self.state: StateReader = state or InMemoryStateView()
        self.assigner = assigner
        self.metrics = metrics or GatewayMetrics()
        res = self.settings.resilience
        self.breakers = BreakerRegistry(
            failure_threshold=res.breaker_failures, reset_timeout_s=res.breaker_reset_s
        )
        self.metrics.watch_breakers(self.breakers.states)
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}
        self._sticky_fallbacks = Counter(
            "abllm_sticky_fallbacks",
            "Units given their hash assignment because the sticky store did not answer in time",
            ("experiment", "cause"),
            registry=self.metrics.registry,
        )
        self._policies: dict[int, RetryPolicy] = {}
        self.deadlines = Deadlines()
        self.dropped_events = 0
        self._exposed: set[tuple[str, int, str]] = set()
        # OrderedDict: evicting the oldest entry of a plain dict (``next(iter(d))``) scans the
        # deleted slots at its front, which turns O(n) once the cache is full.
        self._traces: OrderedDict[str, TraceInfo] = OrderedDict()
        self._assignments: dict[tuple[str, str], tuple[RuntimeState, Assignment]] = {}
        self._validators: dict[str, Any] = {}
        for exp in config.experiments:
            if exp.output_schema is not None:
                self._validators[exp.id] = validator_for(exp.output_schema)(exp.output_schema)

    # -- routing -------------------------------------------------------------------------
    async def route(self, call: ChatCall, headers: Mapping[str, str]) -> Routed:
        """Choose the experiment, the unit and its variant; emit the unit's exposure."""
        exp = self.router.route(call.model, headers.get(HEADER_EXPERIMENT))
        trace_id = (
            trace_id_from_traceparent(headers.get("traceparent"))
            or _caller_trace_id(headers.get(HEADER_TRACE))
            or os.urandom(16).hex()
        )
        unit = unit_id_for(exp, call.user, headers)
        started = time.monotonic()
        if unit is None:
            # Anonymous: nothing to hash, so the control answers and nothing is counted.
            return Routed(exp, exp.control, None, None, "anonymous", trace_id, started)
        a = await self._assign(exp, unit, call.user, headers)
        routed = Routed(
            exp,
            exp.variant(a.served_variant_id),
            a.variant_id,
            unit,
            str(a.reason),
            trace_id,
            started,
        )
        self._remember(routed)
        if routed.counted:
            key = (exp.id, exp.version, unit)
            if key not in self._exposed:
                if len(self._exposed) >= self.settings.exposure_cache_size:
                    self._exposed.clear()
                self._exposed.add(key)
                self.emit(
                    exposure_event(
                        exp, a.variant_id, unit, trace_id, routed.reason, a.weights, a.probability
                    )
                )
        return routed

    async def assignment(self, exp: Experiment, unit_id: str) -> Assignment:
        """The unit's assignment as the gateway would make it (for feedback by unit id)."""
        return await self._assign(exp, unit_id, None, {})

    async def _assign(
        self, exp: Experiment, unit: str, user: str | None, headers: Mapping[str, str]
    ) -> Assignment:
        """``assign``, memoised per unit while the runtime state object stays the same.

        Only experiments whose answer depends on nothing but (unit, state) are memoised: no
        targeting (attributes vary per request) and no start/end window (time varies). A
        sticky assigner is asked without blocking the loop; when its store does not answer
        the hash assignment serves (counted in ``abllm_sticky_fallbacks_total``) and is not
        memoised, so the unit goes back to the store once it answers.
        """
        state = self.state.get(exp.id)
        attributes = attributes_from(headers, user) if exp.targeting else None
        memo = not exp.targeting and exp.start is None and exp.end is None
        key = (exp.id, unit)
        if memo:
            hit = self._assignments.get(key)
            if hit is not None and hit[0] is state:
                return hit[1]
        if self.assigner is None:
            a = assign(exp, unit, attributes, None, state)
        else:
            a, fallback = await self.assigner.assign_async(exp, unit, attributes, None, state)
            if fallback is not None:
                self._sticky_fallbacks.labels(exp.id, fallback).inc()
                return a
        if memo:
            if len(self._assignments) >= self.settings.assignment_cache_size:
                self._assignments.clear()
            self._assignments[key] = (state, a)
        return a

    def _remember(self, r: Routed) -> None:
        traces = self._traces
        if len(traces) >= self.settings.trace_cache_size:
            traces.popitem(last=False)
        traces[r.trace_id] = TraceInfo(
            r.experiment.id, r.experiment.version, r.variant_id, r.unit_id, r.counted
        )

    def trace(self, trace_id: str) -> TraceInfo | None:
        """The recent request with this trace id, if this process served it."""
        return self._traces.get(trace_id)

    # -- provider calls ------------------------------------------------------------------
    def provider_for(self, llm: LLMConfig) -> Provider:
        """The pooled provider client serving ``llm``."""
        return self.providers.get(llm)

    def breaker(self, r: Routed, variant: Variant) -> CircuitBreaker:
        """The breaker of one arm (see ``BreakerRegistry.for_arm``), memoised per arm."""
        key = (r.experiment.id, variant.id)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = self.breakers.for_arm(variant.llm, r.experiment.id, variant.id)
            self._breakers[key] = breaker
        return breaker

    def policy(self, max_retries: int) -> RetryPolicy:
        """The retry policy for ``max_retries``, memoised."""
        policy = self._policies.get(max_retries)
        if policy is None:
            policy = self._policies[max_retries] = self.settings.resilience.policy(max_retries)
        return policy

    async def call(
        self, r: Routed, variant: Variant, call: ChatCall, deadline: float, rec: CallRecord
    ) -> ChatResponse:
        """One non-streaming call of ``variant`` with retries, its breaker and the deadline."""
        llm = variant.llm
        req = shape_request(call, llm, r.unit_id, r.trace_id)
        provider = self.provider_for(llm)
        breaker = self.breaker(r, variant)
        cap = llm.timeout_s

        async def attempt(n: int, remaining_s: float) -> ChatResponse:
            one = req if n == 0 else replace(req, attempt=n)
            timeout_s = remaining_s if cap is None else min(cap, remaining_s)
            # Providers enforce ``timeout_s`` themselves (aiohttp's total timeout, the sim's
            # plan); the request-wide deadline is enforced once, around the whole call.
            return await guarded(
                breaker, llm, timeout_s, lambda: provider.complete(one, llm, timeout_s)
            )

        attempts = Attempts()
        try:
            return await with_retries(
                attempt, self.policy(r.experiment.max_retries), deadline, attempts
            )
        finally:
            rec.attempts += attempts.count

    def has_schema(self, exp: Experiment) -> bool:
        """Whether answers of ``exp`` are checked against an ``output_schema``."""
        return exp.id in self._validators

    def schema_valid(self, exp: Experiment, content: str | None) -> bool | None:
        """Whether the answer satisfies ``output_schema`` (None when the experiment has none)."""
        validator = self._validators.get(exp.id)
        if validator is None:
            return None
        if content is None:
            return False
        try:
            value = orjson.loads(content)
        except orjson.JSONDecodeError:
            return False
        return bool(validator.is_valid(value))

    async def complete(self, r: Routed, call: ChatCall) -> tuple[dict[str, Any], CallRecord]:
        """Answer a non-streaming request; raises ProviderError only when no fallback exists."""
        exp = r.experiment
        fallback = r.fallback
        deadline = r.started + exp.timeout_s
        primary_deadline = r.started + exp.timeout_s / 2 if fallback else deadline
        rec = CallRecord(llm=r.variant.llm, stream=False)
        span = self.start_span(r, r.variant.llm, call)
        try:
            async with self.deadlines.hold(deadline, exp.timeout_s):
                try:
                    resp = await self.call(r, r.variant, call, primary_deadline, rec)
                    rec.add_usage(r.variant.llm, resp.model, resp.input_tokens, resp.output_tokens)
                    rec.schema_valid = self.schema_valid(exp, resp.content)
                    if rec.schema_valid is False and fallback is not None:
                        raise ProviderError(
                            f"answer of variant {r.variant.id} fails the experiment's "
                            "output_schema",
                            error_type="schema_invalid",
                            status=502,
                        )
                except ProviderError as exc:
                    rec.error_type, rec.error_message = exc.error_type, exc.message
                    if fallback is None:
                        raise
                    final_start = time.monotonic()
                    resp = await self.call(r, fallback, call, deadline, rec)
                    rec.add_usage(fallback.llm, resp.model, resp.input_tokens, resp.output_tokens)
                    rec.fallback, rec.fallback_model = True, fallback.llm.model
                else:
                    final_start = r.started
        except ProviderError as exc:
            if rec.error_type is None:
                rec.error_type, rec.error_message = exc.error_type, exc.message
            rec.latency_ms = (time.monotonic() - r.started) * 1000.0
            self.finish(r, rec, call, span)
            raise
        now = time.monotonic()
        # The sim provider reports simulated timings that a small time_scale shrinks in real
        # time; use them for the call that served the answer.
        served_ms = resp.latency_ms if resp.latency_ms is not None else (now - final_start) * 1e3
        offset_ms = (final_start - r.started) * 1000.0
        rec.latency_ms = offset_ms + served_ms
        rec.ttft_ms = None if resp.ttft_ms is None else offset_ms + resp.ttft_ms
        rec.finish_reason = resp.finish_reason
        rec.response_model = resp.model
        if exp.log_payloads:
            content = resp.content
            if content is not None:
                rec.answer.append(content)
        self.finish(r, rec, call, span)
        return resp.body, rec

    # -- measurement ---------------------------------------------------------------------
    def start_span(self, r: Routed, llm: LLMConfig, call: ChatCall) -> Any:
        return start_llm_span(
            LLMSpanStart(
                provider=llm.provider,
                model=llm.model,
                experiment_id=r.experiment.id,
                variant_id=r.variant.id,
                trace_id=r.trace_id,
                temperature=llm.temperature if llm.temperature is not None else call.temperature,
                top_p=llm.top_p if llm.top_p is not None else call.top_p,
                max_tokens=llm.max_tokens if llm.max_tokens is not None else call.max_tokens,
                stream=call.stream,
            )
        )

    def finish(self, r: Routed, rec: CallRecord, call: ChatCall, span: Any) -> None:
        """Close the span, count the metrics and emit the ``llm_call`` event."""
        end_llm_span(
            span,
            response_model=rec.response_model,
            input_tokens=rec.input_tokens,
            output_tokens=rec.output_tokens,
            finish_reasons=(rec.finish_reason,) if rec.finish_reason else (),
            error_type=rec.error_type,
            fallback=rec.fallback,
        )
        self.metrics.observe(rec.observation(r.experiment.id, r.metrics_label))
        if not r.counted or r.unit_id is None:
            return
        exp, unit = r.experiment, r.unit_id
        if exp.log_payloads and payload_chars(rec, call.messages) > INLINE_CHARS:
            # Redacting a long prompt takes milliseconds: build the event on the redaction
            # pool and emit it back on the loop.
            future = run_off_loop(
                lambda: llm_call_event(exp, r.variant_id, unit, r.trace_id, rec, call.messages)
            )
            future.add_done_callback(self._emit_built)
            return
        self.emit(llm_call_event(exp, r.variant_id, unit, r.trace_id, rec, call.messages))

    def _emit_built(self, future: asyncio.Future[Event]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.error("building an llm_call event failed", exc_info=exc)
            return
        self.emit(future.result())

    def emit(self, event: Event) -> None:
        """Hand an event to the pipeline without waiting; a full pipeline drops and counts it."""
        if self.pipeline is None:
            return
        try:
            self.pipeline.emit(event)
        except Backpressure:
            self.dropped_events += 1
            self.metrics.dropped_events.inc()
            if self.dropped_events in (1, 100, 10_000) or self.dropped_events % 100_000 == 0:
                log.warning("event pipeline full: %d events dropped so far", self.dropped_events)
