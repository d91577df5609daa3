"""Field-weighted BM25 over the catalogue, built with bm25s.

bm25s has no fields, so each field gets its own bm25s index and a query's score is
the weighted sum of the per-field scores (a simple BM25F variant: each field keeps
its own length normalisation, which suits short titles next to long descriptions).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.errors import NotFittedError, require
from shopsense.search._analysis import Analyzer

__all__ = ["DEFAULT_FIELD_WEIGHTS", "LexicalIndex", "import_bm25s", "product_fields"]

log = logging.getLogger(__name__)

#: relative importance of each product field (titles name the product; descriptions
#: mention many things the product is not)
DEFAULT_FIELD_WEIGHTS: dict[str, float] = {
    "title": 1.0, "brand": 0.6, "category": 0.5, "attributes": 0.4, "description": 0.25,
}


def product_fields(products: Sequence[Any]) -> dict[str, list[str]]:
    """The searchable text of each product, by field."""
    return {
        "title": [p.title for p in products],
        "brand": [p.brand for p in products],
        "category": [" ".join(p.category) for p in products],
        "attributes": [" ".join(f"{v}" for v in p.attributes.values()) for p in products],
        "description": [p.description for p in products],
    }



def import_bm25s() -> Any:
    """bm25s, with its logger left to the application: bm25s sets it to DEBUG on import,
    which printed "Building index from tokens" in every command line run."""
    mod = require("bm25s", "search")
    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return mod

class LexicalIndex:
    """BM25 with per-field weights, stemming and stop words.

    Parameters
    ----------
    field_weights: weight per field; fields empty for every product are skipped.
    k1, b: BM25 parameters (Lucene variant).
    """

    def __init__(self, field_weights: dict[str, float] | None = None, k1: float = 1.2, b: float = 0.75,
                 analyzer: Analyzer | None = None) -> None:
        self.field_weights = dict(field_weights or DEFAULT_FIELD_WEIGHTS)
        self.k1 = k1
        self.b = b
        self.analyzer = analyzer or Analyzer()
        self.fields_: dict[str, Any] = {}
        self.n_docs_: int = 0
        self.doc_freq_: dict[str, int] = {}

    def fit(self, fields: dict[str, list[str]], progress: bool = False) -> LexicalIndex:
        bm25s = import_bm25s()
        self.fields_ = {}
        self.doc_freq_ = {}
        n = None
        for name, texts in fields.items():
            if self.field_weights.get(name, 0.0) <= 0 or not any(t.strip() for t in texts):
                continue
            n = len(texts)
            toks = [self.analyzer.analyze(t) for t in texts]
            if name == "title":
                for ts in toks:
                    for t in set(ts):
                        self.doc_freq_[t] = self.doc_freq_.get(t, 0) + 1
            r = bm25s.BM25(k1=self.k1, b=self.b)
            r.index(toks, show_progress=progress)
            self.fields_[name] = r
        self.n_docs_ = int(n or 0)
        return self

    def _check(self) -> None:
        if not self.fields_:
            raise NotFittedError("LexicalIndex is not fitted; call fit() or load().")

    def scores(self, terms: Sequence[str], weights: dict[str, float] | None = None) -> np.ndarray:
        """(n_docs,) float32 field-weighted BM25 scores of analysed query ``terms``."""
        self._check()
        w = weights or self.field_weights
        out = np.zeros(self.n_docs_, dtype=np.float32)
        if not terms:
            return out
        for name, r in self.fields_.items():
            fw = w.get(name, 0.0)
            if fw > 0:
                out += fw * r.get_scores(list(terms)).astype(np.float32, copy=False)
        return out

    def vocabulary(self) -> set[str]:
        self._check()
        vocab: set[str] = set()
        for r in self.fields_.values():
            vocab.update(t for t in r.vocab_dict if t)
        return vocab

    # -- persistence -----------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        self._check()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        for name, r in self.fields_.items():
            r.save(path / name, show_progress=False)
        (path / "lexical.json").write_text(json.dumps({
            "format": "shopsense.lexical/1", "fields": list(self.fields_), "field_weights": self.field_weights,
            "k1": self.k1, "b": self.b, "n_docs": self.n_docs_, "stem": self.analyzer.stem,
            "language": self.analyzer.language,
        }))
        np.savez(path / "doc_freq.npz", terms=np.array(list(self.doc_freq_), dtype=str),
                 counts=np.array(list(self.doc_freq_.values()), dtype=np.int64))

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> LexicalIndex:
        bm25s = import_bm25s()
        path = Path(path)
        meta = json.loads((path / "lexical.json").read_text())
        self = cls(meta["field_weights"], k1=meta["k1"], b=meta["b"],
                   analyzer=Analyzer(meta["language"], stem=meta["stem"]))
        for name in meta["fields"]:
            r = bm25s.BM25.load(path / name, mmap=mmap, show_progress=False)
            # plain ndarray views of the maps (the same shared pages): np.memmap wraps every slice
            # bm25s takes per query in a memmap, ~7% of a served search's CPU (py-spy, Home Depot)
            r.scores = {k: v.view(np.ndarray) if isinstance(v, np.memmap) else v for k, v in r.scores.items()}
            self.fields_[name] = r
        self.n_docs_ = int(meta["n_docs"])
        df = np.load(path / "doc_freq.npz", allow_pickle=False)
        self.doc_freq_ = dict(zip(df["terms"].tolist(), df["counts"].tolist()))
        return self
