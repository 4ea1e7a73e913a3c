"""Browser login: a form that takes a key and sets a signed session cookie.

A browser cannot send ``Authorization: Bearer``, so the dashboard, ``/docs`` and ``/redoc``
answer a request without a key with a login form (401). ``POST /login`` checks the key and
sets ``abllm_session``: HttpOnly (no script reads it), SameSite=Strict (no other site's page
can make the browser send it, so the dashboard's controls are CSRF-safe), Secure over https.
The cookie holds the key's *name* and an expiry signed with HMAC-SHA256, never the key; the
server re-checks the name on every request, so a revoked key ends its sessions too.

The signing secret is ``ABLLM_SESSION_SECRET`` when set, else derived from the configured keys
(so every worker agrees), else random per process (managed keys only: set the variable when
serving with several workers).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from abllm.gateway.asgi import Receive, Scope, Send

if TYPE_CHECKING:
    from abllm.server.auth import ApiKeyCheck

COOKIE = "abllm_session"
SESSION_TTL_S = 12 * 3600
MAX_FORM_BYTES = 8192
LOGIN_PATH = "/login"
LOGOUT_PATH = "/logout"


def derive_secret(digests: Iterable[bytes]) -> bytes:
    """The session-signing secret (see the module docstring)."""
    configured = os.environ.get("ABLLM_SESSION_SECRET", "")
    if configured:
        return configured.encode()
    keys = sorted(digests)
    if keys:
        return hashlib.sha256(b"abllm-session\0" + b"".join(keys)).digest()
    return os.urandom(32)


class Sessions:
    """Signs and reads session cookies: ``<name b64>.<expiry>.<hmac>``."""

    def __init__(self, secret: bytes, ttl_s: float = SESSION_TTL_S) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def issue(self, name: str, now: float | None = None) -> str:
        """A cookie value for the key named ``name``."""
        expiry = int((time.time() if now is None else now) + self.ttl_s)
        encoded = base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")
        payload = f"{encoded}.{expiry}"
        return f"{payload}.{self._sign(payload)}"

    def read(self, value: str, now: float | None = None) -> str | None:
        """The key name in a valid, unexpired cookie value; None otherwise."""
        parts = value.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        payload = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._sign(payload), parts[2]):
            return None
        if int(parts[1]) < (time.time() if now is None else now):
            return None
        try:
            return base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)).decode()
        except ValueError:
            return None

    def name_from(self, scope: Scope) -> str | None:
        """The key name of the request's session cookie, if any and valid."""
        for name, value in scope.get("headers", ()):
            if name != b"cookie":
                continue
            for part in bytes(value).decode("latin-1").split(";"):
                key, _, val = part.strip().partition("=")
                if key == COOKIE:
                    return self.read(val)
        return None


def wants_html(scope: Scope) -> bool:
    """A browser navigating to a page (GET with ``Accept: text/html``)."""
    if scope.get("method") not in ("GET", "HEAD"):
        return False
    accept = next((bytes(v) for n, v in scope.get("headers", ()) if n == b"accept"), b"")
    return b"text/html" in accept


def _safe_next(path: str) -> str:
    # Only a local path: "//host" or "https://..." would make the form an open redirect.
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/dashboard"
    return path


_FORM = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>abllm: log in</title><meta name="viewport" content="width=device-width">
<style>body{{font:16px system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem}}
input{{font:inherit;width:100%;padding:.4rem;margin:.3rem 0 1rem;box-sizing:border-box}}
.err{{color:#b00}}</style></head><body><h1>abllm</h1>{error}
<form method="post" action="/login"><label>API key (sdk or admin)
<input type="password" name="key" autocomplete="current-password" autofocus required></label>
<input type="hidden" name="next" value="{next}"><button type="submit">Log in</button></form>
</body></html>"""


async def login_page(scope: Scope, send: Send, next_path: str, error: str = "") -> None:
    """The login form, with status 401 (the page needs a key)."""
    body = _FORM.format(
        next=html.escape(_safe_next(next_path)),
        error=f'<p class="err">{html.escape(error)}</p>' if error else "",
    ).encode()
    headers = [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"cache-control", b"no-store"),
        (b"www-authenticate", b"Bearer"),
    ]
    await send({"type": "http.response.start", "status": 401, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_form(receive: Receive) -> dict[str, str] | None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_FORM_BYTES:
            return None
        if not message.get("more_body"):
            break
    try:
        parsed = parse_qs(body.decode("utf-8"), max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        return None
    return {k: v[0] for k, v in parsed.items()}


def _same_origin(scope: Scope) -> bool:
    """A form posted from this server's page (or by a non-browser client, with no ``Origin``).

    Refusing other origins stops login CSRF: another site logging a browser in with the
    attacker's key.
    """
    headers = {bytes(n): bytes(v) for n, v in scope.get("headers", ())}
    origin = headers.get(b"origin")
    if origin is None:
        return True
    host = headers.get(b"host", b"")
    return origin.split(b"://", 1)[-1] == host


def _cookie(value: str, max_age: int, secure: bool) -> bytes:
    flags = f"; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict"
    return f"{COOKIE}={value}{flags}{'; Secure' if secure else ''}".encode()


async def handle(auth: ApiKeyCheck, scope: Scope, receive: Receive, send: Send) -> None:
    """``GET /login`` (the form), ``POST /login`` (check the key, set the cookie), ``/logout``."""
    secure = scope.get("scheme") == "https"
    if scope["path"] == LOGOUT_PATH:
        headers = [(b"location", b"/login"), (b"set-cookie", _cookie("", 0, secure))]
        await send({"type": "http.response.start", "status": 303, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["method"] != "POST":
        query = parse_qs(bytes(scope.get("query_string", b"")).decode("latin-1"))
        await login_page(scope, send, next_path=query.get("next", ["/dashboard"])[0])
        return
    if not _same_origin(scope):
        await login_page(scope, send, "/dashboard", error="log in from this server's own page")
        return
    form = await _read_form(receive)
    if form is None:
        await login_page(scope, send, "/dashboard", error="the form could not be read")
        return
    target = _safe_next(form.get("next", "/dashboard"))
    caller = auth.caller_of_key(form.get("key", "").strip())
    if caller is None:
        await login_page(scope, send, target, error="that key is not valid")
        return
    value = auth.sessions.issue(caller.name)
    headers = [
        (b"location", target.encode()),
        (b"set-cookie", _cookie(value, int(auth.sessions.ttl_s), secure)),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})
