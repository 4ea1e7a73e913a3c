"""The gateway driven by the official openai client against fake OpenAI/Anthropic upstreams."""

from __future__ import annotations

import pytest

from abllm.gateway.traceid import read_trace_id
from abllm.providers import cost_usd

from .upstream import USAGE_ANTHROPIC, USAGE_OPENAI

CONFIG = """
experiments:
  - id: exp_oa
    aliases: [support-bot]
    timeout_s: 3
    max_retries: 1
    variants:
      - id: control
        control: true
        llm: {provider: openai, model: gpt-4o-mini, base_url: BASE/v1,
              system_prompt: "You are the control.", temperature: 0.3}
      - id: treatment
        llm: {provider: openai, model: gpt-4o, base_url: BASE/v1, prompt_version: v2,
              system_prompt: "Be brief.", system_prompt_mode: prepend, temperature: 0.9,
              max_tokens: 64, prompt_template: "Summarize: {input}", stop: ["END"],
              few_shot: [{user: "example q", assistant: "example a"}], params: {seed: 7}}
  - id: exp_an
    unit: org
    variants:
      - id: control
        control: true
        llm: {provider: anthropic, model: claude-3-5-haiku-20241022, base_url: BASE,
              system_prompt: "Anthropic control."}
      - id: treatment
        llm: {provider: anthropic, model: claude-sonnet-4-20250514, base_url: BASE,
              system_prompt: "Anthropic treatment.", temperature: 0.1}
"""

MESSAGES = [
    {"role": "system", "content": "caller system"},
    {"role": "user", "content": "hello there"},
]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_treatment_config_reaches_upstream(live, fake, stream: bool) -> None:
    gw = live(CONFIG)
    unit = gw.unit_for("exp_oa", "treatment")
    raw = gw.client.chat.completions.with_raw_response.create(
        model="exp_oa",
        messages=MESSAGES,
        user=unit,
        temperature=0.1,
        top_p=0.5,
        response_format={"type": "text"},
        stream=stream,
    )
    assert raw.headers["x-abllm-experiment"] == "exp_oa"
    assert raw.headers["x-abllm-variant"] == "treatment"
    trace_id = raw.headers["x-abllm-trace-id"]
    assert read_trace_id(trace_id).variant_id == "treatment"  # signed: feedback from anywhere
    result = raw.parse()
    if stream:
        chunks = list(result)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert all(c.usage is None for c in chunks)  # the caller did not ask for usage
    else:
        text = result.choices[0].message.content
        assert result.usage.prompt_tokens == USAGE_OPENAI["prompt_tokens"]
    assert text == "echo: Summarize: hello there"

    (seen,) = fake.calls()
    body = seen.body
    assert body["model"] == "gpt-4o"
    assert body["temperature"] == 0.9  # the variant's value wins
    assert body["top_p"] == 0.5  # not controlled by the experiment: passes through
    assert body["max_tokens"] == 64
    assert body["stop"] == ["END"]
    assert body["seed"] == 7
    assert body["response_format"] == {"type": "text"}
    assert body["user"] == unit
    assert body["messages"] == [
        {"role": "system", "content": "Be brief.\n\ncaller system"},
        {"role": "user", "content": "example q"},
        {"role": "assistant", "content": "example a"},
        {"role": "user", "content": "Summarize: hello there"},
    ]

    (exposure,) = gw.events.of("exposure")
    (call,) = gw.events.of("llm_call")
    for event in (exposure, call):
        assert (event.experiment_id, event.variant_id, event.unit_id) == (
            "exp_oa",
            "treatment",
            unit,
        )
        assert event.trace_id == trace_id
    m = call.metrics
    assert m["input_tokens"] == USAGE_OPENAI["prompt_tokens"]
    assert m["output_tokens"] == USAGE_OPENAI["completion_tokens"]
    assert m["cost_usd"] == pytest.approx(cost_usd("gpt-4o", 11, 7))
    assert m["error"] is False and m["fallback"] is False
    assert m["latency_ms"] > 0
    if stream:
        assert 0 < m["ttft_ms"] < m["latency_ms"]
    assert call.attrs["model"] == "gpt-4o"
    assert call.attrs["prompt_version"] == "v2"
    assert call.attrs["provider"] == "openai"
    assert call.attrs["finish_reason"] == "stop"


def test_control_replaces_system_prompt_and_same_unit_same_variant(live, fake) -> None:
    gw = live(CONFIG)
    unit = gw.unit_for("exp_oa", "control")
    variants = set()
    for _ in range(3):
        raw = gw.client.chat.completions.with_raw_response.create(
            model="support-bot", messages=MESSAGES, user=unit, max_tokens=5
        )
        variants.add(raw.headers["x-abllm-variant"])
    assert variants == {"control"}
    body = fake.calls()[0].body
    assert body["model"] == "gpt-4o-mini"
    assert body["max_tokens"] == 5  # the control does not set it: the caller's value
    assert body["messages"][0] == {"role": "system", "content": "You are the control."}
    assert body["messages"][1:] == MESSAGES[1:]
    # One exposure per unit, one llm_call per request.
    assert len(gw.events.of("exposure")) == 1
    assert len(gw.events.of("llm_call")) == 3


