"""``/docs`` (Swagger UI) and ``/redoc`` with their assets served from the package: no CDN.

FastAPI's default pages load Swagger UI and ReDoc from a CDN (and a favicon and Google Fonts),
so they are blank offline. The same page builders are used here with URLs under
``/docs/assets/``; the files are vendored in ``docs_assets/`` (see its README.txt). Swagger UI's
online validator badge is turned off (``validatorUrl: null``): it would post the schema away.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

ASSETS = "/docs/assets"
_TYPES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
}
_FAVICON = "data:,"  # no favicon request at all


def _asset(name: str) -> bytes:
    return resources.files("abllm.server").joinpath(f"docs_assets/{name}").read_bytes()


def build_docs_router(openapi_url: str = "/openapi.json", title: str = "abllm") -> APIRouter:
    """The two documentation pages and their assets (not themselves in the schema)."""
    router = APIRouter(include_in_schema=False)

    @router.get("/docs", response_class=HTMLResponse)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title}: API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=_FAVICON,
            swagger_ui_parameters={"validatorUrl": None},
        )

    @router.get("/redoc", response_class=HTMLResponse)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title}: API",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=_FAVICON,
            with_google_fonts=False,
        )

    @router.get(f"{ASSETS}/{{name}}")
    def asset(name: str) -> Response:
        media = _TYPES.get(name)
        if media is None:
            raise HTTPException(404, f"no asset {name!r}")
        return Response(
            _asset(name), media_type=media, headers={"cache-control": "public, max-age=86400"}
        )

    return router
