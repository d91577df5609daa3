"""SASRec (Kang & McAuley 2018) trained with softmax cross-entropy.

The cross-entropy recipe (every item is a negative, as in "Turning Dross Into Gold
Loss", Klenitskiy & Vasilev 2023) is the one that reproduces well; the original
sampled binary loss underperforms it. ``negatives=N`` trains with sampled softmax
instead, the loss of eSASRec (Tikhonovich et al., RecSys 2025): the target against N
items drawn uniformly for each batch. On a CPU the full softmax's logits over every item
are most of an epoch's cost (Sports: 18,357 items), so the sampled loss is what lets
the model train until validation stops improving rather than for a few epochs.
Written with plain ``torch.nn`` layers because the model is small and the published
code is not a package.

Sequences are right-padded so that, under the causal mask, a real position never
attends to padding; positions are counted back from the newest item, so the
position of "the last thing the shopper touched" is always embedding 0.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from shopsense.errors import require
from shopsense.recommend._base import Interactions, Recommender

log = logging.getLogger(__name__)


def _build(n_items: int, hidden: int, layers: int, heads: int, max_len: int, dropout: float) -> Any:
    torch = require("torch", "embed")
    nn = torch.nn

    class _Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item = nn.Embedding(n_items + 1, hidden, padding_idx=0)
            self.pos = nn.Embedding(max_len, hidden)
            self.drop = nn.Dropout(dropout)
            layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=hidden * 2, dropout=dropout,
                                               batch_first=True, norm_first=True, activation="gelu")
            self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(hidden)
            nn.init.normal_(self.item.weight, std=0.02)
            with torch.no_grad():
                self.item.weight[0].zero_()

        def forward(self, seq: Any, lens: Any) -> Any:
            _, length = seq.shape
            ar = torch.arange(length, device=seq.device)
            pos = (lens[:, None] - 1 - ar[None, :]).clamp(min=0)
            x = self.item(seq) * (self.item.embedding_dim ** 0.5) + self.pos(pos)
            x = self.drop(x)
            causal = torch.triu(torch.full((length, length), float("-inf"), device=seq.device), diagonal=1)
            return self.norm(self.enc(x, mask=causal, is_causal=True))

        def logits(self, h: Any) -> Any:
            return h @ self.item.weight[1:].T

    return _Net()


def _sampled_softmax(net: Any, h: Any, target: Any, n: int, n_items: int, torch: Any) -> Any:
    """Cross-entropy of each position's target (ids + 1) against ``n`` items drawn uniformly
    for the batch; a draw that is the position's own target is masked out (uniform draws
    need no log-probability correction: every item's is the same)."""
    neg = torch.randint(1, n_items + 1, (n,))
    w = net.item.weight
    pos = (h * w[target]).sum(-1, keepdim=True)
    other = (h @ w[neg].T).masked_fill(neg[None, :] == target[:, None], float("-inf"))
    logits = torch.cat([pos, other], dim=1)
    return torch.nn.functional.cross_entropy(logits, torch.zeros(len(h), dtype=torch.long))


