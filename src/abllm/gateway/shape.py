"""Applying a variant's ``llm`` block to the caller's request.

What the variant sets wins; what it leaves unset passes through from the caller:

- ``model`` always comes from the variant (the caller's ``model`` only routed the request);
- ``system_prompt`` replaces the caller's system messages (``system_prompt_mode: replace``) or is
  put in front of them (``prepend``);
- ``few_shot`` pairs go after the system messages and before the conversation;
- ``prompt_template`` wraps the last user message (``{input}`` is that message's text);
- ``temperature``, ``top_p``, ``max_tokens`` and ``stop`` override the caller's values when set
  (a variant's ``max_tokens`` also replaces the caller's ``max_completion_tokens``);
- ``params`` are merged over the caller's other body keys (``response_format``, ``tools``, ...).
"""

from __future__ import annotations

from typing import Any

from abllm.config import LLMConfig
from abllm.gateway.request import ChatCall
from abllm.providers import ChatRequest

_SYSTEM_ROLES = ("system", "developer")


def _apply_system(messages: list[dict[str, Any]], llm: LLMConfig) -> list[dict[str, Any]]:
    prompt = llm.system_prompt
    if prompt is None:
        return messages
    if llm.system_prompt_mode == "replace":
        rest = [m for m in messages if m.get("role") not in _SYSTEM_ROLES]
        return [{"role": "system", "content": prompt}, *rest]
    first = messages[0] if messages else None
    if (
        first is not None
        and first.get("role") == "system"
        and isinstance(first.get("content"), str)
    ):
        merged = {**first, "content": f"{prompt}\n\n{first['content']}"}
        return [merged, *messages[1:]]
    return [{"role": "system", "content": prompt}, *messages]


def _apply_few_shot(messages: list[dict[str, Any]], llm: LLMConfig) -> list[dict[str, Any]]:
    if not llm.few_shot:
        return messages
    cut = 0
    while cut < len(messages) and messages[cut].get("role") in _SYSTEM_ROLES:
        cut += 1
    shots: list[dict[str, Any]] = []
    for example in llm.few_shot:
        shots.append({"role": "user", "content": example.user})
        shots.append({"role": "assistant", "content": example.assistant})
    return [*messages[:cut], *shots, *messages[cut:]]


def _fill(template: str, text: str) -> str:
    # str.replace, not str.format: user text and templates may hold other braces (JSON, code).
    return template.replace("{input}", text)


def _apply_template(messages: list[dict[str, Any]], llm: LLMConfig) -> list[dict[str, Any]]:
    template = llm.prompt_template
    if template is None:
        return messages
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            new_content: Any = _fill(template, content)
        elif isinstance(content, list):
            new_content = list(content)
            for j, part in enumerate(new_content):
                if isinstance(part, dict) and part.get("type") == "text":
                    new_content[j] = {**part, "text": _fill(template, str(part.get("text", "")))}
                    break
        else:
            return messages
        out = list(messages)
        out[i] = {**message, "content": new_content}
        return out
    return messages


def shape_request(
    call: ChatCall, llm: LLMConfig, unit_id: str | None, trace_id: str
) -> ChatRequest:
    """The provider request for this variant: the variant's settings over the caller's."""
    messages = _apply_template(_apply_few_shot(_apply_system(call.messages, llm), llm), llm)
    params = {**call.params, **llm.params} if llm.params else call.params
    if llm.max_tokens is not None and "max_completion_tokens" in params:
        params = {k: v for k, v in params.items() if k != "max_completion_tokens"}
    return ChatRequest(
        model=llm.model,
        messages=messages,
        temperature=llm.temperature if llm.temperature is not None else call.temperature,
        top_p=llm.top_p if llm.top_p is not None else call.top_p,
        max_tokens=llm.max_tokens if llm.max_tokens is not None else call.max_tokens,
        stop=list(llm.stop) if llm.stop is not None else call.stop,
        params=params,
        stream=call.stream,
        unit_id=unit_id,
        trace_id=trace_id,
    )
