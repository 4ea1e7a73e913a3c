"""JSON routes: feedback, events, SDK config, results, health and Prometheus metrics.

``POST /v1/feedback`` and ``POST /v1/events`` acknowledge only once the events are durable
(``pipeline.submit``, bounded by ``SUBMIT_WAIT_S``), unlike the chat hot path, which never waits
for the store.
``GET /v1/config`` gives SDKs (``abllm.Client``) what they need to assign units locally.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pydantic_core
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from abllm.errors import LimitExceeded, NotFound, StoreUnavailable, ValidationError
from abllm.events import MAX_BATCH_BYTES, Event, EventPipeline, parse_batch
from abllm.server.feedback import build_feedback_event, parse_json_object
from abllm.server.health import health
from abllm.state import runtime_json
from abllm.telemetry import CONTENT_TYPE_LATEST, pseudonymous_id, redact
from abllm.telemetry.redact import run_off_loop

router = APIRouter()


def _state(request: Request) -> Any:
    return request.app.state.abllm


#: Longest a request waits for its events to become durable. The store's own write timeout
#: (3 s on PostgreSQL) sends a stuck batch to the spool well before; past this bound the caller
#: gets 503 with Retry-After and retries safely (``event_id`` deduplicates).
SUBMIT_WAIT_S = 10.0


async def submit_bounded(pipeline: EventPipeline, events: list[Event]) -> None:
    """``pipeline.submit`` with the ``SUBMIT_WAIT_S`` bound; ``StoreUnavailable`` past it."""
    try:
        await asyncio.wait_for(pipeline.submit(events), SUBMIT_WAIT_S)
    except TimeoutError:
        raise StoreUnavailable(
            f"events not durable after {SUBMIT_WAIT_S:g} s (the event store is not answering); "
            "retry with the same event ids"
        ) from None


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """Store, state, spool, dead letters and controller: ``ok``/``degraded`` (200) or ``down``
    (503); see :mod:`abllm.server.health`."""
    st = _state(request)
    status, body = health(
        st.ready,
        len(st.gateway.config.experiments),
        st.pipeline if isinstance(st.pipeline, EventPipeline) else None,  # not a stand-in
        st.state_view,
        None if st.controller is None else st.controller.status(),
    )
    return JSONResponse(body, status_code=status)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the gateway's counters and histograms."""
    return Response(_state(request).gateway.metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/models")
async def models(request: Request) -> JSONResponse:
    """Experiment ids and aliases as OpenAI "models", for clients that list models first."""
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "abllm"}
        for exp in _state(request).gateway.config.experiments
        for name in (exp.id, *exp.aliases)
    ]
    return JSONResponse({"object": "list", "data": data})


@router.post("/v1/feedback")
async def feedback(request: Request) -> JSONResponse:
    """Record feedback for the variant that served ``trace_id`` (or experiment + unit).

    Body: ``{"trace_id": "...", "rating": 4, "thumbs_up": true, ...}`` or
    ``{"experiment_id": "...", "unit_id": "...", ...}``; numbers and booleans become metrics,
    strings become attributes after PII redaction.
    """
    st = _state(request)
    body = parse_json_object(await request.body())
    if st.pipeline is None:
        raise StoreUnavailable("this server has no event store; start it with --store")
    event = await build_feedback_event(body, st.gateway, st.store)
    if event is None:
        return JSONResponse(
            {"recorded": False, "reason": "the unit is not in the experiment's analysis"},
            status_code=200,
        )
    await submit_bounded(st.pipeline, [event])
    st.gateway.metrics.observe_feedback(event.experiment_id, event.variant_id or "none")
    return JSONResponse(
        {
            "recorded": True,
            "event_id": str(event.event_id),
            "experiment_id": event.experiment_id,
            "variant_id": event.variant_id,
            "unit_id": event.unit_id,
        }
    )


