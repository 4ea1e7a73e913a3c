"""``sim``: a seeded, deterministic simulated LLM, the offline default provider.

Each variant's :class:`~abllm.config.SimProfile` gives it a latency distribution, a time to
first token, a token rate, an error rate and a quality level, so a demo or a test can run a whole
experiment without a network and still see realistic differences between arms.

The model of one call (all draws from one RNG seeded by the request, so the same trace or unit
with the same request always gets the same answer and timings):

- total latency ~ log-normal with median ``latency_ms`` and log-sd ``latency_sigma``;
- time to first token ~ log-normal with median ``ttft_ms`` (same sigma), capped at 90 % of the
  total latency;
- output tokens ~ ``output_tokens`` × log-normal(0, 0.25), at least 1, cut at ``max_tokens``
  (``finish_reason: length``);
- streaming: one chunk per 20 ms of decoding at ``tokens_per_s`` (so faster models send fewer,
  larger chunks), spread evenly between the first token and the total latency;
- answers are grounded in the question and judge requests are graded by the words of the
  answer, both by ``quality`` (see :mod:`abllm.providers.sim_grading`);
- errors: with probability ``error_rate`` per attempt (drawn with the attempt number mixed in, so
  a retry can succeed), 3 of 4 are ``upstream_5xx`` and 1 of 4 ``rate_limited``; a simulated
  latency over the timeout budget raises ``timeout``.

``time_scale`` multiplies the real waits (0 answers at once, for tests); the simulated timings
are reported on :class:`ChatResponse` (``latency_ms``, ``ttft_ms``) and by :func:`plan`, so a fast
demo still records realistic latencies.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypedDict

from abllm.config.llm import LLMConfig, SimProfile
from abllm.errors import ProviderError
from abllm.providers.base import ChatRequest, ChatResponse, StreamChunk
from abllm.providers.sim_grading import grade, ground, last_user_text

_VOCAB = (
    "the key point is that results improve when teams measure each change carefully and ship "
    "only what users prefer while costs stay within budget so the summary highlights main "
    "findings clear next steps risks trade offs quality latency and customer impact"
)
_WORDS = tuple(_VOCAB.split(" "))
_TOKEN_SD = 0.25
_CHUNK_WINDOW_S = 0.02


@dataclass(frozen=True)
class SimPlan:
    """Everything the simulator decided about one call, before any waiting."""

    seed: int
    latency_ms: float
    ttft_ms: float
    input_tokens: int
    output_tokens: int
    finish_reason: str
    text: str
    chunk_tokens: int
    error_type: str | None


def _seed(req: ChatRequest) -> int:
    key = json.dumps(
        [
            req.trace_id or req.unit_id or "",
            req.model,
            req.messages,
            req.temperature,
            req.top_p,
            req.max_tokens,
            req.stop,
        ],
        sort_keys=True,
        default=str,
    )
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def _estimate_input_tokens(messages: list[dict[str, Any]]) -> int:
    """About 4 characters a token plus 4 tokens of framing a message (OpenAI's rule of thumb)."""
    total = 3
    for message in messages:
        content = message.get("content")
        text = content if isinstance(content, str) else json.dumps(content, default=str)
        total += 4 + (len(text) + 3) // 4
    return total


def _wants_json(params: dict[str, Any]) -> dict[str, Any] | None:
    fmt = params.get("response_format")
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else {}
    if fmt.get("type") == "json_object":
        return {}
    return None


def _instance(schema: dict[str, Any], words: list[str], depth: int = 0) -> Any:
    """A small value matching a simple JSON schema (objects, arrays, scalars, enums)."""
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object" if depth == 0 else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties")
        if not isinstance(props, dict) or not props:
            return {"answer": " ".join(words)}
        return {name: _instance(sub, words, depth + 1) for name, sub in props.items()}
    if kind == "array":
        items = schema.get("items")
        return [_instance(items if isinstance(items, dict) else {}, words, depth + 1)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 0.5))
    if kind == "boolean":
        return True
    return " ".join(words)


