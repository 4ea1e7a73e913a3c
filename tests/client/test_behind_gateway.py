"""``wrap_openai`` pointed at ``abllm serve``: the gateway assigns, shapes and counts, once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI, OpenAI

from abllm import Client
from abllm.client import gateway_mode
from abllm.config import ExperimentFile, loads_experiments
from abllm.events import EventPipeline, open_store
from abllm.server import ServerThread, create_app

from .conftest import load_upstream

Upstream = load_upstream().Upstream

CONFIG = """
experiments:
  - id: exp_tone
    aliases: [tone]
    variants:
      - id: control
        control: true
        llm: {provider: openai, base_url: BASE/v1, model: gpt-4o-mini,
              system_prompt: "Be concise."}
      - id: warm
        llm: {provider: openai, base_url: BASE/v1, model: gpt-4o,
              system_prompt: "Be warm and friendly."}
"""
SECOND = """
  - id: exp_other
    variants:
      - id: control
        control: true
        llm: {provider: openai, base_url: BASE/v1, model: gpt-4o-mini}
"""
MESSAGES = [{"role": "user", "content": "hello there"}]


class Gateway:
    def __init__(self, config: ExperimentFile, tmp: Path) -> None:
        self.store = open_store("duckdb:///:memory:")
        self.pipeline = EventPipeline(self.store, spool_dir=tmp / "gw-spool")
        self.thread = ServerThread(create_app(config, pipeline=self.pipeline)).start()

    def rows(self, kind: str) -> list[tuple[Any, ...]]:
        self.pipeline.flush(10)
        sql = "SELECT variant_id, trace_id FROM abllm_events WHERE type = ? ORDER BY ts"
        return [tuple(r) for r in self.store.query(sql, [kind])]

    def close(self) -> None:
        self.thread.stop()
        self.pipeline.close()
        self.store.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[Any]:
    up = Upstream(slow_s=0.5).start()
    yield up
    up.stop()


def start(tmp: Path, upstream: Any, yaml: str) -> tuple[ExperimentFile, Gateway, Client]:
    upstream.reset()
    config = loads_experiments(yaml.replace("BASE", upstream.base_url))
    sdk = Client(config, store="duckdb:///:memory:", spool_dir=tmp / "sdk-spool")
    return config, Gateway(config, tmp), sdk


@pytest.fixture
def two(tmp_path: Path, upstream: Any) -> Iterator[tuple[ExperimentFile, Gateway, Client]]:
    config, gw, sdk = start(tmp_path, upstream, CONFIG + SECOND)
    yield config, gw, sdk
    sdk.close()
    gw.close()


def sdk_events(sdk: Client) -> int:
    assert sdk.flush(10) and sdk.store is not None
    return int(sdk.store.query("SELECT count(*) FROM abllm_events", [])[0][0])


def unit_in(config: ExperimentFile, variant: str) -> str:
    from abllm.assign import assign

    exp = config.get("exp_tone")
    return next(f"u{i}" for i in range(1000) if assign(exp, f"u{i}").variant_id == variant)


def test_calls_through_the_gateway_are_counted_once(
    two: tuple[ExperimentFile, Gateway, Client], upstream: Any
) -> None:
    config, gw, sdk = two
    unit = unit_in(config, "warm")
    llm = sdk.wrap_openai(OpenAI(base_url=f"{gw.thread.url}/v1", api_key="k", max_retries=0))
    for _ in range(2):
        resp = llm.chat.completions.create(model="tone", user=unit, messages=MESSAGES)
        assert resp.choices[0].message.content == "echo: hello there"
    assert llm.behind_gateway is True
    seen = upstream.seen[-1]  # shaped once, by the gateway: one system prompt
    assert seen.body["model"] == "gpt-4o"
    assert seen.body["messages"] == [
        {"role": "system", "content": "Be warm and friendly."},
        *MESSAGES,
    ]
    calls = gw.rows("llm_call")
    assert [variant for variant, _ in calls] == ["warm", "warm"]
    assert len(gw.rows("exposure")) == 1
    assert sdk_events(sdk) == 0  # nothing counted a second time
    last = llm.last
    assert last is not None and last.reason == gateway_mode.REASON_GATEWAY
    assert (last.experiment_id, last.variant_id, last.unit_id) == ("exp_tone", "warm", unit)
    assert last.trace_id == calls[-1][1]  # the gateway's trace id, for feedback


def test_streams_and_async_clients_through_the_gateway(
    two: tuple[ExperimentFile, Gateway, Client],
) -> None:
    config, gw, sdk = two
    unit = unit_in(config, "control")
    llm = sdk.wrap_openai(OpenAI(base_url=f"{gw.thread.url}/v1", api_key="k", max_retries=0))
    stream = llm.chat.completions.create(
        model="exp_tone", user=unit, messages=MESSAGES, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "echo: hello there"
    assert llm.last is not None and llm.last.variant_id == "control"

    async def run() -> str | None:
        client = AsyncOpenAI(base_url=f"{gw.thread.url}/v1", api_key="k", max_retries=0)
        allm = sdk.wrap_openai(client)
        resp = await allm.chat.completions.create(model="exp_tone", user=unit, messages=MESSAGES)
        assert allm.behind_gateway is True and allm.last is not None
        await client.close()
        return str(resp.choices[0].message.content)

    assert asyncio.run(run()) == "echo: hello there"
    assert [v for v, _ in gw.rows("llm_call")] == ["control", "control"]
    assert sdk_events(sdk) == 0


def test_an_answer_with_gateway_headers_is_not_counted_again(tmp_path: Path, upstream: Any) -> None:
    """Behind a proxy that hides /models, the answer's X-Abllm-* headers still tell."""
    config, gw, sdk = start(tmp_path, upstream, CONFIG)  # one experiment: the default route
    try:
        unit = unit_in(config, "warm")
        llm = sdk.wrap_openai(OpenAI(base_url=f"{gw.thread.url}/v1", api_key="k", max_retries=0))
        llm.behind_gateway = False  # as if the probe had found no gateway
        llm.chat.completions.create(model="exp_tone", user=unit, messages=MESSAGES)
        assert llm.behind_gateway is True
        assert sdk.flush(10) and sdk.store is not None
        kinds = sdk.store.query("SELECT type FROM abllm_events", [])
        assert [str(k[0]) for k in kinds] == ["exposure"]  # no llm_call: the gateway has it
        assert len(gw.rows("llm_call")) == 1
    finally:
        sdk.close()
        gw.close()


