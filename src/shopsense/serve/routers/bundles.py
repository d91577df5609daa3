"""``POST /bundles``: a bundle around one or more anchor items, optionally on a budget."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from shopsense.serve._results import ResultsOut, render
from shopsense.serve._state import Principal, get_engine, reader

router = APIRouter(tags=["bundles"])


class BundleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[str] = Field(..., min_length=1, max_length=50, description="anchor product ids")
    size: int = Field(3, ge=1, le=20, description="items in the bundle, anchors included "
                      "(must exceed the number of anchors)")
    budget: float | None = Field(None, gt=0, le=1e12, description="maximum total price")


@router.post("/bundles", response_model=ResultsOut, summary="Build a bundle")
def bundle(req: BundleIn, _: Principal = Depends(reader), engine: Any = Depends(get_engine)) -> Any:
    return render(engine.bundle(req.items, size=req.size, budget=req.budget), engine, "bundle")