def plan(req: ChatRequest, llm: LLMConfig, timeout_s: float | None = None) -> SimPlan:
    """Decide the simulated answer, usage, timings and error for ``req`` (pure, deterministic).

    Raises ``upstream_4xx`` (400) for a ``max_tokens`` below 1, as a real upstream would.
    """
    if req.max_tokens is not None and req.max_tokens < 1:
        # What a real upstream answers; the plan could not hold a single token.
        raise ProviderError(
            f"sim model {req.model}: max_tokens must be at least 1, got {req.max_tokens}",
            error_type="upstream_4xx",
            status=400,
        )
    profile = llm.sim
    seed = _seed(req)
    rng = random.Random(seed)
    latency = rng.lognormvariate(math.log(profile.latency_ms), profile.latency_sigma)
    ttft = min(rng.lognormvariate(math.log(profile.ttft_ms), profile.latency_sigma), 0.9 * latency)
    tokens = max(1, round(profile.output_tokens * rng.lognormvariate(0.0, _TOKEN_SD)))
    finish = "stop"
    if req.max_tokens is not None and tokens > req.max_tokens:
        tokens, finish = req.max_tokens, "length"
    words = [rng.choice(_WORDS) for _ in range(tokens)]
    words = ground(words, last_user_text(req.messages), profile.quality, seed)
    schema = _wants_json(req.params)
    graded = grade(req.messages, req.params)
    if graded is not None:
        text = graded
    elif schema is not None:
        text = json.dumps(_instance(schema, words))
    else:
        words[0] = words[0].capitalize()
        text = " ".join(words) + "."
    # A separate stream for errors, with the attempt mixed in, keeps the answer itself stable.
    error_rng = random.Random(seed ^ (0x9E3779B97F4A7C15 * (req.attempt + 1)) & (2**64 - 1))
    error_type: str | None = None
    if error_rng.random() < profile.error_rate:
        error_type = "rate_limited" if error_rng.random() < 0.25 else "upstream_5xx"
    elif timeout_s is not None and latency > timeout_s * 1000.0:
        error_type = "timeout"
    return SimPlan(
        seed=seed,
        latency_ms=latency,
        ttft_ms=ttft,
        input_tokens=_estimate_input_tokens(req.messages),
        output_tokens=tokens,
        finish_reason=finish,
        text=text,
        chunk_tokens=max(1, math.ceil(profile.tokens_per_s * _CHUNK_WINDOW_S)),
        error_type=error_type,
    )


async def _wait(ms: float, profile: SimProfile) -> None:
    if profile.time_scale > 0 and ms > 0:
        await asyncio.sleep(ms / 1000.0 * profile.time_scale)


async def _fail(p: SimPlan, profile: SimProfile, model: str, timeout_s: float) -> None:
    """Wait as a failing upstream would, then raise the planned error."""
    if p.error_type == "timeout":
        await _wait(timeout_s * 1000.0, profile)
        raise ProviderError(
            f"sim model {model} exceeded the timeout of {timeout_s:g} s",
            error_type="timeout",
            status=504,
        )
    await _wait(p.ttft_ms, profile)
    if p.error_type == "rate_limited":
        raise ProviderError(
            f"sim model {model} returned HTTP 429 (simulated rate limit)",
            error_type="rate_limited",
            status=429,
        )
    raise ProviderError(
        f"sim model {model} returned HTTP 503 (simulated upstream error)",
        error_type="upstream_5xx",
        status=502,
    )


def _usage(p: SimPlan) -> dict[str, int]:
    return {
        "prompt_tokens": p.input_tokens,
        "completion_tokens": p.output_tokens,
        "total_tokens": p.input_tokens + p.output_tokens,
    }


