"""The runner: gateway shaping, bounded concurrency, failures, and a judge over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from abllm.config import Experiment, LLMConfig, loads_experiments
from abllm.eval.dataset import EvalRow
from abllm.eval.model import RunInfo
from abllm.eval.report import build_report, output_rows
from abllm.eval.runner import Runner, RunSpec
from abllm.providers import ChatRequest, ChatResponse, ProviderRegistry, StreamChunk

YAML = """
experiments:
  - id: shaped
    max_retries: 0
    variants:
      - id: a
        control: true
        llm: {model: m-a, system_prompt: "Be brief.", prompt_template: "Q: {input}",
              temperature: 0.1}
      - id: b
        llm: {model: m-b, few_shot: [{user: "2+2?", assistant: "4"}]}
"""

TOOL_CALLS = [
    {"id": "1", "function": {"name": "lookup", "arguments": '{"q": "x"}'}},
    {"id": "2", "function": {"name": "lookup", "arguments": "{bad"}},
    {"id": "3", "function": {"name": "drop_table", "arguments": "{}"}},
]

ROWS = [EvalRow(f"r{i}", [{"role": "user", "content": f"question {i}"}]) for i in range(10)]


class Recorder:
    """A provider (and provider source) that records requests and the calls in flight."""

    name = "fake"

    def __init__(self, fail_model: str | None = None) -> None:
        self.seen: list[ChatRequest] = []
        self.in_flight = 0
        self.peak = 0
        self.fail_model = fail_model

    def get(self, llm: LLMConfig) -> Recorder:
        return self

    async def complete(self, req: ChatRequest, llm: LLMConfig, timeout_s: float) -> ChatResponse:
        self.seen.append(req)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(0.005)
            if req.model == self.fail_model:
                raise KeyError("provider bug")
            message: dict[str, Any] = {"content": "ok answer"}
            if req.params.get("tools"):
                message = {"content": None, "tool_calls": TOOL_CALLS}
            body = {"choices": [{"message": message, "finish_reason": "stop"}]}
            return ChatResponse(body, 3, 2, "stop", req.model)
        finally:
            self.in_flight -= 1

    def stream(
        self, req: ChatRequest, llm: LLMConfig, timeout_s: float
    ) -> AsyncIterator[StreamChunk]:
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


def experiment(text: str = YAML) -> Experiment:
    return loads_experiments(text).experiments[0]


def test_requests_are_shaped_like_the_gateway_and_bounded() -> None:
    fake = Recorder()
    spec = RunSpec(experiment(), ROWS, ["length", "latency_ms"], repeat=2, concurrency=3)
    trials = asyncio.run(Runner(spec, fake).run())
    assert len(trials) == 40 and fake.peak == 3
    a = next(r for r in fake.seen if r.model == "m-a" and r.unit_id == "r0")
    assert a.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q: question 0"},
    ]
    assert a.temperature == 0.1 and a.trace_id in ("eval:r0:0", "eval:r0:1")
    b = next(r for r in fake.seen if r.model == "m-b" and r.unit_id == "r0")
    assert b.messages[:2] == [
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]
    assert all(t.scores["length"] == 9.0 for t in trials)


def test_a_failing_variant_is_recorded_not_fatal() -> None:
    fake = Recorder(fail_model="m-b")
    spec = RunSpec(experiment(), ROWS[:3], ["length"])
    trials = asyncio.run(Runner(spec, fake).run())
    failed = [t for t in trials if t.variant_id == "b"]
    assert [t.error_type for t in failed] == ["bad_response"] * 3
    assert all(t.scores == {} and t.output is None for t in failed)


def test_sim_errors_leave_rows_unscored() -> None:
    text = YAML.replace(
        "temperature: 0.1}", "temperature: 0.1, sim: {error_rate: 1, time_scale: 0}}"
    )
    spec = RunSpec(experiment(text), ROWS[:4], ["length"])
    trials = asyncio.run(Runner(spec, ProviderRegistry()).run())
    errors = {t.error_type for t in trials if t.variant_id == "a"}
    assert errors <= {"upstream_5xx", "rate_limited"} and errors


JUDGE_YAML = """
experiments:
  - id: judged
    variants:
      - id: only
        llm: {model: sim-small, sim: {error_rate: 0, time_scale: 0}}
    eval:
      judge:
        llm: {provider: openai, model: judge-model, base_url: BASE,
              api_key_env: ABLLM_TEST_JUDGE_KEY}
        rubric: Be correct.
        scale: [0, 10]
"""


def test_judge_over_an_openai_compatible_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABLLM_TEST_JUDGE_KEY", "sk-test")
    seen: list[dict[str, Any]] = []
    auth: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        auth.append(request.headers.get("Authorization", ""))
        case = json.loads(body["messages"][-1]["content"])
        score = 7 if case["input"] == "question 0" else 99  # 99 is off the scale
        content = f'Verdict: {{"score": {score}, "reason": "fine"}}'
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "model": "judge-model",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
            }
        )

    async def main() -> list[Any]:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handler)
        app_runner = web.AppRunner(app)
        await app_runner.setup()
        site = web.TCPSite(app_runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        exp = experiment(JUDGE_YAML.replace("BASE", f"http://127.0.0.1:{port}/v1"))
        registry = ProviderRegistry()
        try:
            return await Runner(RunSpec(exp, ROWS[:2], ["judge"]), registry).run()
        finally:
            await registry.aclose()
            await app_runner.cleanup()

    trials = asyncio.run(main())
    assert trials[0].judge_error is None, trials[0].judge_error
    assert trials[0].scores == {"judge": 7.0} and trials[0].judge_reason == "fine"
    assert trials[1].scores == {} and "outside the scale [0, 10]" in (trials[1].judge_error or "")
    fmt = seen[0]["response_format"]
    assert fmt["json_schema"]["name"] == "abllm_judge"
    assert "Be correct." in seen[0]["messages"][0]["content"]
    assert seen[0]["temperature"] == 0.0
    assert auth[0] == "Bearer sk-test"


def test_tool_calls_are_listed_and_checked() -> None:
    tools = "[{type: function, function: {name: lookup, parameters: {type: object}}}]"
    text = YAML.replace(
        'few_shot: [{user: "2+2?", assistant: "4"}]}', f"params: {{tools: {tools}}}}}"
    )
    exp = experiment(text)
    trials = asyncio.run(Runner(RunSpec(exp, ROWS[:2], ["length"]), Recorder()).run())
    b = [t for t in trials if t.variant_id == "b"]
    assert all(t.tool_violations == 2 and len(t.tool_calls) == 3 for t in b)
    assert all(t.output == "" and t.scores == {"length": 0.0} for t in b)
    info = RunInfo("r", exp.id, 1, datetime.now(UTC), "d", "s", 1, ("length",))
    report = build_report(exp, info, 2, trials)
    assert report["variants"]["b"]["tool_calls"] == 6
    assert report["variants"]["b"]["tool_violations"] == 4
    assert report["variants"]["a"]["tool_calls"] == 0
    line = next(r for r in output_rows(trials, 1) if r["variant_id"] == "b")
    assert line["tool_calls"][2] == {"name": "drop_table", "arguments": "{}"}
    assert line["tool_violations"] == 2


def test_progress_is_reported_once_per_answer() -> None:
    done: list[int] = []
    spec = RunSpec(experiment(), ROWS[:3], ["length"], repeat=2, on_done=lambda: done.append(1))
    asyncio.run(Runner(spec, Recorder()).run())
    assert len(done) == 3 * 2 * 2