def test_no_probe_for_openai_itself_and_no_gateway_for_other_upstreams(upstream: Any) -> None:
    assert gateway_mode._probe_target(OpenAI(api_key="k")) is None
    azure = OpenAI(base_url="https://x.openai.azure.com/openai/v1", api_key="k")
    assert gateway_mode._probe_target(azure) is None
    assert gateway_mode.probe(OpenAI(base_url=f"{upstream.base_url}/v1", api_key="k")) is False
    assert gateway_mode.probe(OpenAI(base_url="http://127.0.0.1:9/v1", api_key="k")) is False
    assert gateway_mode.is_gateway_answer({"x-abllm-trace-id": "t", "x-abllm-variant": "v"})
    assert not gateway_mode.is_gateway_answer({"x-abllm-trace-id": "t"})


def test_calls_outside_experiments_spend_no_probe(
    two: tuple[ExperimentFile, Gateway, Client], upstream: Any
) -> None:
    _, _, sdk = two
    llm = sdk.wrap_openai(OpenAI(base_url=f"{upstream.base_url}/v1", api_key="k", max_retries=0))
    llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)  # not an experiment
    assert llm.behind_gateway is None  # still unknown: nothing was asked
    llm.chat.completions.create(model="exp_tone", user="u1", messages=MESSAGES)
    assert llm.behind_gateway is False  # the fake upstream lists no abllm models
    assert sdk_events(sdk) == 2  # counted here: exposure + llm_call
