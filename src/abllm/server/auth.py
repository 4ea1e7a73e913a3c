"""API-key auth with two scopes, checked before any routing (≈ 1-2 µs a request:
``benches/auth_check.py``).

Keys:

- sdk keys (inference, events, feedback, config, results, read-only pages): ``abllm serve
  --api-key`` (repeatable), ``--api-key-file``, ``ABLLM_API_KEYS`` (comma-separated);
- admin keys (everything, incl. ``/v1/admin/*`` and the dashboard's controls): ``--admin-key``,
  ``--admin-key-file``, ``ABLLM_ADMIN_KEYS``;
- managed keys made by ``abllm keys create --scope sdk|admin`` and kept hashed in the state
  store (:mod:`abllm.state.keys`), read through a short-lived cache so auth does no I/O on the
  hot path.

Clients send ``Authorization: Bearer <key>`` — what the OpenAI SDKs send with their ``api_key``
and what Prometheus' scrape config sends — or ``X-Api-Key``; browsers log in once at ``/login``
and carry a signed session cookie (:mod:`abllm.server.login`). With any key configured every
route but ``/healthz`` needs one (``/metrics`` too, unless ``--metrics-open``): 401 without a
valid key, 403 for an sdk key on an admin route. Unknown paths are checked like any other, so
probing finds nothing. With no key at all the server is open and every caller is admin (local
use); ``abllm serve`` then binds loopback only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from abllm.errors import ValidationError
from abllm.gateway.asgi import Receive, Scope, Send
from abllm.server.ratelimit import RateLimiter, retry_after

if TYPE_CHECKING:
    from abllm.server.login import Sessions

#: The ASGI scope entries where the check records the caller: its key's scope and name.
SCOPE_KEY = "abllm.key_scope"
NAME_KEY = "abllm.key_name"
RETRY_KEY = "abllm.retry_after"
KeyScope = Literal["sdk", "admin"]
#: Paths that need no key ever: the liveness probe and the login form itself.
OPEN_PATHS = frozenset({"/healthz", "/login", "/logout"})
ADMIN_PREFIX = "/v1/admin/"
DASHBOARD_PREFIX = "/dashboard"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_UNAUTHORIZED = (
    b'{"error":{"code":"unauthorized",'
    b'"message":"missing or invalid API key: send Authorization: Bearer <key>"}}'
)
_RATE_LIMITED = b'{"error":{"code":"rate_limited","message":"this key is over its rate limit"}}'
_FORBIDDEN = (
    b'{"error":{"code":"forbidden",'
    b'"message":"this route needs an admin key (ABLLM_ADMIN_KEYS, --admin-key or '
    b'abllm keys create --scope admin)"}}'
)


@dataclass(frozen=True)
class Caller:
    """Who presented a valid key: its scope and a printable name (never the key itself)."""

    scope: KeyScope
    name: str


class KeyLookup(Protocol):
    """Managed keys as the check sees them (:class:`abllm.state.keycache.KeyCache`)."""

    def any(self) -> bool:
        """True when at least one unrevoked managed key exists."""
        ...

    def caller(self, key: str) -> Caller | None:
        """The caller of ``key``; None for an unknown, revoked or malformed key."""
        ...

    def by_name(self, name: str) -> Caller | None:
        """The caller named ``name`` while its key is still valid (sessions re-check this)."""
        ...


def keys_from_env(extra: Iterable[str] = (), var: str = "ABLLM_API_KEYS") -> tuple[str, ...]:
    """Configured keys: ``extra`` plus the comma-separated environment variable ``var``."""
    env = [k.strip() for k in os.environ.get(var, "").split(",")]
    return tuple(k for k in (*extra, *env) if k)


def keys_from_file(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """One key a line (blank lines and ``#`` comments skipped), so keys stay out of ``ps``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"key file {os.fspath(path)!r}: {exc}") from None
    keys = tuple(s for line in text.splitlines() if (s := line.strip()) and not s.startswith("#"))
    if not keys:
        raise ValidationError(f"key file {os.fspath(path)!r} holds no key")
    return keys


def static_key_name(key: str, scope: KeyScope) -> str:
    """A configured key's printable name: scope and short digest, e.g. ``admin-key:1a2b3c4d``."""
    return f"{scope}-key:{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _presented(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return bytes(value[7:]).strip().decode("latin-1")
        if name == b"x-api-key":
            return bytes(value).strip().decode("latin-1")
    return None


def key_scope(scope: Scope) -> KeyScope | None:
    """The scope of the key that authenticated the request (``None``: no valid key).

    Routes and pages use it to decide what a caller may do, e.g. the dashboard's controls
    (``key_scope(request.scope) == "admin"``). A session cookie counts as its key's scope.
    """
    value = scope.get(SCOPE_KEY)
    return value if value in ("sdk", "admin") else None


def key_name(scope: Scope) -> str | None:
    """The name of the key that authenticated the request (``None``: no keys configured)."""
    value = scope.get(NAME_KEY)
    return value if isinstance(value, str) else None


def required_scope(path: str, method: str, metrics_open: bool) -> KeyScope | None:
    """The scope a request needs: None (open), ``sdk`` or ``admin``."""
    if path in OPEN_PATHS or (metrics_open and path == "/metrics"):
        return None
    if path.startswith(ADMIN_PREFIX):
        return "admin"
    if path.startswith(DASHBOARD_PREFIX) and method not in SAFE_METHODS:
        return "admin"  # the dashboard's controls
    return "sdk"


class ApiKeyCheck:
    """Decides whether a request may pass; keys compared in constant time (by digest)."""

    def __init__(
        self,
        keys: Iterable[str] = (),
        admin_keys: Iterable[str] = (),
        *,
        managed: KeyLookup | None = None,
        metrics_open: bool = False,
        session_secret: bytes | None = None,
        rate_limit: RateLimiter | None = None,
    ) -> None:
        # By digest: see caller_of_key.
        self._static: dict[bytes, Caller] = {}
        groups: tuple[tuple[KeyScope, Iterable[str]], ...] = (("sdk", keys), ("admin", admin_keys))
        for scope, group in groups:
            for key in group:
                digest = hashlib.sha256(key.encode()).digest()
                self._static[digest] = Caller(scope, static_key_name(key, scope))
        self._names = {c.name: c for c in self._static.values()}
        self.managed = managed
        self.metrics_open = metrics_open
        self.rate_limit = rate_limit
        from abllm.server.login import Sessions, derive_secret

        secret = session_secret or derive_secret(self._static)
        self.sessions: Sessions = Sessions(secret)

    @property
    def enabled(self) -> bool:
        """True once any key exists (configured or managed): then routes need one."""
        return bool(self._static) or (self.managed is not None and self.managed.any())

    def caller_of_key(self, key: str) -> Caller | None:
        """The caller a presented key identifies, or None.

        Looked up by the key's SHA-256: the lookup's timing can only reveal something about a
        digest, which says nothing usable about any key (no preimage), so no per-key loop of
        constant-time comparisons is needed (:mod:`abllm.state.keys` does the same).
        """
        found = self._static.get(hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest())
        if found is None and self.managed is not None:
            found = self.managed.caller(key)
        return found

    def caller_by_name(self, name: str) -> Caller | None:
        """A caller by its key's name while the key is valid (for sessions)."""
        if name in self._names:
            return self._names[name]
        return self.managed.by_name(name) if self.managed is not None else None

    def identify(self, scope: Scope) -> Caller | None:
        """The caller from a key header or a session cookie."""
        given = _presented(scope)
        if given is not None:
            return self.caller_of_key(given)
        name = self.sessions.name_from(scope)
        return self.caller_by_name(name) if name is not None else None

    def status(self, scope: Scope) -> int:
        """0 when the request may pass, else 401, 403 or 429 (the key's rate limit, see
        :mod:`abllm.server.ratelimit`); records the caller in ``scope``."""
        if not self.enabled:
            scope[SCOPE_KEY] = "admin"
            return 0
        caller = self.identify(scope)
        if caller is not None:
            scope[SCOPE_KEY] = caller.scope
            scope[NAME_KEY] = caller.name
        needed = required_scope(
            str(scope.get("path", "")), str(scope.get("method", "")), self.metrics_open
        )
        if needed is None:
            return 0
        if caller is None:
            return 401
        if needed == "admin" and caller.scope != "admin":
            return 403
        if self.rate_limit is not None:
            wait_s = self.rate_limit.take(caller.name)
            if wait_s > 0:
                scope[RETRY_KEY] = wait_s
                return 429
        return 0

    def allows(self, scope: Scope) -> bool:
        """True when the request may pass (see :meth:`status`)."""
        return self.status(scope) == 0

    async def reject(self, scope: Scope, receive: Receive, send: Send, status: int = 401) -> None:
        """Answer 401/403/429 in the abllm error shape, or the login form to a browser."""
        from abllm.server.login import login_page, wants_html

        if status == 401 and wants_html(scope):
            await login_page(scope, send, next_path=str(scope.get("path", "/")))
            return
        headers = [(b"content-type", b"application/json")]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        if status == 429:
            wait = retry_after(float(scope.get(RETRY_KEY, 1.0)))
            headers.append((b"retry-after", wait.encode()))
        body = {401: _UNAUTHORIZED, 403: _FORBIDDEN}.get(status, _RATE_LIMITED)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True)
