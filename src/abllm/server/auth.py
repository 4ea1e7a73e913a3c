"""API-key auth for every ``/v1/`` route, checked before any routing.

Keys come from ``abllm serve --api-key`` (repeatable) or ``ABLLM_API_KEYS`` (comma-separated).
Clients send ``Authorization: Bearer <key>`` — what the official OpenAI SDKs send with their
``api_key`` — or ``X-Api-Key``. With no keys configured the server is open (local use, tests).
``/healthz``, ``/metrics`` and the read-only ``/dashboard`` stay open so probes and browsers work;
put them behind your proxy if they must not be public.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable
from typing import Literal

from abllm.gateway.asgi import Receive, Scope, Send

PROTECTED_PREFIX = "/v1/"
#: The ASGI scope entry where the check records the scope of the key that was presented.
SCOPE_KEY = "abllm.key_scope"
KeyScope = Literal["sdk", "admin"]
_BODY = (
    b'{"error":{"code":"unauthorized",'
    b'"message":"missing or invalid API key: send Authorization: Bearer <key>"}}'
)


def keys_from_env(extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Configured keys: ``extra`` plus the comma-separated ``ABLLM_API_KEYS``."""
    env = [k.strip() for k in os.environ.get("ABLLM_API_KEYS", "").split(",")]
    return tuple(k for k in (*extra, *env) if k)


def _presented(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return bytes(value[7:].strip())
        if name == b"x-api-key":
            return bytes(value.strip())
    return None


def key_scope(scope: Scope) -> KeyScope | None:
    """The scope of the key that authenticated the request (``None``: no valid key).

    Routes and pages use it to decide what a caller may do, e.g. the dashboard's controls
    (``key_scope(request.scope) == "admin"``).
    """
    value = scope.get(SCOPE_KEY)
    return value if value in ("sdk", "admin") else None


class ApiKeyCheck:
    """Decides whether a request may pass; constant-time comparison of keys."""

    def __init__(self, keys: Iterable[str]) -> None:
        self.keys = tuple(k.encode() for k in keys)

    def allows(self, scope: Scope) -> bool:
        """True for open paths, or when a configured key was presented.

        Records the caller's scope in ``scope[SCOPE_KEY]`` (see :func:`key_scope`): ``admin``
        on a server without keys, ``sdk`` for a configured key, absent otherwise.
        """
        if not self.keys:
            scope[SCOPE_KEY] = "admin"
            return True
        given = _presented(scope)
        if given is not None and any(hmac.compare_digest(given, k) for k in self.keys):
            scope[SCOPE_KEY] = "sdk"
            return True
        return not str(scope.get("path", "")).startswith(PROTECTED_PREFIX)

    async def reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 401 with the abllm error shape."""
        headers = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": _BODY})
