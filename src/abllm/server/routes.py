"""JSON routes: feedback, results, health and Prometheus metrics.

``POST /v1/feedback`` acknowledges only once the event is durable (``pipeline.submit``), unlike
the chat hot path, which never waits for the store.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from abllm.errors import NotFound, StoreUnavailable
from abllm.server.feedback import build_feedback_event, parse_json_object
from abllm.telemetry import CONTENT_TYPE_LATEST

router = APIRouter()


def _state(request: Request) -> Any:
    return request.app.state.abllm


@router.get("/healthz")
async def healthz(request: Request) -> JSONResponse:
    """200 once the server is ready to serve (lifespan started), 503 before."""
    st = _state(request)
    if not st.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse(
        {"status": "ok", "experiments": len(st.gateway.config.experiments)}, status_code=200
    )


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
    await st.pipeline.submit([event])
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
