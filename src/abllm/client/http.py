"""The SDK's two HTTP calls (``GET /v1/config``, ``POST /v1/events``) over the standard library.

urllib, not aiohttp or httpx: the SDK talks to the abllm server from two background threads, a
few requests a second at most, so a blocking client in a thread is the simplest thing that works
and adds no dependency to the application that embeds the SDK.
"""

from __future__ import annotations

import email.utils
import http.client
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from abllm.errors import ValidationError


class Unreachable(Exception):
    """The server could not be reached or gave no complete answer (connection, timeout)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete HTTP answer; ``retry_after`` is the ``Retry-After`` header in seconds."""

    status: int
    body: bytes
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        """2xx."""
        return 200 <= self.status < 300


def check_base_url(url: str) -> str:
    """``http(s)://host[:port][/prefix]`` without a trailing slash; anything else is refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(
            f"server_url: {url!r} must be an http:// or https:// URL such as http://127.0.0.1:8080"
        )
    return url.rstrip("/")


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def request(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 10.0,
) -> Answer:
    """One request; any status is an :class:`Answer`, no answer at all is :class:`Unreachable`."""
    # The scheme was checked by check_base_url: only http(s) URLs get here.
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310
            return Answer(resp.status, resp.read())
    except urllib.error.HTTPError as err:
        try:
            data = err.read()
        except (OSError, http.client.HTTPException):
            data = b""
        retry = parse_retry_after(err.headers.get("Retry-After") if err.headers else None)
        return Answer(err.code, data, retry)
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets
        raise Unreachable(f"{method} {url}: {exc}") from exc