def test_stream_usage_when_asked(live, fake) -> None:
    gw = live(CONFIG)
    unit = gw.unit_for("exp_oa", "control")
    chunks = list(
        gw.client.chat.completions.create(
            model="exp_oa",
            messages=MESSAGES,
            user=unit,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == USAGE_OPENAI["completion_tokens"]


def test_routing_by_header_and_unit_headers(live, fake) -> None:
    gw = live(CONFIG)
    client = gw.client.with_options(
        default_headers={"X-Abllm-Experiment": "exp_oa", "X-Abllm-Unit": "header-unit"}
    )
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.headers["x-abllm-experiment"] == "exp_oa"
    assert gw.events.of("llm_call")[0].unit_id == "header-unit"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_anthropic_upstream_org_unit(live, fake, stream: bool) -> None:
    gw = live(CONFIG)
    org = gw.unit_for("exp_an", "treatment")
    client = gw.client.with_options(default_headers={"X-Abllm-Org": org})
    raw = client.chat.completions.with_raw_response.create(
        model="exp_an", messages=MESSAGES, user="someone", stream=stream, max_tokens=100
    )
    assert raw.headers["x-abllm-variant"] == "treatment"
    result = raw.parse()
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in result if c.choices)
    else:
        text = result.choices[0].message.content
    assert text == "echo: hello there"
    (seen,) = fake.calls()
    assert seen.path == "/v1/messages"
    assert seen.body["model"] == "claude-sonnet-4-20250514"
    assert seen.body["system"] == "Anthropic treatment."
    assert seen.body["temperature"] == 0.1
    (call,) = gw.events.of("llm_call")
    assert call.unit_id == org
    assert call.metrics["input_tokens"] == USAGE_ANTHROPIC["input_tokens"]
    assert call.metrics["output_tokens"] == USAGE_ANTHROPIC["output_tokens"]
    assert call.metrics["cost_usd"] == pytest.approx(cost_usd("claude-sonnet-4-20250514", 12, 6))
    if stream:
        assert 0 < call.metrics["ttft_ms"] < call.metrics["latency_ms"]


def test_bad_requests_name_the_field(live, fake) -> None:
    import openai

    gw = live(CONFIG)
    with pytest.raises(openai.BadRequestError) as err:
        gw.client.chat.completions.create(model="exp_oa", messages=[], user="u")
    assert "messages" in str(err.value)
    with pytest.raises(openai.BadRequestError) as err:
        gw.client.chat.completions.create(
            model="exp_oa", messages=MESSAGES, user="u", temperature="hot"
        )
    assert "temperature" in str(err.value)
    with pytest.raises(openai.NotFoundError) as err:
        gw.client.chat.completions.create(model="nope", messages=MESSAGES, user="u")
    assert "exp_oa" in str(err.value)  # lists the known experiments


def test_kill_switch_serves_control_without_exposure(live, fake) -> None:
    from abllm.assign import RuntimeState

    gw = live(CONFIG)
    unit = gw.unit_for("exp_oa", "treatment")
    gw.state.set("exp_oa", RuntimeState(killed=True))
    raw = gw.client.chat.completions.with_raw_response.create(
        model="exp_oa", messages=MESSAGES, user=unit
    )
    assert raw.headers["x-abllm-variant"] == "control"
    assert fake.calls()[0].body["model"] == "gpt-4o-mini"
    assert gw.events.events == []


@pytest.mark.parametrize("sticky", [False, True], ids=["pure", "sticky"])
def test_assigner_hook_keeps_units_when_weights_move(live, fake, sticky: bool) -> None:
    from abllm.assign import RuntimeState
    from abllm.assign.sticky import MemoryStickyStore, StickyAssigner

    gw = live(CONFIG, assigner=StickyAssigner(MemoryStickyStore()) if sticky else None)
    unit = gw.unit_for("exp_oa", "treatment")

    def variant() -> str:
        raw = gw.client.chat.completions.with_raw_response.create(
            model="exp_oa", messages=MESSAGES, user=unit
        )
        return raw.headers["x-abllm-variant"]

    assert variant() == "treatment"
    gw.state.set("exp_oa", RuntimeState(weights={"control": 1.0, "treatment": 0.0}))
    assert variant() == ("treatment" if sticky else "control")


def test_holdback_units_get_control_and_variantless_events(live, fake) -> None:
    from abllm.assign import Reason, assign

    gw = live(CONFIG.replace("    timeout_s: 3\n", "    timeout_s: 3\n    holdout: 50\n", 1))
    exp = gw.experiments["exp_oa"]
    unit = next(f"h{i}" for i in range(1000) if assign(exp, f"h{i}").reason is Reason.HOLDOUT)
    raw = gw.client.chat.completions.with_raw_response.create(
        model="exp_oa", messages=MESSAGES, user=unit
    )
    assert raw.headers["x-abllm-variant"] == "control"
    assert fake.calls()[0].body["model"] == "gpt-4o-mini"
    (exposure,) = gw.events.of("exposure")
    (call,) = gw.events.of("llm_call")
    assert exposure.variant_id is None and exposure.attrs["reason"] == "holdout"
    assert call.variant_id is None and call.unit_id == unit
    metrics = gw.app.state.abllm.gateway.metrics.render().decode()
    assert 'variant="out:holdout"' in metrics
