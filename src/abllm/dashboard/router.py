"""``build_dashboard_router``: the HTML pages and their static files, served offline.

::

    GET /dashboard                          every experiment: status, units, recommendation
    GET /dashboard/experiments/{id}         results, daily chart, health, rollout, audit log
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
    def overview(request: Request) -> HTMLResponse:
        """Every experiment with its status, units so far and recommendation."""
        from abllm.dashboard.html import page
        from abllm.dashboard.pages import overview_body

        body = overview_body(sources(request))
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
        html = page(exp.name or exp.id, detail_body(src, exp), crumbs, refresh_s)
        return HTMLResponse(html, headers=_NO_STORE)

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
