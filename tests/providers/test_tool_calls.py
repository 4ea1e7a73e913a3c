"""Tool-call reading and checks on whole answers and on streams."""

from __future__ import annotations

import json
from typing import Any

import pytest

from abllm.providers.tool_calls import (
    ToolCall,
    check_tool_calls,
    declared_tools,
    stream_tool_calls,
    tool_calls_of,
)

TOOLS = {
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        },
        {"type": "function", "function": {"name": "now"}},
    ]
}


def body(*calls: dict[str, Any]) -> dict[str, Any]:
    message = {"role": "assistant", "content": None, "tool_calls": list(calls)}
    return {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}


def call(name: str, arguments: str, call_id: str = "c") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def test_whole_answer_counts() -> None:
    answer = body(
        call("get_weather", '{"city": "Oslo"}', "c1"),
        call("get_weather", '{"town": "Oslo"}', "c2"),  # fails the schema
        call("now", "not json", "c3"),
        call("delete_db", "{}", "c4"),
    )
    calls = tool_calls_of(answer)
    assert [c.id for c in calls] == ["c1", "c2", "c3", "c4"]
    stats = check_tool_calls(calls, declared_tools(TOOLS))
    assert (stats.calls, stats.unknown_tools, stats.invalid_arguments) == (4, 1, 2)
    assert stats.unknown_names == ("delete_db",) and stats.violations == 3


def test_allowlist_narrows_declared_tools() -> None:
    calls = [ToolCall("get_weather", '{"city": "x"}'), ToolCall("now", "{}")]
    stats = check_tool_calls(calls, declared_tools(TOOLS), allowlist={"get_weather"})
    assert stats.unknown_names == ("now",) and stats.invalid_arguments == 0


def test_no_tool_calls_and_legacy_function_call() -> None:
    assert tool_calls_of({"choices": [{"message": {"content": "hi"}}]}) == []
    assert tool_calls_of({}) == []
    legacy = {"choices": [{"message": {"function_call": {"name": "now", "arguments": "{}"}}}]}
    assert tool_calls_of(legacy) == [ToolCall("now", "{}")]
    assert check_tool_calls([]).calls == 0


def chunks_for(calls: list[tuple[str, str]], piece: int = 4) -> list[dict[str, Any]]:
    """An OpenAI-style stream: id and name once, arguments in ``piece``-character slices."""
    out: list[dict[str, Any]] = [{"choices": [{"delta": {"role": "assistant"}}]}]
    for i, (name, args) in enumerate(calls):
        head = {
            "index": i,
            "id": f"c{i}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        out.append({"choices": [{"delta": {"tool_calls": [head]}}]})
        for j in range(0, len(args), piece):
            part = {"index": i, "function": {"arguments": args[j : j + piece]}}
            out.append({"choices": [{"delta": {"tool_calls": [part]}}]})
    out.append({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]})
    out.append({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    return out


@pytest.mark.parametrize("piece", [1, 3, 1000])
def test_stream_rebuilds_the_same_calls(piece: int) -> None:
    wanted = [("get_weather", json.dumps({"city": "Oslo"})), ("delete_db", "{}")]
    calls = stream_tool_calls(chunks_for(wanted, piece))
    assert [(c.name, c.arguments, c.id) for c in calls] == [
        ("get_weather", '{"city": "Oslo"}', "c0"),
        ("delete_db", "{}", "c1"),
    ]
    stats = check_tool_calls(calls, declared_tools(TOOLS))
    assert (stats.calls, stats.unknown_tools, stats.invalid_arguments) == (2, 1, 0)


def test_truncated_stream_arguments_are_invalid() -> None:
    calls = stream_tool_calls(chunks_for([("get_weather", '{"city": "Os')]))
    assert check_tool_calls(calls, declared_tools(TOOLS)).invalid_arguments == 1