def _pieces(text: str, count: int) -> list[str]:
    size = max(1, math.ceil(len(text) / max(1, count)))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class SimProvider:
    """The simulated LLM; stateless, so one instance serves every variant.

    >>> import asyncio
    >>> llm = LLMConfig(model="sim-small", sim={"time_scale": 0, "error_rate": 0})
    >>> req = ChatRequest(model="sim-small", messages=[{"role": "user", "content": "hi"}])
    >>> a = asyncio.run(SimProvider().complete(req, llm, 5.0))
    >>> b = asyncio.run(SimProvider().complete(req, llm, 5.0))
    >>> a.content == b.content and a.output_tokens == b.output_tokens
    True
    """

    name = "sim"

    async def complete(self, req: ChatRequest, llm: LLMConfig, timeout_s: float) -> ChatResponse:
        """Wait the simulated latency (× ``time_scale``), then answer or raise."""
        p = plan(req, llm, timeout_s)
        if p.error_type is not None:
            await _fail(p, llm.sim, req.model, timeout_s)
        await _wait(p.latency_ms, llm.sim)
        body = {
            "id": f"chatcmpl-sim-{p.seed:016x}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": p.text},
                    "logprobs": None,
                    "finish_reason": p.finish_reason,
                }
            ],
            "usage": _usage(p),
        }
        return ChatResponse(
            body=body,
            input_tokens=p.input_tokens,
            output_tokens=p.output_tokens,
            finish_reason=p.finish_reason,
            model=req.model,
            latency_ms=p.latency_ms,
            ttft_ms=p.ttft_ms,
        )

    async def stream(
        self, req: ChatRequest, llm: LLMConfig, timeout_s: float
    ) -> AsyncIterator[StreamChunk]:
        """Yield the planned answer in chunks paced by TTFT and the token rate, then usage."""
        p = plan(req, llm, timeout_s)
        profile = llm.sim
        budget_ms = timeout_s * 1000.0
        if p.error_type in ("upstream_5xx", "rate_limited") or (
            p.error_type == "timeout" and p.ttft_ms > budget_ms
        ):
            await _fail(p, profile, req.model, timeout_s)
        base = {
            "id": f"chatcmpl-sim-{p.seed:016x}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": req.model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> StreamChunk:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return {**base, "choices": [choice]}

        pieces = _pieces(p.text, math.ceil(p.output_tokens / p.chunk_tokens))
        gap = (p.latency_ms - p.ttft_ms) / max(1, len(pieces))
        await _wait(p.ttft_ms, profile)
        elapsed = p.ttft_ms
        yield chunk({"role": "assistant", "content": pieces[0]})
        for piece in pieces[1:]:
            if elapsed + gap > budget_ms:
                await _wait(budget_ms - elapsed, profile)
                raise ProviderError(
                    f"sim model {req.model} exceeded the timeout of {timeout_s:g} s mid-stream",
                    error_type="timeout",
                    status=504,
                )
            await _wait(gap, profile)
            elapsed += gap
            yield chunk({"content": piece})
        await _wait(p.latency_ms - elapsed, profile)
        yield chunk({}, p.finish_reason)
        yield {**base, "choices": [], "usage": _usage(p)}

    async def aclose(self) -> None:
        """Nothing to release."""


class SimFeedback(TypedDict):
    """What one simulated user reports about one answer."""

    rating: int
    thumbs_up: bool
    task_completed: bool


def simulate_feedback(profile: SimProfile, rng: random.Random) -> SimFeedback:
    """Draw a simulated user's feedback on an answer from a variant with this profile.

    rating: normal(``quality``, ``quality_sd``) rounded and clipped to 1..5 (so the mean rating
    rises with ``quality`` though clipping pulls it towards 3); thumbs_up: Bernoulli
    (``thumbs_up_rate``) when set, else rating ≥ 4; task_completed: Bernoulli
    (``task_completion_rate``).

    >>> simulate_feedback(SimProfile(quality=5, quality_sd=0), random.Random(1))["rating"]
    5
    """
    rating = min(5, max(1, round(rng.gauss(profile.quality, profile.quality_sd))))
    if profile.thumbs_up_rate is not None:
        thumbs_up = rng.random() < profile.thumbs_up_rate
    else:
        thumbs_up = rating >= 4
    task_completed = rng.random() < profile.task_completion_rate
    return SimFeedback(rating=rating, thumbs_up=thumbs_up, task_completed=task_completed)
