"""Trace ids that carry their own attribution, so any process accepts feedback for them.

A trace id the gateway makes (the caller sent neither ``traceparent`` nor ``X-Abllm-Trace-Id``)
is ``t1.<payload>.<tag>``: ``payload`` is base64url JSON ``[nonce, experiment, version, variant,
counted, unit]`` (the unit already pseudonymous, so no PII leaves in it) and ``tag`` a 16-byte
MAC of it under the trace secret: keyed BLAKE2b (RFC 7693 section 2.5, a MAC by design, so no
HMAC construction is needed around it; 0.6 us here against 2.3 us for HMAC-SHA256 on the hot
path). The nonce is a per-process random prefix and a counter, so every id is unique.
Feedback that names such an id is attributed from the id itself, with no lookup: behind a load
balancer, whichever process gets the feedback, also the instant the answer arrived, before any
event was flushed.

The secret is ``$ABLLM_TRACE_SECRET``; unset, each process draws a random one (``abllm serve
--workers N`` shares one among its workers). Processes on several hosts need the same value to
read each other's ids; an id signed under another secret is simply looked up in the store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import os
import secrets

import orjson

from abllm.gateway.model import TraceInfo

SECRET_ENV = "ABLLM_TRACE_SECRET"  # noqa: S105 - the variable's name, not a secret
_PREFIX = "t1."
_TAG_BYTES = 16
#: A signed id must stay a storable id (the event schema's limit is 200 characters).
_MAX_CHARS = 200


def _secret() -> bytes:
    value = os.environ.get(SECRET_ENV)
    # BLAKE2b takes keys up to 64 bytes: a longer secret is hashed down to 64.
    key = value.encode() if value else secrets.token_bytes(32)
    return key if len(key) <= 64 else hashlib.blake2b(key).digest()


_KEY = _secret()
_PROCESS = secrets.token_hex(4)
_COUNTER = itertools.count()


def _tag(body: str) -> str:
    mac = hashlib.blake2b(body.encode(), key=_KEY, digest_size=_TAG_BYTES).digest()
    return _b64(mac)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signed_trace_id(info: TraceInfo) -> str:
    """A fresh trace id carrying ``info``; a random hex id when that would be too long."""
    nonce = f"{_PROCESS}{next(_COUNTER):x}"
    payload = orjson.dumps(
        [nonce, info.experiment_id, info.experiment_version, info.variant_id, info.counted,
         info.unit_id]
    )  # fmt: skip
    body = _b64(payload)
    trace_id = f"{_PREFIX}{body}.{_tag(body)}"
    return trace_id if len(trace_id) <= _MAX_CHARS else os.urandom(16).hex()


def read_trace_id(trace_id: str) -> TraceInfo | None:
    """The attribution a signed trace id carries, or None (not ours, or not authentic)."""
    if not trace_id.startswith(_PREFIX):
        return None
    body, _, tag = trace_id[len(_PREFIX) :].partition(".")
    if not hmac.compare_digest(tag, _tag(body)):  # constant time: no forging byte by byte
        return None
    try:
        _, exp_id, version, variant_id, counted, unit_id = orjson.loads(_unb64(body))
        return TraceInfo(str(exp_id), int(version), variant_id, unit_id, bool(counted))
    except (ValueError, TypeError):
        return None
