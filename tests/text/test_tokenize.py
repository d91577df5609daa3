"""The tokenizers-only tokenizer the ONNX back-ends serve with must give exactly the ids,
masks and type ids transformers' AutoTokenizer gives for the same saved folder: on real
Home Depot queries and product texts (descriptions long enough to be truncated), alone and
as (query, product) pairs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shopsense.text import FastTokenizer, load_tokenizer, resolve_model

DATASETS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


@pytest.fixture(scope="module")
def texts() -> tuple[list[str], list[str]]:
    from shopsense.eval import load_homedepot

    if not (DATASETS / "search" / "homedepot" / "judgments.csv").exists():
        pytest.skip(f"Home Depot data not found under {DATASETS}")
    hd = load_homedepot(DATASETS, max_products=120)
    titles = [p.title for p in hd.products]
    # product titles, and runs of 30 of them: long enough to be truncated at 256 tokens
    docs = titles[:40] + [" ".join(titles[i : i + 30]) for i in range(0, 80, 4)]
    queries = list(hd.queries[:60]) + ["", "  ", "Café crème 3/4\" PVC – ½ inch", "x" * 3000]
    return queries, docs


@pytest.mark.parametrize("max_length", [256, 32])
def test_same_ids_as_transformers(texts: tuple[list[str], list[str]], max_length: int) -> None:
    transformers = pytest.importorskip("transformers")
    folder = Path(resolve_model("all-MiniLM-L6-v2"))
    hf = transformers.AutoTokenizer.from_pretrained(str(folder))
    ours = FastTokenizer(folder, max_length)
    queries, docs = texts
    assert any(len(hf(d)["input_ids"]) > max_length for d in docs)  # truncation is exercised
    for batch in (queries, docs, queries[:1]):
        want = hf(batch, padding=True, truncation=True, max_length=max_length, return_tensors="np")
        got = ours(batch)
        for name in ("input_ids", "attention_mask", "token_type_ids"):
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
            assert got[name].dtype == np.int64
    n = min(len(queries), len(docs))
    want = hf(queries[:n], docs[-n:], padding=True, truncation=True, max_length=max_length, return_tensors="np")
    got = ours(queries[:n], docs[-n:])
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert ours.get_vocab() == hf.get_vocab()


def test_loading_it_imports_neither_transformers_nor_torch() -> None:
    folder = resolve_model("all-MiniLM-L6-v2")
    code = ("import sys; from shopsense.text import load_tokenizer; "
            f"t = load_tokenizer({folder!r}, 256); t(['cordless drill']); "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_folder_without_tokenizer_json_falls_back(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    folder = Path(resolve_model("all-MiniLM-L6-v2"))
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (tmp_path / name).write_bytes((folder / name).read_bytes())
    tok = load_tokenizer(tmp_path, 16)
    assert not isinstance(tok, FastTokenizer)
    got = tok(["cordless drill"], ["DEWALT 20-Volt Max Lithium-Ion Cordless Drill with a long name"])
    want = FastTokenizer(folder, 16)(["cordless drill"], ["DEWALT 20-Volt Max Lithium-Ion Cordless Drill with a long name"])
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(got[name], want[name])
