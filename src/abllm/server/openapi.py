"""The complete OpenAPI document: the routes FastAPI cannot see, with typed bodies.

``POST /v1/chat/completions`` is answered before FastAPI routes (:mod:`abllm.server.app`), and
``/v1/feedback`` and ``/v1/events`` read their raw bodies (parsed once, off the loop), so FastAPI
infers no schema for them. The models here describe those wire shapes; :func:`install` adds them
to the generated document, which ``/docs`` and ``/redoc`` render. The models document; the
routes' own readers validate (and name the bad field).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field

from abllm.events.models import Event


class ErrorDetail(BaseModel):
    """``code`` is stable and machine-readable; ``message`` names the field or the limit."""

    code: str = Field(examples=["invalid_request"])
    message: str = Field(examples=["messages[0].role: must be a string"])


class ErrorResponse(BaseModel):
    """Every error: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


class ChatMessage(BaseModel):
    """One OpenAI chat message (other keys such as ``tool_calls`` pass through)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """The OpenAI Chat Completions body; ``model`` names an experiment id or alias.

    ``user`` (or the ``X-Abllm-Unit`` header) is the unit assigned to a variant. Keys not listed
    pass through to the provider unless the variant sets them.
    """

    model_config = ConfigDict(extra="allow")

    model: str = Field(examples=["exp_summarize_v2"])
    messages: list[ChatMessage] = Field(min_length=1)
    user: str | None = Field(default=None, max_length=200)
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None


class ChatChoice(BaseModel):
    index: int
    message: ChatMessage
    finish_reason: str | None = None


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionResponse(BaseModel):
    """The OpenAI shape; headers ``X-Abllm-Experiment`` and ``X-Abllm-Variant`` say who served."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage | None = None


class FeedbackRequest(BaseModel):
    """Feedback for the call ``trace_id`` served, or for ``experiment_id`` + ``unit_id``.

    Any other key is a metric (number or boolean: ``rating``, ``thumbs_up``, ...) or, as a
    string, an attribute stored after PII redaction.
    """

    model_config = ConfigDict(extra="allow")

    trace_id: str | None = None
    experiment_id: str | None = None
    unit_id: str | None = None
    rating: float | None = None
    thumbs_up: bool | None = None


class FeedbackResponse(BaseModel):
    recorded: bool
    event_id: str | None = None
    experiment_id: str | None = None
    variant_id: str | None = None
    unit_id: str | None = None
    reason: str | None = None


class EventBatch(BaseModel):
    """At most 1,000 events and 1 MB; a bare JSON array of events is accepted too."""

    events: list[Event] = Field(max_length=1000)


class EventsResponse(BaseModel):
    accepted: int


_ERRORS = {
    "400": "invalid request (the message names the field)",
    "401": "missing or invalid API key",
    "403": "this key's scope does not cover the route",
    "413": "body over the route's limit",
    "429": "retry later (Retry-After)",
    "503": "store unavailable (Retry-After)",
}


def _json(ref: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}


def _operation(
    summary: str, request: str, response: str, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": _json(response)}}
    responses.update(
        {
            code: {"description": text, "content": _json("ErrorResponse")}
            for code, text in _ERRORS.items()
        }
    )
    op = {
        "summary": summary,
        "requestBody": {"required": True, "content": _json(request)},
        "responses": responses,
        "security": [{"bearer": []}],
    }
    op.update(extra or {})
    return op


_MODELS: tuple[type[BaseModel], ...] = (
    ErrorResponse,
    ChatCompletionRequest,
    ChatCompletionResponse,
    FeedbackRequest,
    FeedbackResponse,
    EventBatch,
    EventsResponse,
)


def build_schema(app: FastAPI, chat_path: str) -> dict[str, Any]:
    """FastAPI's document plus the chat, feedback and events bodies and the bearer scheme."""
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in _MODELS:
        js = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(js.pop("$defs", {}))
        schemas[model.__name__] = js
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    paths = schema.setdefault("paths", {})
    stream = {
        "text/event-stream": {
            "schema": {"description": "chat.completion.chunk events, then data: [DONE]"}
        }
    }
    chat = _operation(
        "OpenAI-compatible chat completions through the experiment's assigned variant",
        "ChatCompletionRequest",
        "ChatCompletionResponse",
    )
    chat["responses"]["200"]["content"].update(stream)  # stream: true
    paths[chat_path] = {"post": chat}
    for path, summary, request, response in (
        ("/v1/feedback", "Record feedback", "FeedbackRequest", "FeedbackResponse"),
        ("/v1/events", "Ingest a batch of events", "EventBatch", "EventsResponse"),
    ):
        post = paths.setdefault(path, {}).setdefault("post", {})
        generated = post.get("responses", {})
        post.update(_operation(post.get("summary", summary), request, response))
        post["responses"] = {**generated, **post["responses"]}
    for item in paths.values():  # FastAPI documents its 422; abllm answers 400 (guard.py)
        for op in item.values():
            responses = op.get("responses", {})
            if responses.pop("422", None) is not None:
                responses["400"] = {
                    "description": _ERRORS["400"],
                    "content": _json("ErrorResponse"),
                }
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return schema


def install(app: FastAPI, chat_path: str) -> None:
    """Serve :func:`build_schema` (built once) as ``app.openapi()``."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_schema(app, chat_path)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
