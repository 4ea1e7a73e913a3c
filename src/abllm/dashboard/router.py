"""``build_dashboard_router``: the HTML pages and their static files, served offline.

::

    GET /dashboard                          every experiment: status, units, recommendation
    GET /dashboard/experiments/{id}         results, daily chart, health, rollout, audit log
    POST /dashboard/experiments/{id}/actions/{action}   pause, kill, resume, advance, rollback
    GET /dashboard/static/{name}            dashboard.css, dashboard.js (no CDN)

Routes are synchronous: the analysis queries the store, so FastAPI runs them in its worker
pool instead of blocking the event loop the gateway's hot path shares. The pages (and through
them scipy and the analysis engine, ≈ 0.5 s of imports) load on the first dashboard request,
not when the server starts.
"""

from __future__ import annotations

import threading
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

if TYPE_CHECKING:
    from abllm.dashboard.sources import Caches, Sources

PREFIX = "/dashboard"

#: The static files and their media types; nothing else is served (no path from the URL
#: ever reaches the file system).
STATIC = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}
_NO_STORE = {"Cache-Control": "no-store"}


@cache
def _static(name: str) -> bytes:
    return resources.files("abllm.dashboard").joinpath(f"static/{name}").read_bytes()


def build_dashboard_router(*, cache_ttl_s: float = 5.0, refresh_s: int = 10) -> APIRouter:
    """The dashboard routes, reading ``request.app.state.abllm`` on every request.

    ``cache_ttl_s``: how long one experiment's analysis is reused across page loads;
    ``refresh_s``: how often an open page reloads its figures.

    Example::

        app.include_router(build_dashboard_router())
    """
    router = APIRouter(prefix=PREFIX, tags=["dashboard"], include_in_schema=False)
    made: list[Caches] = []
    lock = threading.Lock()

    def sources(request: Request) -> Sources:
        from abllm.dashboard.sources import Caches, Sources

        with lock:
            if not made:
                made.append(Caches.make(cache_ttl_s))
        return Sources(getattr(request.app.state, "abllm", None), made[0])

    @router.get("", response_class=HTMLResponse)
    def overview(request: Request, status: str | None = None) -> HTMLResponse:
        """Every experiment with its status, stage, units and badges (``?status=`` filters)."""
        from abllm.dashboard.html import page
        from abllm.dashboard.pages import overview_body

        body = overview_body(sources(request), status or None)
        html = page("Experiments", body, [("experiments", None)], refresh_s)
        return HTMLResponse(html, headers=_NO_STORE)

    @router.get("/", include_in_schema=False)
    def overview_slash() -> RedirectResponse:
        return RedirectResponse(PREFIX, status_code=307)

    @router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
    def experiment(experiment_id: str, request: Request) -> HTMLResponse:
        """One experiment: results table, cumulative daily effect, health, rollout, audit."""
        from abllm.dashboard.html import page
        from abllm.dashboard.pages import detail_body, not_found_body

        src = sources(request)
        exp = src.experiment(experiment_id)
        crumbs: list[tuple[str, str | None]] = [("experiments", PREFIX), (experiment_id, None)]
        if exp is None:
            known = [e.id for e in src.experiments()]
            html = page(f"No experiment {experiment_id}", not_found_body(experiment_id, known),
                        crumbs, refresh_s)  # fmt: skip
            return HTMLResponse(html, status_code=404, headers=_NO_STORE)
        from abllm.server.auth import key_scope

        may_act = key_scope(request.scope) == "admin"
        html = page(exp.name or exp.id, detail_body(src, exp, may_act), crumbs, refresh_s)
        return HTMLResponse(html, headers=_NO_STORE)

    @router.post("/experiments/{experiment_id}/actions/{action}", response_model=None)
    async def act(experiment_id: str, action: str, request: Request) -> Response:
        """One control: admin scope, same origin and a reason, else a 4xx page saying why."""
        from urllib.parse import parse_qs

        from starlette.concurrency import run_in_threadpool

        from abllm.dashboard import controls
        from abllm.dashboard.html import error_box, page
        from abllm.errors import AbllmError
        from abllm.server.auth import key_scope

        src = sources(request)
        exp = src.experiment(experiment_id)
        crumbs: list[tuple[str, str | None]] = [("experiments", PREFIX), (experiment_id, None)]

        def refused(status: int, message: str) -> HTMLResponse:
            body = error_box(f"{action} refused:", message)
            return HTMLResponse(page("Refused", body, crumbs, 0), status_code=status,
                                headers=_NO_STORE)  # fmt: skip

        if exp is None:
            return refused(404, f"no experiment {experiment_id!r}")
        if not controls.known_action(action):
            return refused(
                404, f"unknown action {action!r} (known: pause, kill, resume, advance, rollback)"
            )
        if key_scope(request.scope) != "admin":
            return refused(403, "controls need an admin session")
        if not controls.same_origin(request.headers):
            return refused(403, "cross-origin request (Origin does not match this server)")
        raw = (await request.body())[: 4 * controls.MAX_REASON].decode("utf-8", "replace")
        reason = (parse_qs(raw).get("reason") or [""])[0].strip()
        if not reason:
            return refused(400, "reason: a reason is required; it is kept in the audit log")
        store = src.state_store()
        if store is None:
            return refused(409, "this server has no state backend (start it with --state)")
        try:
            await run_in_threadpool(
                controls.run_action, store, exp, action, reason[: controls.MAX_REASON]
            )
        except AbllmError as exc:
            return refused(controls.error_status(exc), exc.message)
        href = f"{PREFIX}/experiments/{quote(exp.id, safe='')}#controls"
        return RedirectResponse(href, status_code=303)

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        """The stylesheet and the auto-refresh script, from the installed package."""
        media = STATIC.get(name)
        if media is None:
            return Response("no such static file", status_code=404, media_type="text/plain")
        return Response(
            _static(name), media_type=media, headers={"Cache-Control": "public, max-age=300"}
        )

    return router
