"""``/merchandising``: the shop owner's rules (pin, boost, bury, exclude, hide
out-of-stock) and synonyms, with a before/after preview of a query's results.

Every call needs a key with the ``write`` (admin) role. Changes are written to the
same files the CLI uses (``<home>/rules.json``, ``<home>/synonyms.txt``), atomically,
so ``shopsense rules list`` and every server worker see them; the response cache is
versioned by the rules file, so the storefront shows a saved rule on its next request.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, Query
from pydantic import BaseModel, Field

from shopsense.errors import ValidationError
from shopsense.rerank import Reranker, RuleSet, finish, load_rules, save_rules, validate_rules
from shopsense.serve._state import Principal, ServeState, get_engine, get_state, writer

router = APIRouter(prefix="/merchandising", tags=["merchandising"])


def _rules_out(rs: RuleSet) -> dict[str, Any]:
    return rs.model_dump(mode="json")


@router.get("/rules", summary="The stored rules and the out-of-stock switch")
def get_rules(_: Principal = Depends(writer), engine: Any = Depends(get_engine)) -> dict[str, Any]:
    return _rules_out(load_rules(engine.home))


@router.put("/rules/{name}", summary="Add a rule, or replace the rule of that name (edit, enable, disable)")
def put_rule(
    name: str,
    rule: dict[str, Any] = Body(..., description="a rule: action, match, weight/position, surfaces, queries, enabled"),
    _: Principal = Depends(writer),
    state: ServeState = Depends(get_state),
    engine: Any = Depends(get_engine),
) -> dict[str, Any]:
    rs = load_rules(engine.home)
    if rule.get("name", name) != name:
        raise ValidationError(f"The rule's name {rule.get('name')!r} differs from the path's {name!r}.", field="name")
    kept = [r for r in rs.rules if r.name != name]
    new = validate_rules({"hide_out_of_stock": rs.hide_out_of_stock,
                          "rules": [*(r.model_dump(mode="json") for r in kept), {**rule, "name": name}]})
    # an edited rule keeps its place in the list (rules apply in order)
    order = [r.name for r in rs.rules]
    new_rules = sorted(new.rules, key=lambda r: order.index(r.name) if r.name in order else len(order))
    save_rules(engine.home, RuleSet(hide_out_of_stock=rs.hide_out_of_stock, rules=new_rules))
    state.cache.invalidate()
    return _rules_out(load_rules(engine.home))


@router.delete("/rules/{name}", summary="Delete a rule")
def delete_rule(name: str, _: Principal = Depends(writer), state: ServeState = Depends(get_state),
                engine: Any = Depends(get_engine)) -> dict[str, Any]:
    save_rules(engine.home, load_rules(engine.home).remove(name))
    state.cache.invalidate()
    return _rules_out(load_rules(engine.home))


@router.put("/out-of-stock", summary="Hide (or show) out-of-stock products in every list")
def out_of_stock(hide: bool = Query(...), _: Principal = Depends(writer), state: ServeState = Depends(get_state),
                 engine: Any = Depends(get_engine)) -> dict[str, Any]:
    rs = load_rules(engine.home)
    save_rules(engine.home, RuleSet(hide_out_of_stock=hide, rules=rs.rules))
    state.cache.invalidate()
    return _rules_out(load_rules(engine.home))


class SynonymsIn(BaseModel):
    lines: list[str] = Field(max_length=100_000, description="Solr synonym lines: 'a, b, c' or 'a => b'")
    rebuild: bool = Field(default=True, description="rebuild the search index so the synonyms act now")


@router.get("/synonyms", summary="The shop's synonyms (the packaged default until the shop saves its own)")
def get_synonyms(_: Principal = Depends(writer), engine: Any = Depends(get_engine)) -> dict[str, Any]:
    path = engine.paths.synonyms
    own = path.parent == Path(engine.home)
    return {"own": own, "path": str(path), "lines": path.read_text(encoding="utf-8").splitlines()}


@router.put("/synonyms", summary="Save the shop's synonyms (<home>/synonyms.txt) and rebuild the index")
def put_synonyms(body: SynonymsIn, _: Principal = Depends(writer), state: ServeState = Depends(get_state),
                 engine: Any = Depends(get_engine)) -> dict[str, Any]:
    for i, line in enumerate(body.lines):
        text = line.split("#", 1)[0].strip()
        if text and "," not in text and "=>" not in text:
            raise ValidationError(f"Synonym line {i + 1} ({line!r}) needs 'a, b' or 'a => b'.", field="lines")
    home = Path(engine.home)
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".synonyms-", suffix=".txt")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(body.lines) + "\n")
    os.replace(tmp, home / "synonyms.txt")
    rebuilt = None
    if body.rebuild:
        # the query parser, which holds the synonyms, is fitted at build time; a service made
        # before the shop had its own file still points at the packaged one
        engine.searcher.synonyms_path = home / "synonyms.txt"
        rebuilt = engine.build_index()
        state.products_changed()
    return {"lines": len(body.lines), "rebuilt": bool(rebuilt)}


class PreviewIn(BaseModel):
    query: str = Field(min_length=1, max_length=500)
    k: int = Field(default=10, ge=1, le=100)
    rule: dict[str, Any] | None = Field(default=None, description="a draft rule to preview before saving it")


def _hit(h: Any, catalog: Any) -> dict[str, Any]:
    p = h.product
    if p is None:
        i = catalog.index.get(h.id) if hasattr(catalog, "index") else None
        p = catalog.products[i] if i is not None else None
    return {"id": h.id, "title": p.title if p else "", "price": p.price if p else None,
            "in_stock": p.in_stock if p else None, "score": float(h.score)}


def _preview(engine: Any, query: str, k: int, draft: dict[str, Any] | None) -> dict[str, Any]:
    catalog = engine.catalog()
    raw = engine.searcher.search(query, k=3 * k)
    before = [_hit(h, catalog) for h in raw.hits[:k]]
    if draft is None:
        after_res = engine.search(query, k=k)
    else:
        rs = load_rules(engine.home)
        name = draft.get("name") or "draft"
        rules = [r for r in rs.rules if r.name != name]
        rs = validate_rules({"hide_out_of_stock": rs.hide_out_of_stock,
                             "rules": [*(r.model_dump(mode="json") for r in rules), {**draft, "name": name}]})
        rr = Reranker(rules=rs, diversity=0.0, method=engine.settings.rerank_method,
                      lambdas=dict(engine.settings.rerank_diversity))
        after_res = finish(raw, catalog, k=k, context={"surface": "search", "query": query}, reranker=rr,
                           vectors=engine.item_vectors)
    after = [_hit(h, catalog) for h in after_res.hits]
    ids_before = [h["id"] for h in before]
    for i, h in enumerate(after):
        h["was"] = ids_before.index(h["id"]) + 1 if h["id"] in ids_before else None
        h["now"] = i + 1
    return {"query": query, "before": before, "after": after, "rerank": after_res.info.get("rerank")}


@router.get("/preview", summary="A query's results without rules (before) and with the saved rules (after)")
def preview(q: str = Query(..., min_length=1, max_length=500), k: int = Query(10, ge=1, le=100),
            _: Principal = Depends(writer), engine: Any = Depends(get_engine)) -> dict[str, Any]:
    return _preview(engine, q, k, None)


@router.post("/preview", summary="Before/after of a query with a draft rule added to the saved ones")
def preview_draft(body: PreviewIn, _: Principal = Depends(writer), engine: Any = Depends(get_engine)) -> dict[str, Any]:
    return _preview(engine, body.query, body.k, body.rule)
