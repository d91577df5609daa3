"""A saved Hugging Face fast tokenizer read with the ``tokenizers`` library alone.

The ONNX back-ends (the query encoder, the search cross-encoder) need only the tokenizer
at serving time. ``transformers.AutoTokenizer`` loads the same ``tokenizer.json`` but
imports transformers and PyTorch to do it: measured in a worker forked by ``shopsense
serve`` on the Home Depot home, that import alone made 95 MB of heap, 67 MB of anonymous
memory and 67 MB of library pages private to each worker (230 MB of its 300). Here the
Rust tokenizer is configured as transformers configures it for ``tokenizer(texts,
padding=True, truncation=True, max_length=n)``: truncation "longest_first" on the right,
padding to the longest text of the batch with the config's pad token, special tokens
added; the ids are identical (tests/text/test_tokenize.py compares them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shopsense.errors import require

__all__ = ["FastTokenizer", "load_tokenizer"]


class FastTokenizer:
    """``folder/tokenizer.json`` (+ ``tokenizer_config.json`` for the pad token) as a
    callable returning int64 arrays ``input_ids``, ``attention_mask``, ``token_type_ids``."""

    def __init__(self, folder: str | Path, max_length: int) -> None:
        tokenizers = require("tokenizers", "embed")
        folder = Path(folder)
        cfg_path = folder / "tokenizer_config.json"
        cfg = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
        tok = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        pad = cfg.get("pad_token") or "[PAD]"
        if isinstance(pad, dict):  # older configs store an AddedToken
            pad = pad.get("content", "[PAD]")
        pad_id = tok.token_to_id(pad)
        if pad_id is None:
            raise ValueError(f"the tokenizer in {str(folder)!r} has no pad token {pad!r}")
        self.max_length = int(max_length)  # as given, as transformers takes an explicit max_length
        tok.enable_truncation(self.max_length, strategy="longest_first", direction="right")
        tok.enable_padding(direction="right", pad_id=pad_id, pad_type_id=int(cfg.get("pad_token_type_id", 0)),
                           pad_token=pad)
        self._tok = tok

    def __call__(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The batch's arrays, padded to its longest (text, pair) after truncation."""
        inputs: list[Any] = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
        enc = self._tok.encode_batch(inputs, add_special_tokens=True)
        return {
            "input_ids": np.array([e.ids for e in enc], dtype=np.int64).reshape(len(enc), -1),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64).reshape(len(enc), -1),
            "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64).reshape(len(enc), -1),
        }

    def get_vocab(self) -> dict[str, int]:
        return dict(self._tok.get_vocab(with_added_tokens=True))


def load_tokenizer(folder: str | Path, max_length: int) -> Any:
    """:class:`FastTokenizer` where ``folder`` has a ``tokenizer.json``; else (a slow
    tokenizer saved as ``vocab.txt`` only) transformers' own, wrapped to the same call."""
    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        return FastTokenizer(folder, max_length)
    require("transformers", "embed")
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(folder))

    class _Wrapped:
        def __call__(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
            args = (list(texts),) if pairs is None else (list(texts), list(pairs))
            enc = hf(*args, padding=True, truncation=True, max_length=max_length, return_tensors="np")
            out = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
            out.setdefault("token_type_ids", np.zeros_like(out["input_ids"]))
            return out

        def get_vocab(self) -> dict[str, int]:
            return dict(hf.get_vocab())

    return _Wrapped()
