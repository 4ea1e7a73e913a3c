"""Pure parts of the request path: parsing, routing, unit ids and applying a variant."""

from __future__ import annotations

import orjson
import pytest

from abllm.config import LLMConfig, loads_experiments
from abllm.errors import NotFound
from abllm.gateway import BadRequest, Router, parse_chat_call, shape_request, unit_id_for
from abllm.gateway.routing import attributes_from


def call(**body):
    body.setdefault("model", "m")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return parse_chat_call(orjson.dumps(body))


def test_parse_keeps_unknown_keys_for_pass_through() -> None:
    c = call(temperature=1, seed=3, tools=[{"type": "function"}], user="u", stop="END")
    assert c.temperature == 1.0
    assert c.stop == ["END"]
    assert c.params == {"seed": 3, "tools": [{"type": "function"}], "user": "u"}
    assert not c.stream and not c.include_usage
    assert call(stream=True, stream_options={"include_usage": True}).include_usage


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"{", "body"),
        (b"[1]", "body"),
        (b'{"messages": "hi"}', "messages"),
        (b'{"messages": [1]}', "messages[0]"),
        (b'{"messages": [{"content": "x"}]}', "messages[0].role"),
        (b'{"messages": [{"role": "user"}], "temperature": "hot"}', "temperature"),
        (b'{"messages": [{"role": "user"}], "max_tokens": 1.5}', "max_tokens"),
        (b'{"messages": [{"role": "user"}], "stop": [1]}', "stop"),
        (b'{"messages": [{"role": "user"}], "stream": "yes"}', "stream"),
        (b'{"messages": [{"role": "user"}], "user": 7}', "user"),
        (b'{"messages": [{"role": "user"}], "model": 7}', "model"),
        (b'{"messages": [{"role": "user"}], "stream_options": 1}', "stream_options"),
    ],
)
def test_parse_errors_name_the_field(raw: bytes, field: str) -> None:
    with pytest.raises(BadRequest) as err:
        parse_chat_call(raw)
    assert err.value.message.startswith(f"{field}:")


MESSAGES = [
    {"role": "system", "content": "caller"},
    {"role": "user", "content": "first"},
    {"role": "assistant", "content": "ok"},
    {"role": "user", "content": [{"type": "text", "text": "last"}]},
]


def test_shape_replace_few_shot_template_and_params() -> None:
    llm = LLMConfig(
        model="v-model",
        system_prompt="variant",
        few_shot=[{"user": "q", "assistant": "a"}],
        prompt_template="Do: {input} {not a placeholder}",
        max_tokens=10,
        params={"seed": 1},
    )
    c = call(messages=MESSAGES, max_completion_tokens=99, seed=5, top_p=0.3)
    req = shape_request(c, llm, "unit", "trace")
    assert req.model == "v-model"
    assert req.messages == [
        {"role": "system", "content": "variant"},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "Do: last {not a placeholder}"}]},
    ]
    assert req.max_tokens == 10 and "max_completion_tokens" not in req.params
    assert req.params == {"seed": 1}  # the variant's params win
    assert req.top_p == 0.3  # not set by the variant: the caller's
    assert (req.unit_id, req.trace_id) == ("unit", "trace")
    assert c.messages == MESSAGES  # the caller's request is not mutated


def test_shape_prepend_and_pass_through() -> None:
    prepend = LLMConfig(model="m2", system_prompt="first rule", system_prompt_mode="prepend")
    req = shape_request(call(messages=MESSAGES, max_completion_tokens=99), prepend, None, "t")
    assert req.messages[0] == {"role": "system", "content": "first rule\n\ncaller"}
    assert req.params["max_completion_tokens"] == 99
    no_system = call(messages=[{"role": "user", "content": "x"}])
    assert shape_request(no_system, prepend, None, "t").messages[0]["content"] == "first rule"
    bare = shape_request(call(messages=MESSAGES), LLMConfig(model="m3"), None, "t")
    assert bare.messages == MESSAGES


CONFIG = """
experiments:
  - id: a
    aliases: [alias-a]
    variants: [{id: c, control: true, llm: {model: m}}, {id: t, llm: {model: m}}]
  - id: b
    unit: org
    fallback_unit: session
    variants: [{id: c, control: true, llm: {model: m}}]
"""


def test_routing() -> None:
    config = loads_experiments(CONFIG)
    router = Router.build(config)
    assert router.route("a", None).id == "a"
    assert router.route("alias-a", "b").id == "a"  # the model wins over the header
    assert router.route("gpt-4o", "b").id == "b"
    with pytest.raises(NotFound, match="unknown experiment 'zz'"):
        router.route("gpt-4o", "zz")
    with pytest.raises(NotFound, match="no default route"):
        router.route("gpt-4o", None)
    assert Router.build(config, "alias-a").route("gpt-4o", None).id == "a"
    single = loads_experiments(CONFIG.split("  - id: b")[0])
    assert Router.build(single).route("anything", None).id == "a"
    with pytest.raises(NotFound):
        Router.build(config, "missing")


def test_unit_ids_and_attributes() -> None:
    a, b = loads_experiments(CONFIG).experiments
    headers = {"x-abllm-unit": "hu", "x-abllm-org": "acme", "x-abllm-session": "s1"}
    assert unit_id_for(a, "body-user", headers) == "body-user"
    assert unit_id_for(a, None, headers) == "hu"
    assert unit_id_for(b, "body-user", headers) == "acme"
    assert unit_id_for(b, None, {"x-abllm-session": "s1"}) == "s1"  # fallback_unit
    assert unit_id_for(a, None, {}) is None
    attrs = attributes_from({"x-abllm-attr-plan-tier": "pro", **headers}, "u")
    assert attrs == {"plan_tier": "pro", "user": "u", "org": "acme", "session": "s1"}
