"""Fuzzing ``/v1/events`` and ``/v1/feedback``: no body, however hostile, gets a 5xx, and the
event loop never stalls (a concurrent ``/healthz`` keeps answering within 100 ms).

The event bodies are driven by the schema: every field of ``Event`` (new ones included) gets
either a plausible value or any JSON value, with the values that used to poison a store
(NUL characters, 400-digit integers, out-of-range timestamps, 2**32 + 1 versions) mixed in.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abllm.events import Event, EventType
from events.conftest import drop_store

from .healthprobe import ProcessHealthProbe
from .serveproc import running_serve

CONFIG = """
experiments:
  - id: fuzz
    variants:
      - id: control
        control: true
        llm: {provider: sim, model: sim-small, sim: {time_scale: 0, error_rate: 0}}
      - id: treatment
        llm: {provider: sim, model: sim-large, sim: {time_scale: 0, error_rate: 0}}
"""

HOSTILE_TEXT = ["", "\x00", "a\x00b", "\ud800", "x" * 201, "x" * 40_000, "é" * 50, "pii:x"]
TIMESTAMPS = [
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "1899-12-31T23:59:59Z",
    "2262-01-01T00:00:00Z",
    "2026-12-01T12:00:00",
    "2026-12-01T12:00:00+14:00",
    "not a time",
    "2026-02-30T00:00:00Z",
]
HOSTILE_NUMBERS = [10**400, -(10**400), 10**30, 2**31, 2**32 + 1, 2**63, -1, 1e308, -1e-308]

text = st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE_TEXT))
number = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(HOSTILE_NUMBERS),
)
scalar = st.one_of(st.none(), st.booleans(), number, text)
json_value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=8,
)
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.one_of(st.uuids().map(str), text),
    "ts": st.sampled_from(TIMESTAMPS),
    "type": st.sampled_from([*(t.value for t in EventType), "bogus"]),
    "experiment_id": st.one_of(st.just("fuzz"), text),
    "experiment_version": st.one_of(st.integers(0, 10), st.sampled_from(HOSTILE_NUMBERS)),
    "variant_id": st.one_of(st.sampled_from(["control", "treatment"]), text),
    "unit_id": text,
    "trace_id": text,
    "metrics": st.dictionaries(st.one_of(st.just("rating"), text), scalar, max_size=4),
    "attrs": st.dictionaries(text, scalar, max_size=4),
}
# Schema-driven: a field added to Event is fuzzed too, with any JSON value.
FIELDS = {
    name: st.one_of(PLAUSIBLE.get(name, json_value), json_value) for name in Event.model_fields
}
event_body = st.fixed_dictionaries({}, optional=FIELDS)
events_body = st.one_of(
    st.lists(event_body, max_size=5),
    st.fixed_dictionaries({"events": st.lists(event_body, max_size=5)}),
    st.fixed_dictionaries({"events": json_value}),
    json_value,
)
feedback_body = st.fixed_dictionaries(
    {},
    optional={
        "experiment_id": st.one_of(st.just("fuzz"), text, json_value),
        "unit_id": st.one_of(text, json_value),
        "trace_id": st.one_of(text, json_value),
        "rating": st.one_of(number, json_value),
        "thumbs_up": st.one_of(st.booleans(), json_value),
        "metrics": json_value,
        "attrs": json_value,
        "ts": st.one_of(st.sampled_from(TIMESTAMPS), json_value),
        "event_id": st.one_of(st.uuids().map(str), json_value),
        "comment": st.one_of(text, json_value),
    },
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, pg_url: str) -> Iterator[str]:
    """``abllm serve`` on PostgreSQL in its own process, watched by a ``/healthz`` prober in
    a third one (the fuzzing's own CPU and GC pauses must not count against the server)."""
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    url = f"{pg_url}?schema=t_fuzz_{time.time_ns()}"
    options = ["--store", url, "--state", f"sqlite:///{tmp / 'state.sqlite'}"]
    options += ["--sticky", "never", "--spool-dir", str(tmp / "spool")]
    try:
        with running_serve(CONFIG, tmp, *options) as base, ProcessHealthProbe(base) as probe:
            yield base
    finally:
        drop_store("postgres", url)
    assert probe.errors == [] and probe.count > 10, (probe.count, probe.errors)
    # The same bound as the chat fuzz (tests/gateway/test_fuzz.py): p99 under 100 ms; a lone
    # probe on a loaded 2-core machine can be descheduled, so the worst may reach 300 ms.
    assert probe.p99 < 0.1 and probe.slowest < 0.3, (probe.p99, probe.slowest)


class Poster:
    """One keep-alive connection, so the fuzzing measures the server, not TCP set-up."""

    def __init__(self, base: str) -> None:
        self.host, port = base.removeprefix("http://").split(":")
        self.port = int(port)
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def post(self, path: str, body: Any) -> int:
        raw = json.dumps(body, ensure_ascii=True).encode()  # lone surrogates as \\ud800 escapes
        self.conn.request("POST", path, raw, {"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        answer = resp.read()
        assert resp.status < 500, (resp.status, answer[:500], raw[:500])
        return resp.status


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.postgres
def test_fuzz_events(server: str) -> None:
    poster = Poster(server)
    seen: set[int] = set()

    @FUZZ
    @given(body=events_body)
    def check(body: Any) -> None:
        seen.add(poster.post("/v1/events", body))

    check()
    assert 400 in seen and 200 in seen  # both kinds of body were generated


@pytest.mark.postgres
def test_fuzz_feedback(server: str) -> None:
    poster = Poster(server)
    seen: set[int] = set()

    @FUZZ
    @given(body=feedback_body)
    def check(body: Any) -> None:
        seen.add(poster.post("/v1/feedback", body))

    check()
    assert 400 in seen
