"""Reading an OpenAI Chat Completions request on the hot path.

The body is parsed once (orjson) and only the fields the gateway uses are checked, by hand: a
pydantic model of the whole OpenAI request would validate dozens of fields we pass through
untouched and cost more than the rest of the request path (DESIGN.md: FastAPI with a pydantic
request model ≈ 4,000 req/s against ≈ 6,600 for a bare proxy). Every other key of the body passes
through to the provider as-is. A bad field gets a 400 that names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from abllm.errors import ValidationError
from abllm.events.models import check_id

#: Body keys the gateway reads or sets itself; everything else passes through in ``params``.
CONTROLLED_KEYS = frozenset(
    {
        "model",
        "messages",
        "temperature",
        "top_p",
        "max_tokens",
        "stop",
        "stream",
        "stream_options",
        "user",
    }
)
MAX_BODY_BYTES = 4 * 1024 * 1024
#: Nesting deeper than this anywhere in the body is refused: deeper documents only serve to make
#: recursive encoders (``json.dumps`` in providers, loggers) raise ``RecursionError``.
MAX_DEPTH = 64
MAX_MESSAGES = 2048


class BadRequest(ValidationError):
    """A request field is missing or has the wrong type; ``param`` names it (OpenAI's shape)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class ChatCall:
    """The caller's request, checked where the gateway uses it.

    ``params`` holds every other body key (``response_format``, ``tools``, ``seed``, ``n`` ...),
    passed through to the provider unless the variant sets the same key.
    """

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    user: str | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    stop: list[str] | None
    params: dict[str, Any]
    include_usage: bool = False


#: Numeric sampling parameters and their allowed ranges, as the OpenAI API reference documents
#: them (https://platform.openai.com/docs/api-reference/chat/create). Checked here so a value
#: the upstream would refuse gets a 400 naming it instead of a call that can only fail.
RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "presence_penalty": (-2.0, 2.0),
    "frequency_penalty": (-2.0, 2.0),
}
#: Integer parameters and their minimum (and maximum, where the API sets one).
INT_RANGES: dict[str, tuple[int, int | None]] = {
    "max_tokens": (1, None),
    "max_completion_tokens": (1, None),
    "n": (1, 128),
    "top_logprobs": (0, 20),
    "seed": (-(2**63), 2**63 - 1),
}
_BOOLS = ("logprobs", "parallel_tool_calls")


def _number(body: Mapping[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{key}: must be a number, got {type(value).__name__}", key)
    low, high = RANGES.get(key, (float("-inf"), float("inf")))
    if not low <= value <= high:
        raise BadRequest(f"{key}: must be between {low:g} and {high:g}, got {value!r}", key)
    return float(value)


def _integer(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key}: must be an integer, got {type(value).__name__}", key)
    low, high = INT_RANGES[key]
    if value < low:
        raise BadRequest(f"{key}: must be at least {low}, got {value}", key)
    if high is not None and value > high:
        raise BadRequest(f"{key}: must be at most {high}, got {value}", key)
    return value


def _check_params(body: Mapping[str, Any]) -> None:
    """Range-check the pass-through parameters the upstream would refuse."""
    for key in ("presence_penalty", "frequency_penalty"):
        _number(body, key)
    for key in ("max_completion_tokens", "n", "top_logprobs", "seed"):
        _integer(body, key)
    for key in _BOOLS:
        value = body.get(key)
        if value is not None and not isinstance(value, bool):
            raise BadRequest(f"{key}: must be true or false", key)


def _stop(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return value
    raise BadRequest("stop: must be a string or a list of strings", "stop")


def _messages(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise BadRequest("messages: must be a non-empty list of messages", "messages")
    if len(value) > MAX_MESSAGES:
        raise BadRequest(f"messages: over the limit of {MAX_MESSAGES} messages", "messages")
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise BadRequest(f"messages[{i}]: must be an object", f"messages[{i}]")
        if not isinstance(message.get("role"), str):
            raise BadRequest(f"messages[{i}].role: must be a string", f"messages[{i}].role")
    return value


def _check_depth(body: dict[str, Any]) -> None:
    """Refuse nesting past ``MAX_DEPTH`` (iteratively: the check itself cannot recurse)."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadRequest(f"body: nested deeper than {MAX_DEPTH} levels")
        children = value.values() if isinstance(value, dict) else value
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def parse_chat_call(raw: bytes) -> ChatCall:
    """Parse and check a Chat Completions body; raise :class:`BadRequest` naming the field."""
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"body: {len(raw)} bytes is over the limit of {MAX_BODY_BYTES} bytes")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body: not valid JSON ({exc})") from None
    if not isinstance(body, dict):
        raise BadRequest("body: must be a JSON object")
    _check_depth(body)
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("model: must be a string", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise BadRequest("stream: must be true or false", "stream")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise BadRequest("user: must be a string", "user")
    if user:  # the unit id of the request's events: the same limits as on /v1/events
        try:
            check_id(user, "user")
        except ValidationError as exc:
            raise BadRequest(exc.message, "user") from None
    max_tokens = _integer(body, "max_tokens")
    _check_params(body)
    params = {k: v for k, v in body.items() if k not in CONTROLLED_KEYS}
    if body.get("user") is not None:
        params["user"] = user
    return ChatCall(
        model=model or "",
        messages=_messages(body.get("messages")),
        stream=bool(stream),
        user=user,
        temperature=_number(body, "temperature"),
        top_p=_number(body, "top_p"),
        max_tokens=max_tokens,
        stop=_stop(body.get("stop")),
        params=params,
        include_usage=_include_usage(body.get("stream_options")),
    )


def _include_usage(options: Any) -> bool:
    if options is None:
        return False
    if not isinstance(options, dict):
        raise BadRequest("stream_options: must be an object", "stream_options")
    return bool(options.get("include_usage"))
