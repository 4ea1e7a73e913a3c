"""Small URL helpers: take abllm's own query options out before a driver sees the URL."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from abllm.errors import ValidationError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")


def pop_query(url: str, name: str) -> tuple[str, str | None]:
    """Remove ``name`` from the URL's query string; returns (url without it, its value)."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    value = None
    kept = []
    for key, val in pairs:
        if key == name:
            value = val
        else:
            kept.append((key, val))
    return urlunsplit(parts._replace(query=urlencode(kept))), value


def check_identifier(value: str, what: str) -> str:
    """A schema or prefix name safe to splice into SQL or a channel name."""
    if not _IDENT.match(value):
        raise ValidationError(
            f"{what} {value!r} must be letters, digits and _ (at most 41 characters), "
            "starting with a letter or _"
        )
    return value


def redact(url: str) -> str:
    """The URL without its password, for logs and status output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))
