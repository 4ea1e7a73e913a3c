"""A seeded corpus of PII and secrets sent through every path of ``abllm serve`` (chat,
streaming, events, feedback, kill reason and actor, admin) leaves no raw match in the event store,
the state store, the server log, the admin JSON, the dashboard HTML or the OpenTelemetry spans."""

from __future__ import annotations

import json
import sqlite3
import time
import urllib.request
from pathlib import Path

import duckdb

from .http import get, post

CONFIG = """
experiments:
  - id: exp_pii
    log_payloads: true
    variants:
      - id: control
        control: true
        llm: {model: sim-small, sim: {time_scale: 0, error_rate: 0}}
      - id: treatment
        llm: {model: sim-large, sim: {time_scale: 0, error_rate: 0}}
"""
#: One of each kind the redactor knows, written as people paste them.
CORPUS = {
    "email": "ann.lee@example.com",
    "card": "4111 1111 1111 1111",
    "dotted card": "5500.0000.0000.0004",
    "phone": "+1 415 555 0100",
    "bare phone": "4155550199",
    "ssn": "078-05-1120",
    "iban": "DE89 3704 0044 0532 0130 00",
    "ipv4": "192.168.10.23",
    "ipv6": "2001:db8:85a3::8a2e:370:7334",
    "aws key id": "AKIAIOSFODNN7EXAMPLE",
    "aws secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "openai key": "sk-abc123XYZ789",
    "bearer": "bearer abc123def456ghi789",
}
TEXT = "; ".join(f"my {kind} is {value}" for kind, value in CORPUS.items())
#: What must not appear anywhere: each value, and the digits of the numbers without spaces.
NEEDLES = [*CORPUS.values(), "4111111111111111", "5500000000000004", "DE89370400440532013000"]


