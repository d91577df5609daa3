"""The storefront (``/``) and what it reads (``/storefront/home``), the dashboard
(``/dashboard``), the favicon, and the API docs (``/docs``, ``/redoc``) served from
local files, so they work without a network: static pages, no build step.

The Swagger UI and ReDoc assets come from the ``fastapi-offline`` package (MIT; it
bundles swagger-ui-dist and redoc under their own licences), part of the ``api``
extra. ``serve.main`` turns FastAPI's CDN-backed docs off (``docs_url=None``).
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from shopsense.errors import NotFoundError, ShopsenseError
from shopsense.serve._results import _clean, render
from shopsense.serve._state import Principal, get_engine, reader

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)
log = logging.getLogger(__name__)

#: the files of the ``fastapi-offline`` package that the docs pages load
DOC_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
              "redoc.standalone.js": "text/javascript"}
DOCS_HINT = "pip install 'shopsense[api]' (or fastapi-offline)"


@router.get("/")
def storefront() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@router.get("/dashboard")
def dashboard() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html")


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(STATIC / "favicon.ico", media_type="image/x-icon")


# -- API docs from local files ---------------------------------------------------------
def _doc_assets() -> Path | None:
    """The folder of the bundled Swagger UI / ReDoc files, or None when not installed."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).resolve().parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def _no_assets(request: Request) -> HTMLResponse:
    url = request.app.openapi_url or "/openapi.json"
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>shopsense API</title>"
        '<link rel="icon" href="/favicon.ico"></head><body><main><h1>shopsense API</h1>'
        f"<p>The interactive docs need their bundled assets: <code>{DOCS_HINT}</code>.</p>"
        f'<p>The OpenAPI schema is at <a href="{url}">{url}</a>.</p></main></body></html>')


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    from fastapi.openapi.docs import get_swagger_ui_html

    if _doc_assets() is None:
        return _no_assets(request)
    app = request.app
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - API docs",
        swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{root}/docs/assets/swagger-ui.css", swagger_favicon_url=f"{root}/favicon.ico",
        oauth2_redirect_url=f"{root}/docs/oauth2-redirect", swagger_ui_parameters=app.swagger_ui_parameters)


@router.get("/docs/oauth2-redirect")
def swagger_ui_redirect() -> HTMLResponse:
    from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html

    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    from fastapi.openapi.docs import get_redoc_html

    if _doc_assets() is None:
        return _no_assets(request)
    root = request.scope.get("root_path", "")
    return get_redoc_html(openapi_url=f"{root}{request.app.openapi_url}", title=f"{request.app.title} - ReDoc",
                          redoc_js_url=f"{root}/docs/assets/redoc.standalone.js",
                          redoc_favicon_url=f"{root}/favicon.ico", with_google_fonts=False)


@router.get("/docs/assets/{name}")
def doc_asset(name: str) -> Response:
    folder = _doc_assets()
    if folder is None or name not in DOC_ASSETS:
        raise NotFoundError("docs asset", name)
    return FileResponse(folder / name, media_type=DOC_ASSETS[name],
                        headers={"Cache-Control": "public, max-age=86400"})


# -- what the storefront's home page shows ---------------------------------------------
@router.get("/storefront/home")
def home(
    k: int = Query(12, ge=1, le=48, description="popular items"),
    categories: int = Query(12, ge=1, le=48, description="categories"),
    _: Principal = Depends(reader),
    engine: Any = Depends(get_engine),
) -> dict[str, Any]:
    """The largest leaf categories (with one product each, for a picture) and the list
    of popular items (the recommender's popularity list, as for a shopper without
    history; empty with ``popular_error`` when no model is trained)."""
    cat = engine.catalog()
    counts = Counter(c for c in cat.category_leaf if c)
    first: dict[str, int] = {}
    for row, c in enumerate(cat.category_leaf):
        if c and c not in first:
            first[c] = row
    out: dict[str, Any] = {"categories": [
        {"name": c, "count": n, "example": cat.products[first[c]].model_dump(mode="json")}
        for c, n in counts.most_common(categories)]}
    try:
        out["popular"] = render(engine.next_items([], k=k))
    except (ShopsenseError, ImportError) as exc:  # no trained model, or the recommend extra missing
        log.info("storefront home without popular items: %s", exc)
        out["popular"] = {"hits": []}
        out["popular_error"] = str(exc)
    return _clean(out)
