"""``wrap_openai`` with the official ``openai`` client against a fake OpenAI upstream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletion

from abllm import Client
from abllm.assign import Reason, assign
from abllm.config import ExperimentFile
from abllm.providers import cost_usd

from .conftest import load_upstream

upstream_module = load_upstream()
Upstream = upstream_module.Upstream
USAGE_OPENAI = upstream_module.USAGE_OPENAI

MESSAGES = [
    {"role": "system", "content": "You are a bot."},
    {"role": "user", "content": "hello there, how are you"},
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream(slow_s=0.5).start()
    yield up
    up.stop()


@pytest.fixture
def client(config: ExperimentFile, tmp_path: Path, upstream: Upstream) -> Iterator[Client]:
    upstream.reset()
    c = Client(config, store="duckdb:///:memory:", spool_dir=tmp_path / "spool")
    yield c
    c.close()


def oai(upstream: Upstream, **kw: Any) -> OpenAI:
    return OpenAI(api_key="sk-test", base_url=upstream.base_url + "/v1", max_retries=0, **kw)


def unit_in(client: Client, variant: str | None, reason: Reason = Reason.ASSIGNED) -> str:
    exp = client.snapshot.experiment("exp_tone")
    for i in range(1000):
        got = assign(exp, f"user-{i}")
        if got.variant_id == variant and got.reason == reason:
            return f"user-{i}"
    raise AssertionError("no unit")


def events(client: Client, kind: str) -> list[dict[str, Any]]:
    assert client.flush(10) and client.store is not None
    cols = [
        "variant_id",
        "unit_id",
        "trace_id",
        "latency_ms",
        "ttft_ms",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "error",
        "attrs",
    ]
    got = client.store.query(
        f"SELECT {', '.join(cols)} FROM abllm_events WHERE type = ? ORDER BY ts", [kind]
    )
    out = [dict(zip(cols, row, strict=True)) for row in got]
    for row in out:
        row["attrs"] = json.loads(str(row["attrs"]))
    return out


def test_variant_config_reaches_upstream_and_call_is_measured(
    client: Client, upstream: Upstream
) -> None:
    unit = unit_in(client, "warm")
    llm = client.wrap_openai(oai(upstream))
    resp = llm.chat.completions.create(
        model="tone", user=unit, messages=MESSAGES, temperature=0.1, extra_headers={"X-Team": "a"}
    )
    assert isinstance(resp, ChatCompletion)  # the SDK's own object, unchanged
    assert resp.choices[0].message.content == "echo: hello there, how are you"
    seen = upstream.seen[-1]
    assert seen.body["model"] == "gpt-4o"
    assert seen.body["messages"][0] == {"role": "system", "content": "Be warm and friendly."}
    assert seen.body["messages"][1:] == MESSAGES[1:]  # the caller's system prompt is replaced
    assert seen.body["temperature"] == 0.9 and seen.body["max_tokens"] == 64
    assert seen.body["seed"] == 7 and seen.body["user"] == unit  # params pass through
    assert {k.lower(): v for k, v in seen.headers.items()}["x-team"] == "a"
    last = llm.last
    assert last is not None and (last.experiment_id, last.variant_id) == ("exp_tone", "warm")
    assert last.model == "gpt-4o" and last.unit_id == unit
    (exposure,) = events(client, "exposure")
    (call,) = events(client, "llm_call")
    assert exposure["variant_id"] == "warm" and exposure["trace_id"] == last.trace_id
    assert call["variant_id"] == "warm" and call["trace_id"] == last.trace_id
    assert call["input_tokens"] == USAGE_OPENAI["prompt_tokens"]
    assert call["output_tokens"] == USAGE_OPENAI["completion_tokens"]
    assert call["cost_usd"] == pytest.approx(cost_usd("gpt-4o", 11, 7))
    assert call["latency_ms"] > 0 and call["ttft_ms"] is None and call["error"] == 0.0
    assert call["attrs"]["model"] == "gpt-4o" and call["attrs"]["provider"] == "openai"
    assert call["attrs"]["stream"] is False and call["attrs"]["finish_reason"] == "stop"
    # feedback by trace id lands on the same variant
    fb = client.track("exp_tone", unit, trace_id=last.trace_id, thumbs_up=True)
    assert fb is not None and fb.variant_id == "warm"


def test_streaming_measures_ttft_and_hides_usage_chunk(client: Client, upstream: Upstream) -> None:
    unit = unit_in(client, "control")
    llm = client.wrap_openai(oai(upstream))
    stream = llm.chat.completions.create(
        model="exp_tone", user=unit, messages=MESSAGES, stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "echo: hello there, how are you"
    assert all(c.choices for c in chunks)  # the usage-only chunk was not asked for
    assert upstream.seen[-1].body["stream_options"] == {"include_usage": True}
    assert upstream.seen[-1].body["model"] == "gpt-4o-mini"
    (call,) = events(client, "llm_call")
    assert call["variant_id"] == "control" and call["attrs"]["stream"] is True
    assert 0 < call["ttft_ms"] < call["latency_ms"]
    assert call["input_tokens"] == 11 and call["output_tokens"] == 7
    # asked for: the usage chunk is passed on
    again = llm.chat.completions.create(
        model="exp_tone",
        user=unit,
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert list(again)[-1].usage.prompt_tokens == 11


def test_stream_closed_early_is_recorded_as_aborted(client: Client, upstream: Upstream) -> None:
    llm = client.wrap_openai(oai(upstream))
    with llm.chat.completions.create(
        model="exp_tone", user=unit_in(client, "warm"), messages=MESSAGES, stream=True
    ) as stream:
        next(iter(stream))
    (call,) = events(client, "llm_call")
    assert call["attrs"]["client_aborted"] is True


def test_errors_are_recorded_then_raised(client: Client, upstream: Upstream) -> None:
    upstream.modes["gpt-4o"] = "500"
    unit = unit_in(client, "warm")
    llm = client.wrap_openai(oai(upstream))
    with pytest.raises(openai.InternalServerError):
        llm.chat.completions.create(model="exp_tone", user=unit, messages=MESSAGES)
    upstream.modes["gpt-4o"] = "429"
    with pytest.raises(openai.RateLimitError):
        llm.chat.completions.create(model="exp_tone", user=unit, messages=MESSAGES, stream=True)
    upstream.modes.clear()
    calls = events(client, "llm_call")
    assert [c["attrs"]["error_type"] for c in calls] == ["upstream_5xx", "rate_limited"]
    assert all(c["error"] == 1.0 and c["variant_id"] == "warm" for c in calls)
    assert "InternalServerError" in calls[0]["attrs"]["error_message"]


def test_holdout_headers_and_pass_through(client: Client, upstream: Upstream) -> None:
    llm = client.wrap_openai(oai(upstream))
    held = unit_in(client, None, Reason.HOLDOUT)
    # the unit can come from X-Abllm-Unit; abllm's headers do not travel upstream
    llm.chat.completions.create(
        model="exp_tone", messages=MESSAGES, extra_headers={"X-Abllm-Unit": held}
    )
    assert "x-abllm-unit" not in {k.lower() for k in upstream.seen[-1].headers}
    assert upstream.seen[-1].body["model"] == "gpt-4o-mini"  # the control serves the holdout
    assert llm.last is not None and llm.last.reason == "holdout"
    # a model that names no experiment passes through untouched, unmeasured
    llm.chat.completions.create(model="gpt-3.5-turbo", messages=MESSAGES, temperature=0.3)
    assert upstream.seen[-1].body["messages"] == MESSAGES
    assert upstream.seen[-1].body["temperature"] == 0.3
    assert llm.last is not None and llm.last.experiment_id is None
    # anonymous calls get the control and are not counted
    llm.chat.completions.create(model="exp_tone", messages=MESSAGES)
    assert llm.last is not None and llm.last.reason == "anonymous"
    (exposure,) = events(client, "exposure")
    (call,) = events(client, "llm_call")
    assert exposure["variant_id"] is None and exposure["attrs"]["reason"] == "holdout"
    assert call["variant_id"] is None and call["unit_id"] == held
    assert llm.models is llm._inner.models  # everything else is the wrapped client's


def test_async_client(client: Client, upstream: Upstream) -> None:
    unit = unit_in(client, "warm")

    async def run() -> tuple[str, str]:
        async with AsyncOpenAI(
            api_key="sk-test", base_url=upstream.base_url + "/v1", max_retries=0
        ) as raw:
            llm = client.wrap_openai(raw)
            resp = await llm.chat.completions.create(model="tone", user=unit, messages=MESSAGES)
            stream = await llm.chat.completions.create(
                model="tone", user=unit, messages=MESSAGES, stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            return str(resp.choices[0].message.content), text

    answer, streamed = asyncio.run(run())
    assert answer == streamed == "echo: hello there, how are you"
    calls = events(client, "llm_call")
    assert [c["attrs"]["stream"] for c in calls] == [False, True]
    assert all(c["variant_id"] == "warm" and c["input_tokens"] == 11 for c in calls)
    assert 0 < calls[1]["ttft_ms"] < calls[1]["latency_ms"]
    assert upstream.seen[-1].body["model"] == "gpt-4o"
