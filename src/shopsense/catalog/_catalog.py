"""The one place where string ids meet dense integer indices."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from shopsense.catalog._models import Product


@dataclass
class Catalog:
    """An immutable snapshot of the products, aligned to dense indices 0..n-1.

    Models see only the arrays here; ``ids[i]`` is the external id of row ``i``.
    """

    products: list[Product]
    ids: list[str] = field(init=False)
    index: dict[str, int] = field(init=False)
    price: np.ndarray = field(init=False)  # float64, NaN when unknown
    in_stock: np.ndarray = field(init=False)  # bool
    rating: np.ndarray = field(init=False)  # float64, NaN when unknown
    created_at: np.ndarray = field(init=False)  # float64 epoch seconds
    brand: np.ndarray = field(init=False)  # object
    category_leaf: np.ndarray = field(init=False)  # object, '' when none
    category_root: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        ps = self.products
        self.ids = [p.id for p in ps]
        self.index = {pid: i for i, pid in enumerate(self.ids)}
        self.price = np.array([np.nan if p.price is None else p.price for p in ps], dtype=np.float64)
        self.in_stock = np.array([p.in_stock for p in ps], dtype=bool)
        self.rating = np.array([np.nan if p.rating is None else p.rating for p in ps], dtype=np.float64)
        self.created_at = np.array([p.created_at.timestamp() for p in ps], dtype=np.float64)
        self.brand = np.array([p.brand for p in ps], dtype=object)
        self.category_leaf = np.array([p.category[-1] if p.category else "" for p in ps], dtype=object)
        self.category_root = np.array([p.category[0] if p.category else "" for p in ps], dtype=object)

    def __len__(self) -> int:
        return len(self.ids)

    def indices(self, ids: Iterable[str], *, skip_unknown: bool = True) -> np.ndarray:
        """Dense indices of ``ids``; unknown ids are dropped (or raise KeyError)."""
        out = []
        for i in ids:
            j = self.index.get(i)
            if j is None:
                if skip_unknown:
                    continue
                raise KeyError(i)
            out.append(j)
        return np.asarray(out, dtype=np.int64)

    def texts(self) -> list[str]:
        return [p.text() for p in self.products]
