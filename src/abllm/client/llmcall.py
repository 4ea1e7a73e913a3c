"""One wrapped OpenAI call: route and assign, shape the request, measure the answer, emit events.

The request is shaped by the gateway's own code (``abllm.gateway.shape.shape_request``) and the
events are built by the gateway's builders (``abllm.gateway.measure``), so a call through the
SDK and the same call through the gateway send the provider the same body and store the same
events. What differs is only who makes the HTTP call: here, the application's OpenAI client.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import openai

from abllm.client.model import LastCall
from abllm.client.model import counted as is_counted
from abllm.config import Experiment, LLMConfig
from abllm.errors import ValidationError
from abllm.gateway.measure import CallRecord, llm_call_event
from abllm.gateway.request import CONTROLLED_KEYS, ChatCall
from abllm.gateway.routing import HEADER_EXPERIMENT, HEADER_TRACE, attributes_from, unit_id_for
from abllm.gateway.shape import shape_request

if TYPE_CHECKING:
    from abllm.client.core import Client

#: Keyword arguments of ``create`` that configure the OpenAI SDK rather than the request body.
SDK_OPTIONS = ("extra_headers", "extra_query", "extra_body", "timeout")
_ABLLM_PREFIX = "x-abllm-"


def _given(value: Any) -> bool:
    return not isinstance(value, openai.NotGiven | openai.Omit)


def _message(value: Any, i: int) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    dump = getattr(value, "model_dump", None)  # e.g. a ChatCompletionMessage appended as-is
    if dump is not None:
        data = dump(exclude_none=True)
        if isinstance(data, dict):
            return data
    raise ValidationError(f"messages[{i}]: must be a message object (a dict with `role`)")


def chat_call(body: Mapping[str, Any]) -> ChatCall:
    """The caller's keyword arguments as the gateway's :class:`ChatCall`."""
    raw = body.get("messages")
    if isinstance(raw, str | bytes | Mapping) or not isinstance(raw, Iterable):
        raise ValidationError("messages: must be a non-empty list of messages")
    messages = [_message(m, i) for i, m in enumerate(raw)]
    if not messages:
        raise ValidationError("messages: must be a non-empty list of messages")
    stop = body.get("stop")
    options = body.get("stream_options")
    params = {k: v for k, v in body.items() if k not in CONTROLLED_KEYS}
    if body.get("user") is not None:
        params["user"] = body["user"]
    return ChatCall(
        model=str(body.get("model") or ""),
        messages=messages,
        stream=bool(body.get("stream")),
        user=body.get("user"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        max_tokens=body.get("max_tokens"),
        stop=[stop] if isinstance(stop, str) else (list(stop) if stop is not None else None),
        params=params,
        include_usage=bool(isinstance(options, Mapping) and options.get("include_usage")),
    )


def error_type(exc: BaseException) -> str:
    """The gateway's ``error_type`` vocabulary (``abllm.providers.ERROR_TYPES``) for an error
    the OpenAI SDK raised."""
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError | ConnectionError):
        return "connection"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return "auth"
    if isinstance(exc, openai.APIStatusError):
        return "upstream_5xx" if exc.status_code >= 500 else "upstream_4xx"
    return "bad_response"


class LLMCall:
    """One call in flight: prepared by :func:`prepare`, fed the answer, finished once."""

    def __init__(
        self,
        client: Client,
        last: LastCall,
        kwargs: dict[str, Any],
        exp: Experiment | None = None,
        llm: LLMConfig | None = None,
        counted: bool = False,
        prompt: list[dict[str, Any]] | None = None,
        include_usage: bool = True,
    ) -> None:
        self.client = client
        self.last = last
        self.kwargs = kwargs
        self.exp = exp
        self.counted = counted
        self.prompt = prompt
        self.include_usage = include_usage
        self.stream = bool(kwargs.get("stream"))
        self.rec = CallRecord(llm=llm, stream=self.stream, attempts=1) if llm else None
        self.started = time.monotonic()
        self.finished = False

    def on_response(self, resp: Any) -> None:
        """Read usage, finish reason and model off a ``ChatCompletion``; then finish."""
        rec = self.rec
        if rec is not None:
            choices = getattr(resp, "choices", None) or []
            if choices:
                rec.finish_reason = getattr(choices[0], "finish_reason", None)
                message = getattr(choices[0], "message", None)
                content = getattr(message, "content", None)
                if isinstance(content, str) and self.exp is not None and self.exp.log_payloads:
                    rec.answer.append(content)
            self._usage(resp)
        self.finish()

    def on_chunk(self, chunk: Any) -> bool:
        """Measure one stream chunk; False for the usage-only chunk the caller did not ask for."""
        rec = self.rec
        choices = getattr(chunk, "choices", None) or []
        if rec is not None and choices:
            delta = getattr(choices[0], "delta", None)
            text = getattr(delta, "content", None)
            if text:
                if rec.ttft_ms is None:
                    rec.ttft_ms = (time.monotonic() - self.started) * 1000.0
                if self.exp is not None and self.exp.log_payloads:
                    rec.answer.append(text)
            finish = getattr(choices[0], "finish_reason", None)
            if finish:
                rec.finish_reason = finish
        if getattr(chunk, "usage", None) is None:
            return True
        if rec is not None:
            self._usage(chunk)
        return bool(choices) or self.include_usage

    def _usage(self, obj: Any) -> None:
        rec = self.rec
        usage = getattr(obj, "usage", None)
        if rec is None or usage is None:
            return
        model = getattr(obj, "model", None)
        if isinstance(model, str) and model:
            rec.response_model = model
        rec.add_usage(
            rec.llm,
            rec.response_model or rec.llm.model,
            getattr(usage, "prompt_tokens", None),
            getattr(usage, "completion_tokens", None),
        )

    def counted_elsewhere(self) -> None:
        """The answer came from an abllm gateway, which recorded this call: emit nothing."""
        self.counted = False

    def fail(self, exc: BaseException) -> None:
        """Record the error (or the caller leaving, for non-``Exception`` exits); then finish."""
        if self.rec is not None and not self.finished:
            if isinstance(exc, Exception):
                self.rec.error_type = error_type(exc)
                self.rec.error_message = f"{type(exc).__name__}: {exc}"
            else:
                self.rec.aborted = True  # KeyboardInterrupt, GeneratorExit, cancellation
        self.finish()

    def finish(self, aborted: bool = False) -> None:
        """Emit the ``llm_call`` event (once; only for units the experiment counts)."""
        if self.finished:
            return
        self.finished = True
        rec, exp, last = self.rec, self.exp, self.last
        if rec is None or exp is None or not self.counted or last.unit_id is None:
            return
        rec.latency_ms = (time.monotonic() - self.started) * 1000.0
        rec.aborted = rec.aborted or aborted
        event = llm_call_event(exp, last.variant_id, last.unit_id, last.trace_id, rec, self.prompt)
        self.client.emit(event)


_AS_OPENAI: dict[int, tuple[LLMConfig, LLMConfig]] = {}


def _as_openai(llm: LLMConfig) -> LLMConfig:
    """The variant's config as measured here: the call went through an OpenAI client, whatever
    ``provider`` the YAML names (``sim`` is the default). Memoised by identity (a copy costs
    ≈ 10 µs); the cache is bounded because a config refresh brings new objects."""
    if llm.provider == "openai":
        return llm
    hit = _AS_OPENAI.get(id(llm))
    if hit is not None and hit[0] is llm:
        return hit[1]
    if len(_AS_OPENAI) > 1024:
        _AS_OPENAI.clear()
    copy = llm.model_copy(update={"provider": "openai"})
    _AS_OPENAI[id(llm)] = (llm, copy)
    return copy


def _split_headers(sdk: dict[str, Any]) -> dict[str, str]:
    """``X-Abllm-*`` headers out of ``extra_headers`` (lower-cased); the rest still go upstream."""
    extra = sdk.get("extra_headers")
    if not isinstance(extra, Mapping):
        return {}
    ours = {str(k).lower(): str(v) for k, v in extra.items() if _given(v) and v is not None}
    ours = {k: v for k, v in ours.items() if k.startswith(_ABLLM_PREFIX)}
    forward = {k: v for k, v in extra.items() if not str(k).lower().startswith(_ABLLM_PREFIX)}
    if forward:
        sdk["extra_headers"] = forward
    else:
        del sdk["extra_headers"]
    return ours


def prepare(client: Client, kwargs: dict[str, Any], accepted: frozenset[str] | None) -> LLMCall:
    """Route, assign and shape one ``create(**kwargs)`` call.

    ``accepted`` names the keyword arguments the wrapped ``create`` takes; other body keys (a
    variant's provider-specific ``params``) travel in ``extra_body``.
    """
    body = {k: v for k, v in kwargs.items() if _given(v)}
    sdk = {k: body.pop(k) for k in SDK_OPTIONS if k in body}
    headers = _split_headers(sdk)
    trace_id = headers.get(HEADER_TRACE) or os.urandom(16).hex()
    snap = client.snapshot
    model = body.get("model")
    exp = snap.find(model) if isinstance(model, str) else None
    if exp is None and headers.get(HEADER_EXPERIMENT):
        exp = snap.experiment(headers[HEADER_EXPERIMENT])
    if exp is None:  # not an experiment: the call passes through untouched
        last = LastCall(trace_id, None, None, None, None, "no_experiment", model)
        return LLMCall(client, last, {**body, **sdk})
    call = chat_call(body)
    unit = unit_id_for(exp, call.user, headers)
    counted = False
    if unit is None:  # anonymous: the control answers and nothing is counted (as the gateway)
        variant, variant_id, reason = exp.control, None, "anonymous"
    else:
        attrs = attributes_from(headers, call.user) if exp.targeting else None
        a = client._serve(snap, exp, unit, attrs, trace_id)
        variant, variant_id, reason = exp.variant(a.served_variant_id), a.variant_id, str(a.reason)
        counted = is_counted(a)
    llm = variant.llm
    req = shape_request(call, llm, unit, trace_id)
    out = req.to_openai_body()
    if accepted is not None:
        unknown = {k: out.pop(k) for k in list(out) if k not in accepted}
        if unknown:
            sdk["extra_body"] = {**unknown, **(sdk.get("extra_body") or {})}
    sdk.setdefault("timeout", llm.timeout_s or exp.timeout_s)
    last = LastCall(trace_id, exp.id, variant_id, variant.id, unit, reason, llm.model)
    measured = _as_openai(llm)
    return LLMCall(
        client,
        last,
        {**out, **sdk},
        exp=exp,
        llm=measured,
        counted=counted,
        prompt=req.messages,
        include_usage=call.include_usage,
    )
