"""Admin routes for runtime state: kill switch, resume, rollout moves, state and audit log.

::

    POST /v1/admin/experiments/{id}/kill               {"reason": "...", "actor": "..."}
    POST /v1/admin/experiments/{id}/resume             {"reason": "...", "actor": "..."}
    POST /v1/admin/experiments/{id}/rollout/advance    {"winner": "b", "reason": "...", ...}
    POST /v1/admin/experiments/{id}/rollout/rollback   {"reason": "...", "actor": "..."}
    GET  /v1/admin/experiments/{id}/state
    GET  /v1/admin/experiments/{id}/audit?limit=100

Each POST is one audited change in the state store; every gateway process sees it within a
second. An experiment id the state store does not know (``abllm serve`` registers its config's
experiments) is a 404 naming the known ids, and nothing is written. The audit row's actor is the
name of the key that acted (e.g. ``admin-key:1a2b3c4d`` or a managed key's ``name (abllm_ak_…)``),
never the key; only on a server without keys (local use) is it the body's ``actor``, else the
``X-Abllm-Actor`` header, else ``api``.
Errors are ``{"error": {"code", "message"}}`` with 400, 404, 409 (conflict) or 503.

A POST answers the new state plus ``applied``: how many live processes (those whose heartbeat
is under 5 s old) applied the change, waiting up to ``?wait_s=`` (default 2) for all of them —
``{"live": 3, "applied": 2, "complete": false, "pending": [...], "message": "applied by 2 of
3 live processes"}``. The change is recorded either way; ``complete: false`` says some live
process has not applied it yet.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from abllm.errors import AbllmError, Conflict, NotFound, StoreUnavailable, ValidationError
from abllm.server.auth import key_name
from abllm.state import ExperimentState, StateStore
from abllm.state.confirm import confirm
from abllm.state.known import require_known, wait_known
from abllm.state.models import AuditEntry

_STATUS = {ValidationError: 400, NotFound: 404, Conflict: 409, StoreUnavailable: 503}
#: ``?wait_s=``: how long a change waits for every live process to confirm it (0-10 s).
WAIT = Query(default=2.0, ge=0, le=10)


class ChangeRequest(BaseModel):
    """Body of the POST routes (all fields optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)
    actor: str | None = Field(default=None, max_length=200)


class AdvanceRequest(ChangeRequest):
    """Body of ``rollout/advance``: ``winner`` starts or continues the winner rollout."""

    winner: str | None = Field(default=None, max_length=128)


class StateResponse(BaseModel):
    """``GET .../state``: the stored runtime state (``abllm rollout status --json``)."""

    model_config = ConfigDict(extra="allow")

    experiment_id: str
    experiment_version: int
    version: int
    killed: bool
    paused: bool
    runtime: dict[str, Any] = Field(description="the overrides assignment applies")


class ChangeResponse(StateResponse):
    """A POST's answer: the new state plus how many live processes applied it."""

    applied: dict[str, Any]


class AuditResponse(BaseModel):
    """``GET .../audit``: the newest rows, oldest first."""

    experiment_id: str
    audit: list[AuditEntry]


def _documented(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses of a route: ``model`` on 200, the error shape otherwise."""
    from abllm.server.openapi import ErrorResponse

    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (400, 404, 409, 503)
    }
    return {200: {"model": model}, **errors}


def _error(exc: AbllmError) -> JSONResponse:
    status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 500)
    return JSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=status)


def _actor(request: Request, body: ChangeRequest | None, header: str | None) -> str:
    """The audit row's actor: the key that acted; a declared actor only on a keyless server."""
    name = key_name(request.scope)
    if name is not None:
        return name
    return (body.actor if body else None) or header or "api"


def _state_json(state: ExperimentState) -> dict[str, Any]:
    return state.to_json()


def build_admin_router(state_store: StateStore) -> APIRouter:
    """The admin router over ``state_store`` (routes are sync: FastAPI runs them in a pool)."""
    from abllm.rollout import actions

    router = APIRouter(prefix="/v1/admin/experiments", tags=["admin"])

    def change(
        action: Callable[..., Any],
        experiment_id: str,
        body: ChangeRequest | None,
        actor: str,
        wait_s: float,
        **extra: Any,
    ) -> Any:
        """Apply one state action; abllm errors become their JSON error response.

        An id the state store does not know is a 404 naming the known ids; nothing is written.
        """
        try:
            wait_known(state_store, experiment_id, wait_s)
            state = action(
                state_store,
                experiment_id,
                actor=actor,
                reason=body.reason if body else None,
                **extra,
            )
            confirmation = confirm(state_store, experiment_id, state.version, timeout_s=wait_s)
        except AbllmError as exc:
            return _error(exc)
        return {**_state_json(state), "applied": confirmation.to_json()}

    @router.post("/{experiment_id}/kill", responses=_documented(ChangeResponse))
    def kill(
        experiment_id: str,
        request: Request,
        body: ChangeRequest | None = None,
        x_abllm_actor: str | None = Header(default=None),
        wait_s: float = WAIT,
    ) -> Any:
        """Kill switch: every process serves control for this experiment."""
        return change(
            actions.kill, experiment_id, body, _actor(request, body, x_abllm_actor), wait_s
        )

    @router.post("/{experiment_id}/resume", responses=_documented(ChangeResponse))
    def resume(
        experiment_id: str,
        request: Request,
        body: ChangeRequest | None = None,
        x_abllm_actor: str | None = Header(default=None),
        wait_s: float = WAIT,
    ) -> Any:
        """Undo a kill or pause (also un-pauses arms a guardrail paused)."""
        return change(
            actions.resume, experiment_id, body, _actor(request, body, x_abllm_actor), wait_s
        )

    @router.post("/{experiment_id}/rollout/advance", responses=_documented(ChangeResponse))
    def advance(
        experiment_id: str,
        request: Request,
        body: AdvanceRequest | None = None,
        x_abllm_actor: str | None = Header(default=None),
        wait_s: float = WAIT,
    ) -> Any:
        """One step forward: the next stage, or the winner rollout when ``winner`` is given."""
        winner = body.winner if body else None
        actor = _actor(request, body, x_abllm_actor)
        return change(actions.advance, experiment_id, body, actor, wait_s, winner=winner)

    @router.post("/{experiment_id}/rollout/rollback", responses=_documented(ChangeResponse))
    def rollback(
        experiment_id: str,
        request: Request,
        body: ChangeRequest | None = None,
        x_abllm_actor: str | None = Header(default=None),
        wait_s: float = WAIT,
    ) -> Any:
        """One step back; automatic advances then wait for a manual advance."""
        return change(
            actions.rollback, experiment_id, body, _actor(request, body, x_abllm_actor), wait_s
        )

    @router.get("/{experiment_id}/state", responses=_documented(StateResponse))
    def get_state(experiment_id: str) -> Any:
        """The runtime state (and the overrides assignment applies)."""
        try:
            return _state_json(require_known(state_store, experiment_id))
        except AbllmError as exc:
            return _error(exc)

    @router.get("/{experiment_id}/audit", responses=_documented(AuditResponse))
    def get_audit(experiment_id: str, limit: int = Query(default=100, ge=1, le=10_000)) -> Any:
        """The newest ``limit`` changes, oldest first: who, when, what, why."""
        try:
            require_known(state_store, experiment_id)
            rows = state_store.audit(experiment_id, limit=limit)
        except AbllmError as exc:
            return _error(exc)
        return {"experiment_id": experiment_id, "audit": [r.to_json() for r in rows]}

    return router
