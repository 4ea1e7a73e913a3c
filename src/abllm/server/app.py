"""The FastAPI app factory: the gateway's hot route plus the JSON routes around it.

``POST /v1/chat/completions`` is served by the raw ASGI endpoint in ``abllm.gateway.asgi``,
dispatched by :class:`AbllmApp` *before* FastAPI's own middleware stack (server-error,
telemetry and body-limit middlewares cost ≈ 30 µs a request, about a tenth of the hot path's
budget at 3,000 requests/s); the other routes are ordinary FastAPI routes in
:mod:`abllm.server.routes`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from abllm.config import ExperimentFile
from abllm.dashboard import build_dashboard_router
from abllm.errors import AbllmError, Backpressure, NotFound, StoreUnavailable, ValidationError
from abllm.events import EventPipeline, EventStore, PipelineStats
from abllm.gateway import (
    CHAT_PATH,
    ChatCompletionsEndpoint,
    Gateway,
    GatewaySettings,
    LoopAssigner,
    StateReader,
)
from abllm.gateway.asgi import Receive, Scope, Send
from abllm.providers import ProviderRegistry
from abllm.server.admin import build_admin_router
from abllm.server.auth import ApiKeyCheck
from abllm.server.gauges import runtime_gauges
from abllm.server.routes import router
from abllm.server.snapshot import build_snapshot_router
from abllm.state import StateStore, StateView

if TYPE_CHECKING:
    from abllm.rollout.loop import ControllerStatus
from abllm.telemetry import GatewayMetrics
from abllm.telemetry.metrics import EventGauges, watch_experiments

log = logging.getLogger("abllm.server")


class AbllmApp(FastAPI):
    """FastAPI, with ``POST /v1/chat/completions`` answered before the middleware stack."""

    hot_path: ChatCompletionsEndpoint | None = None
    auth: ApiKeyCheck = ApiKeyCheck(())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self.auth.allows(scope):
            await self.auth.reject(scope, receive, send)
            return
        hot = self.hot_path
        if (
            hot is not None
            and scope["type"] == "http"
            and scope["path"] == CHAT_PATH
            and scope["method"] == "POST"
        ):
            await hot(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


#: A component's health for ``GET /healthz``: ``{"status": "up" | "degraded" | "down", ...}``
#: plus any detail worth showing; called on the event loop, so it must not do I/O.


@dataclass
class AppState:
    """What the routes need, kept on ``app.state.abllm``.

    ``controller`` is the rollout controller's health (``None`` while none runs in this
    process); ``/healthz`` shows it under ``"controller"``.
    """

    gateway: Gateway
    store: EventStore | None
    pipeline: EventPipeline | None
    ready: bool = False
    state_view: StateView | None = None
    controller: ControllerStatus | None = None  # the in-process rollout controller, if any


def event_gauges(stats: PipelineStats) -> EventGauges:
    """The pipeline's snapshot in the shape ``GatewayMetrics.watch_events`` exports."""
    return EventGauges(
        store_up=stats.store_available,
        buffered=stats.buffered,
        spool_bytes=stats.spool_bytes,
        spool_limit_bytes=stats.spool_limit_bytes,
        replay_lag_s=stats.replay_lag_s,
        dead_letters=stats.dead_letters,
        totals={
            "queued": stats.queued,
            "stored": stats.stored,
            "spooled": stats.spooled,
            "replayed": stats.replayed,
            "rejected": stats.rejected,
            "dead_lettered": stats.dead_lettered,
        },
    )


def error_response(exc: AbllmError) -> JSONResponse:
    """An abllm error as JSON with its stable code; never a traceback."""
    status = 500
    headers: dict[str, str] = {}
    if isinstance(exc, ValidationError):
        status = 400
    elif isinstance(exc, NotFound):
        status = 404
    elif isinstance(exc, Backpressure):
        status = 429  # "retry later": the spool is full; Retry-After says when
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    elif isinstance(exc, StoreUnavailable):
        status = 503  # e.g. the store is frozen and the bounded wait ran out: retry
        headers["Retry-After"] = "1"
    body = {"error": {"code": exc.code, "message": exc.message}}
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(
    config: ExperimentFile,
    store: EventStore | None = None,
    *,
    pipeline: EventPipeline | None = None,
    providers: ProviderRegistry | None = None,
    state: StateReader | None = None,
    settings: GatewaySettings | None = None,
    metrics: GatewayMetrics | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    state_store: StateStore | None = None,
    assigner: LoopAssigner | None = None,
    api_keys: Sequence[str] = (),
) -> AbllmApp:
    """Build the app for ``config``.

    ``store`` receives the events through an :class:`EventPipeline` that the app creates (spool
    in ``spool_dir``, default ``./abllm-data/spool``) and closes on shutdown, unless ``pipeline``
    is given (then the caller owns it). ``providers`` and ``state`` default to a fresh
    :class:`ProviderRegistry` and an in-memory state view; the app closes only what it made.
    ``assigner`` replaces the pure ``assign`` (e.g. ``StickyAssigner(open_sticky(url))``).
    ``state_store`` (an ``abllm.state.StateStore``) adds the admin routes of
    :mod:`abllm.server.admin`; pass its ``StateView`` as ``state``. ``api_keys`` (non-empty)
    makes every ``/v1/`` route require one of them (:mod:`abllm.server.auth`).
    """
    owns_pipeline = pipeline is None and store is not None
    if owns_pipeline and store is not None:
        spool = Path(spool_dir) if spool_dir is not None else Path("./abllm-data/spool")
        # Half-second batches: the embedded store's cost is per commit, and the hot path never
        # waits for it (feedback and results flush explicitly).
        pipeline = EventPipeline(store, spool_dir=spool, flush_interval_s=0.5)
    if pipeline is not None and store is None:
        store = pipeline.store
    owns_providers = providers is None
    registry = providers or ProviderRegistry()
    gateway = Gateway(
        config,
        registry,
        pipeline=pipeline,
        state=state,
        metrics=metrics,
        settings=settings,
        assigner=assigner,
    )
    watch_experiments(gateway.metrics, runtime_gauges(config, gateway.state))
    app_state = AppState(
        gateway=gateway,
        store=store,
        pipeline=pipeline,
        state_view=state if isinstance(state, StateView) else None,
    )
    if isinstance(pipeline, EventPipeline):  # a stand-in (tests) has no counters to export
        events = pipeline
        gateway.metrics.watch_events(lambda: event_gauges(events.stats))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app_state.ready = True
        try:
            yield
        finally:
            app_state.ready = False
            if owns_providers:
                await registry.aclose()
            if owns_pipeline and pipeline is not None:
                pipeline.close()

    app = AbllmApp(
        title="abllm",
        summary="A/B testing and gradual rollout for LLM features",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.abllm = app_state
    app.include_router(router)
    app.include_router(build_dashboard_router())
    app.include_router(build_snapshot_router())  # readers of a busy embedded store
    if state_store is not None:  # runtime state: kill switch, rollout moves, audit log
        app.include_router(build_admin_router(state_store))

    @app.exception_handler(AbllmError)
    async def _abllm_error(request: Request, exc: AbllmError) -> JSONResponse:
        return error_response(exc)

    app.hot_path = ChatCompletionsEndpoint(gateway)
    app.auth = ApiKeyCheck(api_keys)
    return app
