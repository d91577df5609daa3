"""The storefront (``/``) and the dashboard (``/dashboard``): static pages, no build step."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
def storefront() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@router.get("/dashboard")
def dashboard() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html")
