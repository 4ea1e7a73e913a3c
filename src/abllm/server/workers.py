"""``abllm serve --workers N``: a small supervisor over N single-process servers on one port.

The supervisor binds and listens on the port itself, then starts N copies of the same
``abllm serve`` command line (without ``--workers``) that inherit the listening socket (its file
descriptor number in ``ABLLM_LISTEN_FD``) and accept from it, as gunicorn's workers do. Each
worker is a whole server: its own event pipeline and spool directory under the spool folder, its
own state view and rollout controller (leases keep one acting per experiment), all sharing the
store and the state backend. Because the socket belongs to the supervisor, a worker that dies is
replaced without closing the port: connections queue in the backlog and the other workers
serve them meanwhile.

SIGTERM or Ctrl-C (SIGINT) to the supervisor sends SIGTERM to every worker: each stops
accepting, finishes its in-flight requests (uvicorn's graceful shutdown), flushes its events to
the store or its spool, and exits; the supervisor exits once all have. Workers run in their own
session, so a terminal's Ctrl-C reaches them only through the supervisor, once.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import FrameType

from abllm.errors import ValidationError
from abllm.gateway.traceid import SECRET_ENV

log = logging.getLogger("abllm.server")

LISTEN_FD_ENV = "ABLLM_LISTEN_FD"
WORKER_ENV = "ABLLM_WORKER"
SUPERVISOR_ENV = "ABLLM_SUPERVISOR_PID"
#: Exit status of a worker that refused its configuration: restarting cannot help.
_EXIT_BAD_INPUT = 2
_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)
_STABLE_S = 30.0  # a worker up this long resets its restart backoff


def check_workers(workers: int, store_url: str | None, state_url: str | None) -> None:
    """Refuse a worker count the stores cannot share (``ValidationError`` naming the option).

    An embedded event store (a DuckDB file, chdb, ``:memory:``) is opened by one process only,
    and ``memory://`` state would give each worker its own kill switch.
    """
    from abllm.events.store import resolve_store_url
    from abllm.state.open import state_url_for
    from abllm.storeurl import parse_url

    if workers < 1:
        raise ValidationError(f"--workers {workers}: use 1 or more")
    if workers == 1:
        return
    scheme = parse_url(resolve_store_url(store_url), "duckdb").scheme
    if scheme not in ("postgresql", "postgres", "clickhouse", "clickhouses"):
        raise ValidationError(
            f"--workers {workers} needs a server event store shared by the workers "
            f"(--store postgresql://... or clickhouse://...); a {scheme}:// store is opened "
            "by one process only"
        )
    if state_url_for(store_url, state_url).startswith("memory://"):
        raise ValidationError(
            f"--workers {workers}: memory:// state is private to each worker (a kill would reach "
            "one of them); use --state postgresql://..., redis://... or sqlite:///path"
        )


def listen_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket the workers inherit (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def inherited_socket() -> socket.socket | None:
    """The supervisor's listening socket in a worker, or None outside one.

    A worker also watches its supervisor: when it is gone (kill -9), the worker drains and
    exits as on SIGTERM instead of serving on unsupervised.
    """
    fd = os.environ.get(LISTEN_FD_ENV)
    if fd is None:
        return None
    # The supervisor's pid from its environment: os.getppid() here could already be init's.
    parent = int(os.environ.get(SUPERVISOR_ENV, os.getppid()))

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="abllm-supervisor-watch", daemon=True).start()
    return socket.socket(fileno=int(fd))


def worker_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` (the supervisor's ``abllm`` arguments) without its ``--workers`` option."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    started: float
    restarts: int = 0


@dataclass
class Supervisor:
    """Start ``count`` workers on ``sock`` and keep them running until told to stop."""

    sock: socket.socket
    count: int
    argv: list[str]
    trace_secret: str = field(default_factory=lambda: secrets.token_hex(32))
    _workers: list[_Worker] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def _spawn(self, index: int, restarts: int = 0) -> _Worker:
        env = {
            SECRET_ENV: self.trace_secret,  # workers read each other's trace ids
            **os.environ,
            LISTEN_FD_ENV: str(self.sock.fileno()),
            WORKER_ENV: str(index),
            SUPERVISOR_ENV: str(os.getpid()),
        }
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and command line
            [sys.executable, "-c", "from abllm.cli.main import main; main()", *self.argv],
            env=env,
            pass_fds=(self.sock.fileno(),),
            start_new_session=True,  # signals reach workers through the supervisor only
        )
        return _Worker(index, proc, time.monotonic(), restarts)

    def stop(self, signum: int = signal.SIGTERM, _frame: FrameType | None = None) -> None:
        """Ask every worker to drain and exit (signal handler for SIGTERM and SIGINT)."""
        self._stopping.set()
        for worker in self._workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)

    def run(self) -> int:
        """Run until stopped; 0 when every worker drained, 2 when workers refuse their config."""
        previous = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._workers = [self._spawn(i) for i in range(self.count)]
            status = self._watch()
            self.stop()  # again: a worker started just as the signal came was not told
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        for worker in self._workers:
            worker.proc.wait()
        return status

    def _watch(self) -> int:
        while not self._stopping.wait(0.2):
            for pos, worker in enumerate(self._workers):
                code = worker.proc.poll()
                if code is None or self._stopping.is_set():
                    continue
                if code == _EXIT_BAD_INPUT:
                    log.error("worker %d refused its configuration; stopping", worker.index)
                    self.stop()
                    return _EXIT_BAD_INPUT
                self._workers[pos] = self._restart(worker, code)
        return 0

    def _restart(self, worker: _Worker, code: int) -> _Worker:
        stable = time.monotonic() - worker.started >= _STABLE_S
        restarts = 0 if stable else worker.restarts + 1
        delay = 0.0 if stable else _BACKOFF_S[min(restarts, len(_BACKOFF_S)) - 1]
        print(
            f"abllm worker {worker.index} (pid {worker.proc.pid}) exited with {code}; "
            f"restarting in {delay:g}s",
            file=sys.stderr,
            flush=True,
        )
        if self._stopping.wait(delay):
            return worker
        return self._spawn(worker.index, restarts)