def leaks(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


def test_seeded_pii_corpus_leaves_no_raw_match_anywhere(serve, tmp_path: Path) -> None:
    served = serve(CONFIG)
    url = served.url
    messages = [{"role": "system", "content": TEXT}, {"role": "user", "content": TEXT}]
    for stream in (False, True):
        for user in ("ann.lee@example.com", "user-7"):
            body = {"model": "exp_pii", "messages": messages, "user": user, "stream": stream}
            req = urllib.request.Request(
                f"{url}/v1/chat/completions",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "X-Abllm-Trace-Id": CORPUS["email"]},
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 200
                assert CORPUS["email"] not in resp.headers["x-abllm-trace-id"]
    long_prompt = [{"role": "user", "content": (TEXT + " ") * 400}]  # redacted off the loop
    assert (
        post(
            f"{url}/v1/chat/completions",
            {"model": "exp_pii", "messages": long_prompt, "user": "user-8"},
        ).status_code
        == 200
    )

    base = {"experiment_id": "exp_pii", "variant_id": "control", "unit_id": CORPUS["email"]}
    events = [
        {**base, "type": "outcome", "metrics": {"converted": True}, "attrs": {"note": TEXT}},
    ]
    assert post(f"{url}/v1/events", events).status_code == 200
    # Ids and names are stored as given, so PII there is refused with a 400 naming the field.
    bad_trace = [{**base, "type": "outcome", "trace_id": CORPUS["email"], "metrics": {"x": 1}}]
    reply = post(f"{url}/v1/events", bad_trace)
    assert reply.status_code == 400 and "trace_id" in reply.text
    bad_metric = [{**base, "type": "outcome", "metrics": {CORPUS["email"]: 1}}]
    reply = post(f"{url}/v1/events", bad_metric)
    assert reply.status_code == 400 and "metric" in reply.text

    feedback = {
        "experiment_id": "exp_pii",
        "unit_id": CORPUS["email"],
        "rating": 4,
        "comment": TEXT,
    }
    assert post(f"{url}/v1/feedback", feedback).status_code == 200

    kill = {"reason": f"complaint from {TEXT}", "actor": CORPUS["email"]}
    assert post(f"{url}/v1/admin/experiments/exp_pii/kill", kill).status_code == 200
    assert post(f"{url}/v1/admin/experiments/exp_pii/resume", {"reason": TEXT}).status_code == 200

    pages = {
        "audit": get(f"{url}/v1/admin/experiments/exp_pii/audit").text,
        "state": get(f"{url}/v1/admin/experiments/exp_pii/state").text,
        "dashboard": get(f"{url}/dashboard").text,
        "dashboard experiment": get(f"{url}/dashboard/experiments/exp_pii").text,
        "metrics": get(f"{url}/metrics").text,
    }
    assert "[EMAIL]" in pages["audit"]  # the kill reason is there, redacted
    served.proc.terminate()
    served.proc.wait(15)

    store_path = served.store.removeprefix("duckdb:///")
    with duckdb.connect(store_path, read_only=True) as db:
        tables = [row[0] for row in db.execute("SHOW TABLES").fetchall()]
        stored = {t: str(db.execute(f'SELECT * FROM "{t}"').fetchall()) for t in tables}
    assert "[EMAIL]" in str(stored) and "[CARD]" in str(stored)  # payloads were logged, redacted
    state_path = Path(store_path).with_suffix(".state.sqlite")
    with sqlite3.connect(state_path) as db:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        state = {t: str(db.execute(f'SELECT * FROM "{t}"').fetchall()) for t in names}
    files = {
        str(p): p.read_bytes().decode("utf-8", "replace")
        for p in tmp_path.rglob("*")
        if p.is_file() and not p.name.endswith(".yaml")
    }
    found = {
        name: leaks(text)
        for name, text in {
            **pages,
            **stored,
            **state,
            **files,
            "log": served.log.read_text(),
        }.items()
        if leaks(text)
    }
    assert found == {}


def test_a_megabyte_of_event_text_is_redacted_off_the_loop(serve, tmp_path: Path) -> None:
    """Redacting a full 1 MB /v1/events batch takes about a second of CPU: /healthz must not
    wait for it."""
    import subprocess
    import sys

    from .test_fuzz import PROBE

    served = serve(CONFIG)
    text = (TEXT + " ") * 12  # about 7 KB of PII-laden text per event
    base = {"experiment_id": "exp_pii", "variant_id": "control", "type": "outcome"}
    batch = [{**base, "unit_id": f"u{i}", "attrs": {"note": text}} for i in range(130)]
    stop = tmp_path / "stop-probe"
    probe = subprocess.Popen(
        [sys.executable, "-c", PROBE, f"{served.url}/healthz", str(stop)], stdout=subprocess.PIPE
    )
    try:
        time.sleep(0.3)
        for _ in range(3):
            assert post(f"{served.url}/v1/events", batch, timeout=30).status_code == 200
    finally:
        stop.touch()
        out, _ = probe.communicate(timeout=30)
    health = json.loads(out)
    assert health["failures"] == 0 and health["p99"] < 0.1, health


def test_spans_of_a_pii_laden_chat_carry_no_raw_match(monkeypatch, tmp_path: Path) -> None:
    """The OpenTelemetry spans of chats whose prompt, user and trace id header hold the corpus."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from abllm.config import loads_experiments
    from abllm.events import EventPipeline, open_store
    from abllm.server import ServerThread, create_app
    from abllm.telemetry import tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_TRACER", provider.get_tracer(tracing.TRACER_NAME))
    monkeypatch.setattr(tracing.trace, "get_tracer_provider", lambda: provider)
    monkeypatch.setattr(tracing, "_tracing", [False, -10.0])
    store = open_store("duckdb:///:memory:")
    pipeline = EventPipeline(store, spool_dir=tmp_path / "spool", flush_interval_s=0.01)
    app = create_app(loads_experiments(CONFIG), store, pipeline=pipeline)
    messages = [{"role": "user", "content": TEXT}]
    with ServerThread(app) as srv:
        for stream in (False, True):
            body = {"model": "exp_pii", "messages": messages, "user": CORPUS["email"]}
            req = urllib.request.Request(
                f"{srv.url}/v1/chat/completions",
                data=json.dumps({**body, "stream": stream}).encode(),
                headers={"Content-Type": "application/json", "X-Abllm-Trace-Id": CORPUS["ssn"]},
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 200
                resp.read()
    pipeline.close()
    store.close()
    spans = exporter.get_finished_spans()
    assert spans, "no span was recorded"
    text = json.dumps([{**dict(s.attributes or {}), "name": s.name} for s in spans], default=str)
    assert leaks(text) == []
