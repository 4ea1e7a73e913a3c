"""Reading an embedded store that ``abllm serve`` holds: ask the server for a snapshot.

DuckDB allows one process per database file, so while ``abllm serve`` runs on the embedded
store, other processes cannot open it, not even read-only. ``serve`` therefore writes a small
file beside the store (``events.duckdb.serve.json``: its URL and process id) and removes it on
exit; a reading command (``abllm analyze --store``, ``abllm events export``) that finds the file
locked and the server alive fetches the experiment's rows from ``GET /v1/events/snapshot`` and
runs the same SQL on an in-memory copy. With ``--api-key`` on the server, set
``ABLLM_API_KEY`` for the reader. See docs/events.md, "Reading while serving".
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from abllm.errors import StoreUnavailable
from abllm.events import EventStore, open_store
from abllm.events.store import _path_of, resolve_store_url

SNAPSHOT_PATH = "/v1/events/snapshot"
TIMEOUT_S = 300.0


def embedded_path(store_url: str | None) -> Path | None:
    """The DuckDB file behind ``store_url`` (None for server stores and ``:memory:``)."""
    url = resolve_store_url(store_url)
    scheme, sep, _ = url.partition("://")
    if sep and scheme != "duckdb":
        return None
    path = _path_of(url, "duckdb") if sep else url
    return None if path == ":memory:" else Path(path)


def serve_file(store_path: Path) -> Path:
    """Where a serving process announces itself: ``<store file>.serve.json``."""
    return store_path.with_name(store_path.name + ".serve.json")


def announce(store_url: str | None, host: str, port: int) -> Path | None:
    """Write the serve file for an embedded store; returns it (to remove on exit)."""
    path = embedded_path(store_url)
    if path is None:
        return None
    reach = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104 - a comparison
    target = serve_file(path)
    target.write_text(json.dumps({"url": f"http://{reach}:{port}", "pid": os.getpid()}))
    return target


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _server_of(path: Path) -> str | None:
    try:
        data = json.loads(serve_file(path).read_text())
        url, pid = str(data["url"]), int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if _alive(pid) else None


def _fetch(base_url: str, experiment_id: str) -> bytes:
    query = urllib.parse.urlencode({"experiment_id": experiment_id})
    request = urllib.request.Request(f"{base_url}{SNAPSHOT_PATH}?{query}")  # noqa: S310
    key = os.environ.get("ABLLM_API_KEY")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:  # noqa: S310
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise StoreUnavailable(
            f"the server at {base_url} refused the snapshot ({exc.code}): {detail}"
            + (" (set ABLLM_API_KEY)" if exc.code == 401 else "")
        ) from None
    except OSError as exc:
        raise StoreUnavailable(f"the server at {base_url} did not answer: {exc}") from None


def open_for_reading(store_url: str | None, experiment_id: str) -> EventStore:
    """``open_store(store_url)``, or, when ``abllm serve`` holds that embedded file, an
    in-memory store with the experiment's events fetched from the server."""
    try:
        return open_store(store_url)
    except StoreUnavailable as exc:
        path = embedded_path(store_url)
        server = _server_of(path) if path is not None else None
        if server is None:
            raise StoreUnavailable(
                f"{exc.message}; if another process holds the file, stop it or read through "
                "its server (abllm serve announces itself beside the store)"
            ) from None
        cause = exc
    import pyarrow as pa

    from abllm.events.embedded import DuckDBStore

    table = pa.ipc.open_stream(_fetch(server, experiment_id)).read_all()
    memory = DuckDBStore(":memory:")
    try:
        if table.num_rows:
            memory.append_arrow(table)
    except Exception:
        memory.close()
        raise StoreUnavailable(f"snapshot from {server} unreadable ({cause.message})") from None
    return memory


def withdraw(path: Path | None) -> None:
    """Remove the serve file written by :func:`announce`."""
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
