"""Tool calls in OpenAI-format answers: read them (whole or streamed) and check them.

Pure helpers with no I/O, for anything that measures answers (the gateway, ``abllm eval``):

- :func:`tool_calls_of` reads ``choices[0].message.tool_calls`` (and the legacy
  ``function_call``) from a ``chat.completion`` body;
- :class:`ToolCallAccumulator` rebuilds the same calls from ``chat.completion.chunk`` deltas,
  where a call's ``id`` and ``function.name`` arrive once and its ``arguments`` arrive in pieces
  keyed by ``index`` (OpenAI's streaming format);
- :func:`check_tool_calls` counts the calls, the unknown tools (not declared in the request's
  ``tools``, or outside an allowlist) and the invalid arguments (not a JSON object, or failing
  the declared ``parameters`` JSON schema).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jsonschema.validators import validator_for

from abllm.providers.base import StreamChunk


@dataclass(frozen=True)
class ToolCall:
    """One call: the tool's name and its raw ``arguments`` text (JSON, as the model wrote it)."""

    name: str
    arguments: str
    id: str | None = None


@dataclass(frozen=True)
class ToolCallStats:
    """Counts over one answer's tool calls, plus the names of the offending tools."""

    calls: int = 0
    unknown_tools: int = 0
    invalid_arguments: int = 0
    unknown_names: tuple[str, ...] = ()

    @property
    def violations(self) -> int:
        """Calls that broke a rule (unknown tool or invalid arguments; a call counts once)."""
        return self.unknown_tools + self.invalid_arguments


def _call(raw: Any) -> ToolCall | None:
    if not isinstance(raw, Mapping):
        return None
    fn = raw.get("function") if "function" in raw else raw
    if not isinstance(fn, Mapping):
        return None
    name, arguments = fn.get("name"), fn.get("arguments")
    call_id = raw.get("id")
    return ToolCall(
        name=name if isinstance(name, str) else "",
        arguments=arguments if isinstance(arguments, str) else json.dumps(arguments),
        id=call_id if isinstance(call_id, str) else None,
    )


def tool_calls_of(body: Mapping[str, Any]) -> list[ToolCall]:
    """The tool calls of the first choice of a ``chat.completion`` body (``[]`` when none)."""
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        return []
    message = choices[0].get("message")
    if not isinstance(message, Mapping):
        return []
    raw_calls = message.get("tool_calls")
    if isinstance(raw_calls, list):
        return [c for c in map(_call, raw_calls) if c is not None]
    legacy = _call(message.get("function_call"))
    return [legacy] if legacy is not None else []


@dataclass
class _Partial:
    id: str | None = None
    name: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)


class ToolCallAccumulator:
    """Collects the tool calls of a stream, chunk by chunk.

    >>> acc = ToolCallAccumulator()
    >>> acc.feed({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c1",
    ...     "function": {"name": "get_weather", "arguments": '{"city": '}}]}}]})
    >>> acc.feed({"choices": [{"delta": {"tool_calls": [{"index": 0,
    ...     "function": {"arguments": '"Oslo"}'}}]}}]})
    >>> acc.calls()
    [ToolCall(name='get_weather', arguments='{"city": "Oslo"}', id='c1')]
    """

    def __init__(self) -> None:
        self._parts: dict[int, _Partial] = {}

    def feed(self, chunk: StreamChunk) -> None:
        """Add one ``chat.completion.chunk``; chunks without tool-call deltas are ignored."""
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
            return
        delta = choices[0].get("delta")
        if not isinstance(delta, Mapping):
            return
        pieces = delta.get("tool_calls")
        if not isinstance(pieces, list):
            legacy = delta.get("function_call")
            pieces = [{"index": 0, "function": legacy}] if isinstance(legacy, Mapping) else []
        for piece in pieces:
            if not isinstance(piece, Mapping):
                continue
            index = piece.get("index", 0)
            part = self._parts.setdefault(index if isinstance(index, int) else 0, _Partial())
            if isinstance(piece.get("id"), str):
                part.id = piece["id"]
            fn = piece.get("function")
            if isinstance(fn, Mapping):
                if isinstance(fn.get("name"), str):
                    part.name.append(fn["name"])
                if isinstance(fn.get("arguments"), str):
                    part.arguments.append(fn["arguments"])

    def calls(self) -> list[ToolCall]:
        """The calls seen so far, in index order."""
        return [
            ToolCall("".join(p.name), "".join(p.arguments), p.id)
            for _, p in sorted(self._parts.items())
        ]


def declared_tools(params: Mapping[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Tool name -> its ``parameters`` JSON schema (None when absent), from a request's
    ``tools`` (and legacy ``functions``)."""
    out: dict[str, dict[str, Any] | None] = {}
    tools = params.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            schema = fn.get("parameters")
            out[fn["name"]] = schema if isinstance(schema, dict) else None
    functions = params.get("functions")
    for fn in functions if isinstance(functions, list) else []:
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            schema = fn.get("parameters")
            out[fn["name"]] = schema if isinstance(schema, dict) else None
    return out


def _valid_arguments(call: ToolCall, schema: dict[str, Any] | None) -> bool:
    try:
        value = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        return False
    if not isinstance(value, dict):
        return False
    return schema is None or bool(validator_for(schema)(schema).is_valid(value))


def check_tool_calls(
    calls: Sequence[ToolCall],
    declared: Mapping[str, dict[str, Any] | None] | None = None,
    allowlist: Collection[str] | None = None,
) -> ToolCallStats:
    """Count ``calls``, unknown tools and invalid arguments.

    A tool is unknown when ``declared`` (from :func:`declared_tools`) is non-empty and lacks its
    name, or when ``allowlist`` is given and lacks it. Arguments are checked only for known
    tools: they must be a JSON object meeting the declared ``parameters`` schema, if any.

    >>> calls = [ToolCall("search", '{"q": "x"}'), ToolCall("rm_rf", "{}")]
    >>> check_tool_calls(calls, allowlist={"search"}).unknown_tools
    1
    """
    unknown: list[str] = []
    invalid = 0
    for call in calls:
        if (declared and call.name not in declared) or (
            allowlist is not None and call.name not in allowlist
        ):
            unknown.append(call.name)
            continue
        schema = declared.get(call.name) if declared else None
        if not _valid_arguments(call, schema):
            invalid += 1
    return ToolCallStats(
        calls=len(calls),
        unknown_tools=len(unknown),
        invalid_arguments=invalid,
        unknown_names=tuple(dict.fromkeys(unknown)),
    )


def stream_tool_calls(chunks: Iterable[StreamChunk]) -> list[ToolCall]:
    """The tool calls of a whole stream (a convenience over :class:`ToolCallAccumulator`)."""
    acc = ToolCallAccumulator()
    for chunk in chunks:
        acc.feed(chunk)
    return acc.calls()
