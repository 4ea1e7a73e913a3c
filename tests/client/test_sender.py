"""HttpSender against a scripted stub server: retries, refusals, bounded memory, batching."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from abllm.client.http import parse_retry_after
from abllm.client.sinks import HttpSender, SenderSettings
from abllm.events import Event

FAST = SenderSettings(
    batch_size=10, flush_interval_s=0.05, timeout_s=2, min_backoff_s=0.01, max_backoff_s=0.05
)


class Stub:
    """Answers POST /v1/events with the next scripted status (then 200), keeping the bodies."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.bodies: list[list[dict[str, object]]] = []
        self.statuses: list[int] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = stub.script.pop(0) if stub.script else 200
                stub.statuses.append(status)
                stub.bodies.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> int:
        return sum(len(b) for b, s in zip(self.bodies, self.statuses, strict=True) if s == 200)


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.server.shutdown()
    s.server.server_close()


def ev(i: int) -> Event:
    return Event(type="feedback", experiment_id="e", unit_id=f"u{i}", metrics={"rating": 1})


def test_batches_by_size_and_retries_5xx_with_the_same_ids(stub: Stub) -> None:
    stub.script = [500, 502]
    sender = HttpSender(stub.url, {}, FAST)
    for i in range(25):
        sender.emit(ev(i))
    assert sender.flush(5)
    sender.close(1)
    assert stub.delivered() == 25 and sender.sent == 25 and sender.retries == 2
    assert all(len(b) <= 10 for b in stub.bodies)
    first, retried = stub.bodies[0], stub.bodies[2]
    assert [e["event_id"] for e in first] == [e["event_id"] for e in retried]


def test_refused_batch_is_dropped_not_retried(stub: Stub) -> None:
    stub.script = [400]
    sender = HttpSender(stub.url, {}, FAST)
    for i in range(3):
        sender.emit(ev(i))
    assert sender.flush(5)
    sender.emit(ev(99))
    assert sender.flush(5)
    sender.close(1)
    assert stub.statuses == [400, 200] and sender.refused == 3 and sender.sent == 1


def test_memory_is_bounded_while_the_server_is_away() -> None:
    settings = SenderSettings(
        max_buffer=5, flush_interval_s=0.01, min_backoff_s=0.01, max_backoff_s=0.02, timeout_s=0.2
    )
    sender = HttpSender("http://127.0.0.1:9", {}, settings)  # nothing listens on port 9
    for i in range(12):
        sender.emit(ev(i))
    assert sender.dropped == 7
    started = time.monotonic()
    assert not sender.flush(0.2)
    sender.close(0.1)
    assert time.monotonic() - started < 6
    sender.emit(ev(13))  # after close: dropped, never raised
    assert sender.dropped == 8


def test_retry_after_header_forms() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert later is not None and 25 < later <= 31
