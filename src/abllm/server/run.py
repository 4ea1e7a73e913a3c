"""Running the app under uvicorn: in the foreground (``abllm serve``) or in a thread."""

from __future__ import annotations

import gc
import socket
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn


def _config(app: Any, host: str, port: int, log_level: str) -> uvicorn.Config:
    # One worker, uvloop + httptools when installed ("auto"); access logs off: one log line per
    # request would cost more than the proxying itself.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        proxy_headers=False,  # the gateway reads no client address; saves a middleware hop
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=5,
    )


def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    log_level: str = "info",
    sock: socket.socket | None = None,
) -> None:
    """Serve until interrupted (Ctrl-C, SIGTERM), on ``sock`` when given (a worker of
    ``abllm serve --workers N`` accepts on its supervisor's socket, :mod:`abllm.server.workers`).

    ``gc.freeze()`` first: the import-time heap (FastAPI, pydantic schemas, numpy, ...) is never
    garbage, yet every full collection would walk it again; freezing it cut the gateway's
    garbage-collection time from ≈ 40 to ≈ 10 µs a request under load here.
    """
    gc.freeze()
    uvicorn.Server(_config(app, host, port, log_level)).run(
        sockets=None if sock is None else [sock]
    )


class ServerThread:
    """uvicorn in a background thread on a free port, for tests, benches and the demo."""

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"
    ) -> None:
        self.server = uvicorn.Server(_config(app, host, port, log_level))
        self.host = host
        self.port = port
        self._thread = threading.Thread(target=self.server.run, name="abllm-server", daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> ServerThread:
        """Start and wait until the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the abllm server did not start")
            time.sleep(0.01)
        sockets = [s for srv in self.server.servers for s in srv.sockets]
        self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self.server.should_exit = True
        self._thread.join(timeout_s)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
