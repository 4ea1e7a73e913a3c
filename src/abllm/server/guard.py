"""Bad input answered before it costs anything, always in the ``{"error": {code, message}}`` shape.

- Body size: every request body is read here first, up to a per-route limit (admin routes take
  small JSON documents: 64 KB; the rest up to the gateway's 4 MB); past it the answer is 413
  ``payload_too_large`` without reading further. A ``Content-Length`` over the limit is refused
  before a byte is read. (The hot chat path keeps its own reader with the same 4 MB limit.)
- FastAPI's own errors are re-shaped: an unknown route or method is 404/405 in the OpenAI error
  shape instead of ``{"detail": "Not Found"}``, and a request that fails its model is a 400
  ``invalid_request`` naming each field (``body.reason: String should have at most 2000
  characters``) without echoing the input back, as FastAPI's 422 ``{"detail": [...]}`` does.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from abllm.gateway.asgi import Message, Receive, Scope, Send
from abllm.gateway.request import MAX_BODY_BYTES

ADMIN_BODY_BYTES = 64 * 1024
_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    400: "invalid_request",
}


def body_limit(path: str) -> int:
    """The body limit of a path, in bytes."""
    return ADMIN_BODY_BYTES if path.startswith("/v1/admin/") else MAX_BODY_BYTES


def error_json(status: int, message: str, code: str | None = None) -> JSONResponse:
    """The documented error body for ``status``."""
    body = {"error": {"code": code or _CODES.get(status, "error"), "message": message}}
    return JSONResponse(body, status_code=status)


async def _too_large(send: Send, limit: int) -> None:
    body = (
        b'{"error":{"code":"payload_too_large","message":"body: over the limit of '
        + str(limit).encode()
        + b' bytes for this route"}}'
    )
    headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def read_limited(scope: Scope, receive: Receive, send: Send) -> Receive | None:
    """A ``receive`` replaying the whole body, or None after answering 413."""
    limit = body_limit(str(scope.get("path", "")))
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = 0
            if declared > limit:
                await _too_large(send, limit)
                return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: let the app see it
            return _replay([message], receive)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            await _too_large(send, limit)
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
    return _replay([whole], receive)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replay() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()  # disconnect notifications after the body

    return replay


def _field(loc: tuple[object, ...] | list[object]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """Re-shape FastAPI's HTTP and validation errors (see the module docstring)."""

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404 and exc.detail == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        else:
            message = str(exc.detail)
        response = error_json(exc.status_code, message)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{_field(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
        return error_json(400, "; ".join(problems[:10]) or "invalid request")