class SASRec(Recommender):
    """Self-attentive sequential recommender; ``score`` reads each history in order.

    Parameters bound the CPU cost: ``epochs`` and ``max_seconds`` cap training,
    ``patience`` stops early when validation NDCG@10 (when given) stops improving
    (``patience`` evaluations without a better one). ``negatives``: 0 for the full
    softmax, else sampled softmax with that many uniform negatives per batch.
    """

    name = "sasrec"
    source = "sequential"

    def __init__(self, hidden: int = 64, layers: int = 2, heads: int = 2, max_len: int = 50,
                 dropout: float = 0.3, lr: float = 1e-3, weight_decay: float = 0.0, batch_size: int = 128,
                 epochs: int = 100, max_seconds: float | None = None, patience: int = 3, eval_every: int = 2,
                 num_threads: int = 2, seed: int = 0, text_init: bool = False, negatives: int = 0) -> None:
        self.hidden = hidden
        self.layers = layers
        self.heads = heads
        self.max_len = max_len
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.max_seconds = max_seconds
        self.patience = patience
        self.eval_every = eval_every
        self.num_threads = num_threads
        self.seed = seed
        self.text_init = text_init
        self.negatives = negatives

    # -- batching ---------------------------------------------------------------------
    def _pad(self, seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Right-padded (n, L) array of item ids + 1 (0 = pad) and lengths."""
        seqs = [np.asarray(s, np.int64)[-self.max_len:] for s in seqs]
        lens = np.array([max(len(s), 1) for s in seqs], np.int64)
        out = np.zeros((len(seqs), int(lens.max()) if len(seqs) else 1), np.int64)
        for r, s in enumerate(seqs):
            s = s[(s >= 0) & (s < self.n_items_)]
            out[r, : len(s)] = s + 1
        return out, lens

    def fit(self, data: Interactions, *, validation: tuple[Sequence[np.ndarray], np.ndarray] | None = None,
            item_vectors: np.ndarray | None = None,
            progress: Callable[[int, dict[str, float]], None] | None = None) -> SASRec:
        torch = require("torch", "embed")
        torch.set_num_threads(self.num_threads)
        torch.manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        self.n_items_ = data.n_items
        net = _build(data.n_items, self.hidden, self.layers, self.heads, self.max_len, self.dropout)
        if self.text_init and item_vectors is not None:
            _init_from_text(net, np.asarray(item_vectors[: data.n_items], np.float32), torch)
        self._net = net
        seqs = [s[-(self.max_len + 1):] for s in data.sequences() if len(s) >= 2]
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        start = time.perf_counter()
        best, best_state, bad, self.history_ = -1.0, None, 0, []
        lengths = np.array([len(s) for s in seqs])
        for epoch in range(1, self.epochs + 1):
            net.train()
            # buckets of similar length keep padding (and wasted compute) small
            order = rng.permutation(len(seqs))
            chunks = [order[i:i + self.batch_size * 50] for i in range(0, len(order), self.batch_size * 50)]
            batches = []
            for c in chunks:
                c = c[np.argsort(lengths[c], kind="stable")]
                batches += [c[i:i + self.batch_size] for i in range(0, len(c), self.batch_size)]
            rng.shuffle(batches)
            total, count = 0.0, 0
            for bidx in batches:
                padded, lens = self._pad([seqs[i] for i in bidx])
                inp = torch.from_numpy(padded[:, :-1])
                tgt = torch.from_numpy(padded[:, 1:])
                ln = torch.from_numpy(lens - 1)
                h = net(inp, ln)
                keep = tgt > 0
                if self.negatives:
                    loss = _sampled_softmax(net, h[keep], tgt[keep], self.negatives, data.n_items, torch)
                else:
                    loss = torch.nn.functional.cross_entropy(net.logits(h[keep]), tgt[keep] - 1)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * int(keep.sum())
                count += int(keep.sum())
            info = {"epoch": epoch, "loss": total / max(count, 1), "seconds": time.perf_counter() - start}
            stop_time = self.max_seconds is not None and info["seconds"] > self.max_seconds
            if validation is not None and (epoch % self.eval_every == 0 or stop_time or epoch == self.epochs):
                info["val_ndcg@10"] = self._validate(validation)
                if info["val_ndcg@10"] > best:
                    best, best_state, bad = info["val_ndcg@10"], copy.deepcopy(net.state_dict()), 0
                else:
                    bad += 1
            self.history_.append(info)
            log.info("sasrec %s", info)
            if progress is not None:
                progress(epoch, info)
            if stop_time or bad >= self.patience:
                self.stopped_ = "time budget" if stop_time and bad < self.patience else "validation stopped improving"
                break
        else:
            self.stopped_ = "epochs"
        if best_state is not None:
            net.load_state_dict(best_state)
        net.eval()
        self.train_seconds_ = time.perf_counter() - start
        return self

    def _validate(self, validation: tuple[Sequence[np.ndarray], np.ndarray], n_max: int = 3000) -> float:
        from shopsense.metrics import loo_metrics

        hist, targets = validation
        idx = np.arange(len(hist))[:n_max]
        r = self.recommend([hist[i] for i in idx], 10)
        return float(loo_metrics(r.indices, np.asarray(targets)[idx], 10)["ndcg@10"].mean())

    def score(self, histories: Sequence[np.ndarray], weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        self._check_fitted()
        return self._scores(histories, None)

    def score_items(self, histories: Sequence[np.ndarray], items: np.ndarray,
                    weights: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """The sequence's last hidden state against the candidates' embeddings only."""
        self._check_fitted()
        items, ok, cols = self._known(items)
        out = self._scores(histories, cols)
        out[:, ~ok] = -np.inf
        return out

    def _scores(self, histories: Sequence[np.ndarray], items: np.ndarray | None) -> np.ndarray:
        torch = require("torch", "embed")
        torch.set_num_threads(self.num_threads)
        net = self._net
        was_training = net.training
        net.eval()
        out = np.zeros((len(histories), self.n_items_ if items is None else len(items)), np.float32)
        with torch.inference_mode():
            emb = None if items is None else net.item.weight[torch.from_numpy(items + 1)]
            for s in range(0, len(histories), 512):
                padded, lens = self._pad(histories[s:s + 512])
                h = net(torch.from_numpy(padded), torch.from_numpy(lens))
                last = h[torch.arange(len(lens)), torch.from_numpy(lens - 1)]
                sc = (net.logits(last) if emb is None else last @ emb.T).numpy()
                empty = np.array([len(x) == 0 for x in histories[s:s + 512]])
                sc[empty] = 0.0  # no sequence, no opinion
                out[s:s + 512] = sc
        net.train(was_training)
        return out

    def similar_items(self, items: Sequence[int] | np.ndarray, k: int = 10, *, allowed: np.ndarray | None = None):  # type: ignore[no-untyped-def]
        # "what comes next after this item" is the sequential meaning of similar
        return self.recommend([np.array([int(i)]) for i in items], k, allowed=allowed)

    def _state(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self._net.state_dict().items()}

    def _set_state(self, arrays: dict[str, np.ndarray]) -> None:
        torch = require("torch", "embed")
        net = _build(self.n_items_, self.hidden, self.layers, self.heads, self.max_len, self.dropout)
        net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()})
        net.eval()
        self._net = net


def _init_from_text(net: Any, vectors: np.ndarray, torch: Any) -> None:
    """Initialise item embeddings with the top principal components of the text vectors,
    scaled to the default init, so items with similar text start close."""
    d = net.item.embedding_dim
    v = vectors - vectors.mean(0, keepdims=True)
    u, s, _ = np.linalg.svd(v, full_matrices=False)
    proj = u[:, :d] * s[:d]
    if proj.shape[1] < d:
        proj = np.pad(proj, ((0, 0), (0, d - proj.shape[1])))
    proj = proj / (proj.std() + 1e-9) * 0.02
    with torch.no_grad():
        net.item.weight[1:] = torch.from_numpy(proj.astype(np.float32))


__all__ = ["SASRec"]
