"""The shop's own policies (shipping, returns, warranty, payment...): markdown or text
files dropped into ``<home>/policies``, cut into passages under their headings and
retrieved with the search package's BM25 and the engine's encoder, fused as search
fuses them. The index is saved under the home and rebuilt when a file changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.assist._lexicon import tokens
from shopsense.errors import NotFittedError, ValidationError

__all__ = ["POLICY_SUFFIXES", "Passage", "PolicyIndex", "chunk_policy", "policy_files", "policy_index_for",
           "render_policy_html"]

log = logging.getLogger(__name__)

POLICY_SUFFIXES = (".md", ".markdown", ".txt")
FORMAT = "shopsense.policies/1"
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Passage:
    """One passage of a policy file: its file, the heading it sits under and the text."""

    id: str
    file: str
    heading: str
    anchor: str
    text: str

    @property
    def link(self) -> str:
        return f"/assistant/policies/{self.file}#{self.anchor}"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def chunk_policy(name: str, text: str, max_chars: int = 700) -> list[Passage]:
    """Passages of one file: a passage per heading's section, sections longer than
    ``max_chars`` cut at paragraph ends. A text file without headings is one section
    named after the file."""
    title = Path(name).stem.replace("_", " ").replace("-", " ").strip().capitalize()
    sections: list[tuple[str, list[str]]] = [(title, [])]
    for line in text.splitlines():
        m = _HEADING.match(line)
        if m:
            sections.append((m.group(2).strip(), []))
        else:
            sections[-1][1].append(line)
    out: list[Passage] = []
    anchors: dict[str, int] = {}
    for n, (heading, lines) in enumerate(sections):
        a = slug(heading)
        if n:  # the same numbering as render_policy_html gives the headings
            anchors[a] = anchors.get(a, 0) + 1
        anchor = a if anchors.get(a, 1) == 1 else f"{a}-{anchors[a]}"
        paras = [p.strip() for p in re.split(r"\n\s*\n", "\n".join(lines)) if p.strip()]
        if not paras:
            continue
        chunk: list[str] = []
        for para in paras:
            if chunk and sum(len(c) for c in chunk) + len(para) > max_chars:
                out.append(Passage(f"{name}#{anchor}/{len(out)}", name, heading, anchor, "\n\n".join(chunk)))
                chunk = []
            chunk.append(para)
        if chunk:
            out.append(Passage(f"{name}#{anchor}/{len(out)}", name, heading, anchor, "\n\n".join(chunk)))
    return out


def policy_files(folder: str | Path) -> list[Path]:
    """The policy files in ``folder`` (markdown and text), by name."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in POLICY_SUFFIXES
                  and not p.name.startswith("."))


def _fingerprint(files: Sequence[Path], model: str | None) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(str(model).encode())
    for f in files:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


class PolicyIndex:
    """BM25 over each passage's heading and text, plus encoder cosines, fused as
    ``lexical_weight * bm25 / max + dense_weight * cosine``.

    Parameters
    ----------
    encoder: a :class:`shopsense.text.TextEncoder` (``encode_documents``/``encode_queries``);
        ``None`` for BM25 alone.
    min_cosine: a passage no query word matched needs at least this cosine.
    """

    def __init__(self, encoder: Any = None, lexical_weight: float = 0.6, dense_weight: float = 0.4,
                 min_cosine: float = 0.35) -> None:
        self.encoder = encoder
        self.lexical_weight = lexical_weight
        self.dense_weight = dense_weight
        self.min_cosine = min_cosine
        self.passages_: list[Passage] = []
        self.lexical_: Any = None
        self.vectors_: np.ndarray | None = None

    def fit(self, passages: Sequence[Passage]) -> PolicyIndex:
        from shopsense.search import LexicalIndex

        self.passages_ = list(passages)
        self.lexical_ = None
        self.vectors_ = None
        if not self.passages_:
            return self
        self.lexical_ = LexicalIndex(field_weights={"title": 1.0, "description": 1.0}, k1=1.2, b=0.75).fit(
            {"title": [p.heading for p in self.passages_], "description": [p.text for p in self.passages_]})
        if self.encoder is not None:
            self.vectors_ = np.asarray(self.encoder.encode_documents(
                [f"{p.heading}. {p.text}" for p in self.passages_]), dtype=np.float32)
        return self

    def __len__(self) -> int:
        return len(self.passages_)

    def search(self, query: str, k: int = 3) -> list[tuple[Passage, float]]:
        """The ``k`` best passages for ``query`` with their fused scores; passages that
        neither share a word with the query nor come close in meaning are left out."""
        if not self.passages_:
            return []
        if self.lexical_ is None:
            raise NotFittedError("PolicyIndex is not fitted; call fit() or load().")
        terms = self.lexical_.analyzer.analyze(query)
        lex = self.lexical_.scores(terms).astype(np.float64)
        top = float(lex.max()) if lex.size else 0.0
        fused = self.lexical_weight * (lex / top if top > 0 else lex)
        ok = lex > 0
        if self.vectors_ is not None and self.encoder is not None:
            q = np.asarray(self.encoder.encode_queries([query])[0], dtype=np.float32)
            cos = self.vectors_ @ q
            fused = fused + self.dense_weight * cos
            ok |= cos >= self.min_cosine
        order = [int(i) for i in np.argsort(-fused, kind="stable") if ok[i]][:k]
        return [(self.passages_[i], float(fused[i])) for i in order]

    # -- persistence ---------------------------------------------------------------
    def save(self, path: str | Path, fingerprint: str = "") -> None:
        """A folder: passages.json, vectors.npy and the BM25 index; written to a temp
        folder and renamed into place."""
        path = Path(path)
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / "passages.json").write_text(json.dumps([asdict(p) for p in self.passages_]))
        if self.lexical_ is not None:
            self.lexical_.save(tmp / "lexical")
        if self.vectors_ is not None:
            np.save(tmp / "vectors.npy", self.vectors_)
        (tmp / "manifest.json").write_text(json.dumps({
            "format": FORMAT, "fingerprint": fingerprint, "passages": len(self.passages_),
            "encoder_model": getattr(self.encoder, "model_name", None) if self.vectors_ is not None else None}))
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, path: str | Path, encoder: Any = None) -> PolicyIndex:
        from shopsense.search import LexicalIndex

        path = Path(path)
        manifest = json.loads((path / "manifest.json").read_text())
        if manifest.get("format") != FORMAT:
            raise ValidationError(f"{path} is not a policy index of format {FORMAT}.", field="path")
        self = cls(encoder=encoder)
        self.passages_ = [Passage(**d) for d in json.loads((path / "passages.json").read_text())]
        if (path / "lexical").exists():
            self.lexical_ = LexicalIndex.load(path / "lexical", mmap=False)
        if (path / "vectors.npy").exists() and encoder is not None:
            self.vectors_ = np.load(path / "vectors.npy")
        return self


