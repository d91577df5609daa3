"""Rebuild the bundled demo files from ../shared/datasets (run from the repo root):

    python data/demo/build_demo.py

Office: every item and every real interaction (one purchase event per review, derived
monotone timestamps; see shopsense.datasets._amazon). Icecat: a deterministic sample of
2,000 products that have a price, a derived category and attributes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from shopsense.datasets import (
    export_events,
    export_products,
    load_icecat_products,
    load_office_events,
    load_office_products,
)

OUT = Path(__file__).resolve().parent
DESC_CHARS = 500  # what Product.text() gives the encoder; keeps the folder under 3 MB
N_ICECAT = 2000
N_ATTRS = 10


def _cut(text: str, n: int) -> str:
    if len(text) <= n:
        return text
    return text[:n].rsplit(" ", 1)[0] + " …"


def main() -> None:
    office = []
    for p in load_office_products():
        # in_stock: the source has no stock data; every item is listed as available.
        office.append(p.model_copy(update={"description": _cut(p.description, DESC_CHARS), "in_stock": True}))
    for p in office:  # model_copy does not mark fields as set; keep them in the export
        p.model_fields_set.update({"description", "in_stock"})
    n_p = export_products(office, OUT / "office_products.jsonl")
    n_e = export_events(load_office_events("purchase"), OUT / "office_events.parquet",
                        columns=["user_id", "item_id", "type", "timestamp"])

    ice = [p for p in load_icecat_products(max_attributes=N_ATTRS) if p.category and p.price and p.attributes]
    ice.sort(key=lambda p: hashlib.blake2b(p.id.encode(), digest_size=8).hexdigest())
    sample = []
    for p in ice[:N_ICECAT]:
        q = p.model_copy(update={"in_stock": True, "description": _cut(p.description, DESC_CHARS)})
        q.model_fields_set.update({"in_stock", "description"})
        sample.append(q)
    n_i = export_products(sample, OUT / "icecat_products.jsonl")
    total = sum(f.stat().st_size for f in OUT.iterdir() if f.is_file())
    print(f"office products {n_p}, office events {n_e}, icecat products {n_i}; folder {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
