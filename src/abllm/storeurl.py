"""The one parser for store and state URLs, and the path a file-backed URL names.

File-backed schemes (``duckdb``, ``chdb``, ``sqlite``) share these forms::

    scheme:///./rel/file   ->  ./rel/file   (relative to the working directory)
    scheme:///../rel/file  ->  ../rel/file
    scheme:///~/file       ->  the home directory's file
    scheme:///abs/file     ->  /abs/file
    scheme:///:memory:     ->  in memory (``scheme://`` too)
    rel/file, /abs/file    ->  a bare path, with the caller's default scheme

:func:`file_url` is the inverse, so a path derived from a store URL (the state file beside the
events file) keeps meaning the same place: a relative path stays relative, an absolute one
absolute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FILE_SCHEMES = frozenset({"duckdb", "chdb", "sqlite"})
MEMORY = ":memory:"


@dataclass(frozen=True)
class StoreURL:
    """A parsed URL: ``path`` is the file (or ``:memory:``) for file schemes, else None."""

    scheme: str
    path: str | None
    url: str

    @property
    def in_memory(self) -> bool:
        """True for ``:memory:`` databases."""
        return self.path == MEMORY


def parse_url(url: str, default_scheme: str) -> StoreURL:
    """Split ``url`` into scheme and file path; a bare path gets ``default_scheme``.

    Example::

        parse_url("duckdb:///./abllm-data/events.duckdb", "duckdb").path
        # 'abllm-data/events.duckdb'
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest, url = default_scheme, url, ""
        if not rest:
            return StoreURL(scheme, MEMORY, f"{scheme}:///{MEMORY}")
        path = rest
    else:
        if scheme not in FILE_SCHEMES:
            return StoreURL(scheme, None, url)
        if rest.startswith(("/./", "/../", "/~", f"/{MEMORY}")):
            rest = rest[1:]
        if rest in ("", MEMORY):
            return StoreURL(scheme, MEMORY, url)
        path = rest
    path = str(Path(path).expanduser())
    return StoreURL(scheme, path, url or file_url(scheme, path))


def file_url(scheme: str, path: str | Path) -> str:
    """The URL of a file path under ``scheme`` (the inverse of :func:`parse_url`)."""
    if str(path) == MEMORY:
        return f"{scheme}:///{MEMORY}"
    p = Path(path).expanduser()
    if p.is_absolute():
        return f"{scheme}://{p.as_posix()}"
    text = p.as_posix()
    if text.startswith("../"):
        return f"{scheme}:///{text}"
    return f"{scheme}:///./{text}"