def policy_index_for(folder: str | Path, index_dir: str | Path, encoder: Any = None) -> PolicyIndex:
    """The index of the policy files in ``folder``: loaded from ``index_dir`` when it was
    built from the same files (and encoder), else built and saved there."""
    files = policy_files(folder)
    model = getattr(encoder, "model_name", None)
    fp = _fingerprint(files, model)
    index_dir = Path(index_dir)
    mf = index_dir / "manifest.json"
    if mf.exists():
        try:
            if json.loads(mf.read_text()).get("fingerprint") == fp:
                return PolicyIndex.load(index_dir, encoder=encoder)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("policy index at %s unreadable (%s); rebuilding", index_dir, exc)
    passages = [p for f in files for p in chunk_policy(f.name, f.read_text(encoding="utf-8", errors="replace"))]
    index = PolicyIndex(encoder=encoder).fit(passages)
    index.save(index_dir, fingerprint=fp)
    log.info("policy index: %d passages from %d files", len(passages), len(files))
    return index


def quote(passage: Passage, query: str, max_chars: int = 320) -> str:
    """The passage's sentences that share the most words with ``query`` (verbatim, in
    order, contiguous), at most ``max_chars``; the first sentences when none does."""
    sents = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", passage.text) if s.strip()]
    if not sents:
        return passage.text[:max_chars]
    want = set(tokens(query))
    scores = [len(want & set(tokens(s))) for s in sents]
    best = max(range(len(sents)), key=lambda i: (scores[i], -i))
    out = sents[best]
    j = best + 1
    while j < len(sents) and len(out) + 1 + len(sents[j]) <= max_chars and (scores[j] > 0 or len(out) < 120):
        out = out + " " + sents[j]
        j += 1
    if len(out) > max_chars:
        out = out[:max_chars].rsplit(" ", 1)[0]
    return out


def render_policy_html(name: str, text: str) -> str:
    """A policy file as a small HTML page whose headings carry the passages' anchors."""
    import html

    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(name)}</title>",
             ("<style>body{font:15px/1.5 system-ui,sans-serif;max-width:760px;margin:24px auto;padding:0 16px;"
             "color:#1d2430}h1,h2,h3{margin-top:1.4em}:target{background:#eef5f1}</style>")]
    anchors: dict[str, int] = {}
    para: list[str] = []

    def flush() -> None:
        if para:
            parts.append("<p>" + html.escape(" ".join(para)) + "</p>")
            para.clear()

    for line in text.splitlines():
        m = _HEADING.match(line)
        if m:
            flush()
            a = slug(m.group(2))
            anchors[a] = anchors.get(a, 0) + 1
            anchor = a if anchors[a] == 1 else f"{a}-{anchors[a]}"
            level = min(len(m.group(1)), 3)
            parts.append(f"<h{level} id='{anchor}'>{html.escape(m.group(2).strip())}</h{level}>")
        elif line.strip():
            para.append(line.strip())
        else:
            flush()
    flush()
    return "\n".join(parts)
