"""Signed trace ids: what the gateway puts in, any process with the secret reads back."""

from __future__ import annotations

from abllm.gateway import traceid
from abllm.gateway.model import TraceInfo

INFO = TraceInfo("exp_guard", 3, "treatment", "pii:0123abcd", True)


def test_a_signed_id_carries_its_attribution() -> None:
    trace_id = traceid.signed_trace_id(INFO)
    assert trace_id.startswith("t1.") and len(trace_id) <= 200
    assert traceid.read_trace_id(trace_id) == INFO
    assert traceid.signed_trace_id(INFO) != trace_id  # a nonce per request


def test_holdback_and_no_variant_round_trip() -> None:
    info = TraceInfo("e", 1, None, "u", True)
    assert traceid.read_trace_id(traceid.signed_trace_id(info)) == info


def test_a_tampered_or_foreign_id_is_not_trusted(monkeypatch) -> None:
    trace_id = traceid.signed_trace_id(INFO)
    body, tag = trace_id[3:].split(".")
    forged = traceid.signed_trace_id(TraceInfo("exp_guard", 3, "control", "pii:0123abcd", True))
    assert traceid.read_trace_id(f"t1.{forged.split('.')[1]}.{tag}") is None
    flipped = "B" if tag[-1] == "A" else "A"
    assert traceid.read_trace_id(f"t1.{body}.{tag[:-1]}{flipped}") is None
    assert traceid.read_trace_id("0af7651916cd43dd8448eb211c80319c") is None
    assert traceid.read_trace_id("t1.garbage") is None
    monkeypatch.setattr(traceid, "_KEY", b"another host's secret")
    assert traceid.read_trace_id(trace_id) is None  # looked up in the store instead


def test_an_id_too_long_to_store_falls_back_to_a_random_one() -> None:
    trace_id = traceid.signed_trace_id(TraceInfo("e", 1, "v", "u" * 190, True))
    assert len(trace_id) == 32 and traceid.read_trace_id(trace_id) is None