class KeyConfig:
    """The configured (not managed) keys of both scopes, from flags, files and environment."""

    sdk: tuple[str, ...]
    admin: tuple[str, ...]

    @classmethod
    def gather(
        cls,
        api_keys: Iterable[str] = (),
        admin_keys: Iterable[str] = (),
        api_key_file: str | os.PathLike[str] | None = None,
        admin_key_file: str | os.PathLike[str] | None = None,
    ) -> KeyConfig:
        """Flags, then files, then ``ABLLM_API_KEYS`` / ``ABLLM_ADMIN_KEYS``."""
        sdk = (*api_keys, *(keys_from_file(api_key_file) if api_key_file else ()))
        admin = (*admin_keys, *(keys_from_file(admin_key_file) if admin_key_file else ()))
        return cls(keys_from_env(sdk), keys_from_env(admin, "ABLLM_ADMIN_KEYS"))


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keyed: bool, insecure: bool) -> str | None:
    """Refuse to serve a keyless server beyond loopback; a warning line when ``insecure``."""
    if keyed or is_loopback(host):
        return None
    if insecure:
        return (
            f"warning: serving on {host} with no API key: anyone who can reach it can call "
            "providers with your keys and kill experiments"
        )
    raise ValidationError(
        f"--host {host}: no API key is configured, so abllm serves loopback only. Add a key "
        "(--admin-key-file FILE, --api-key-file FILE, ABLLM_ADMIN_KEYS / ABLLM_API_KEYS, or "
        "abllm keys create --scope admin --name NAME), or pass --insecure to serve it open"
    )