@router.get("/v1/experiments/{experiment_id}/results")
def results(experiment_id: str, request: Request) -> JSONResponse:
    """The same JSON as ``abllm analyze --json`` (runs in a worker thread: it queries the store)."""
    st = _state(request)
    try:
        exp = st.gateway.config.get(experiment_id)
    except KeyError:
        known = ", ".join(e.id for e in st.gateway.config.experiments) or "none"
        raise NotFound(f"no experiment {experiment_id!r} (known: {known})") from None
    if st.store is None:
        raise StoreUnavailable("this server has no event store; start it with --store")
    if st.pipeline is not None:
        st.pipeline.flush()  # include what the gateway emitted a moment ago
    from abllm.analysis import analyze, result_to_json  # heavy (scipy): load on first use

    return JSONResponse(result_to_json(analyze(exp, st.store)))


#: The body of ``POST /v1/events`` may hold at most this much JSON (the batch limit, 1 MB, plus
#: room for the ``{"events": ...}`` wrapper).
_MAX_EVENTS_BODY = MAX_BATCH_BYTES + 64


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body, refusing it as soon as it grows past ``limit`` (never buffers a huge upload)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise LimitExceeded(
            f"body: {declared} bytes is over the limit of {MAX_BATCH_BYTES} bytes (1 MB) per batch"
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise LimitExceeded(f"body: over the limit of {MAX_BATCH_BYTES} bytes (1 MB) per batch")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse_events_body(raw: bytes) -> list[Event]:
    """A JSON array of events, or ``{"events": [...]}``; 400 naming the field or the limit."""
    stripped = raw.lstrip()
    if stripped.startswith(b"["):
        return parse_batch(raw)  # one pydantic pass over the bytes: the fast path
    try:
        # pydantic-core keeps integers of any size, so a 400-digit metric is refused by name
        # (orjson would only say "not valid JSON").
        body = pydantic_core.from_json(raw)
    except ValueError as exc:
        raise ValidationError(f"body: not valid JSON ({exc})") from None
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise ValidationError('body: must be a JSON array of events or {"events": [...]}')
    if set(body) != {"events"}:
        extra = ", ".join(sorted(k for k in body if k != "events"))
        raise ValidationError(f"body: unknown key(s) {extra}; only `events` is allowed")
    return parse_batch(body["events"])


def _private(event: Event) -> Event:
    """PII out before persisting: unit ids become pseudonyms, string attributes are redacted."""
    unit_id = pseudonymous_id(event.unit_id)
    attrs = {k: redact(v) if isinstance(v, str) else v for k, v in event.attrs.items()}
    if unit_id == event.unit_id and attrs == event.attrs:
        return event
    return event.model_copy(update={"unit_id": unit_id, "attrs": attrs})


def _parse_private(raw: bytes) -> list[Event]:
    return [_private(e) for e in _parse_events_body(raw)]


@router.post("/v1/events")
async def ingest_events(request: Request) -> JSONResponse:
    """Ingest a batch of events (the SDKs' path); 200 only once they are durable.

    Body: a JSON array of events in the event schema, or ``{"events": [...]}``; at most
    ``MAX_BATCH_EVENTS`` (1,000) events and ``MAX_BATCH_BYTES`` (1 MB). Retrying a batch is safe:
    ``event_id`` deduplicates. A full spool answers 429 with ``Retry-After``.
    """
    st = _state(request)
    if st.pipeline is None:
        raise StoreUnavailable("this server has no event store; start it with --store")
    raw = await _read_limited(request, _MAX_EVENTS_BODY)
    # Up to 1 MB of validation and redaction: on the redaction pool, so the loop keeps serving.
    events = await run_off_loop(lambda: _parse_private(raw))
    await submit_bounded(st.pipeline, events)
    return JSONResponse({"accepted": len(events)})


@router.get("/v1/config")
async def sdk_config(request: Request) -> JSONResponse:
    """The experiments this server runs and their runtime state, for SDKs that assign locally.

    ``{"experiments": [...], "state": {experiment_id: {killed, paused, traffic, weights,
    paused_variants, winner, winner_percent, version}}}``: the experiments as in the YAML file
    (``Experiment.model_dump(mode="json")``) and the overrides ``abllm.assign.assign`` applies.
    """
    gateway = _state(request).gateway
    experiments = gateway.config.experiments
    return JSONResponse(
        {
            "experiments": [exp.model_dump(mode="json") for exp in experiments],
            "state": {exp.id: runtime_json(gateway.state.get(exp.id)) for exp in experiments},
        }
    )
