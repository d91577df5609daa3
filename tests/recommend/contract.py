"""The contract every Recommender honours, run against each model on a tiny matrix
whose right answer is known: two clusters of items, {0, 1, 2} and {3, 4, 5}."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from shopsense.errors import NotFittedError
from shopsense.recommend import Interactions, Recommender

N_ITEMS = 7  # item 6 is never touched


def tiny_data() -> Interactions:
    seqs = []
    for r in range(8):
        seqs.append([0, 1, 2] if r % 2 == 0 else [1, 0, 2])
        seqs.append([3, 4, 5] if r % 2 == 0 else [4, 3, 5])
    seqs += [[0, 1], [3, 4]]  # the two most popular items are 0/1 and 3/4 (ties broken by index)
    return Interactions.from_sequences(seqs, N_ITEMS)


def tiny_vectors() -> np.ndarray:
    v = np.zeros((N_ITEMS, 4), np.float32)
    v[:3, 0] = 1.0
    v[3:6, 1] = 1.0
    v[6, 2] = 1.0
    v += np.random.default_rng(0).normal(0, 0.01, v.shape).astype(np.float32)
    return v


class RecommenderContract:
    """Mix into a test class and define ``make()``; set ``knows_clusters`` when the model
    should put the missing cluster item first."""

    knows_clusters = True
    #: False where the model copies its arrays into another library (torch) on load
    maps_arrays = True

    def make(self) -> Recommender:
        raise NotImplementedError

    def fit(self, model: Recommender, data: Interactions) -> Recommender:
        return model.fit(data)

    @pytest.fixture
    def fitted(self) -> Recommender:
        return self.fit(self.make(), tiny_data())

    def test_fit_returns_self(self) -> None:
        m = self.make()
        assert self.fit(m, tiny_data()) is m

    def test_unfitted_raises(self) -> None:
        with pytest.raises(NotFittedError):
            self.make().recommend([np.array([0])], 2)

    def test_known_answer(self, fitted: Recommender) -> None:
        if not self.knows_clusters:
            pytest.skip("model has no notion of item similarity")
        r = fitted.recommend([np.array([0, 1]), np.array([3, 4])], 1)
        assert r.indices[:, 0].tolist() == [2, 5]

    def test_excludes_history(self, fitted: Recommender) -> None:
        hist = np.array([0, 1, 3])
        r = fitted.recommend([hist], N_ITEMS)
        got = set(r.indices[0][r.indices[0] >= 0].tolist())
        assert not got & set(hist.tolist())
        assert got == set(range(N_ITEMS)) - set(hist.tolist())
        keep = fitted.recommend([hist], N_ITEMS, exclude=False)
        assert set(keep.indices[0][keep.indices[0] >= 0].tolist()) == set(range(N_ITEMS))

    def test_more_than_exist_returns_what_exists(self, fitted: Recommender) -> None:
        r = fitted.recommend([np.array([0])], 100)
        assert r.indices.shape == (1, N_ITEMS)
        valid = r.indices[0][r.indices[0] >= 0]
        assert len(valid) == N_ITEMS - 1 and len(set(valid.tolist())) == len(valid)
        assert (r.indices[0][len(valid):] == -1).all()

    def test_batch_equals_loop_of_singles(self, fitted: Recommender) -> None:
        hs = [np.array([0]), np.array([3, 4]), np.array([5, 0, 1]), np.array([2])]
        batch = fitted.recommend(hs, 4)
        for q, h in enumerate(hs):
            single = fitted.recommend([h], 4)
            np.testing.assert_array_equal(batch.indices[q], single.indices[0])
            np.testing.assert_allclose(batch.scores[q], single.scores[0], rtol=1e-4, atol=1e-5)

    def test_allowed_mask(self, fitted: Recommender) -> None:
        allowed = np.zeros(N_ITEMS, bool)
        allowed[[4, 6]] = True
        r = fitted.recommend([np.array([0])], 5, allowed=allowed)
        assert set(r.indices[0][r.indices[0] >= 0].tolist()) <= {4, 6}

    def test_similar_items_excludes_self(self, fitted: Recommender) -> None:
        r = fitted.similar_items([0, 3], 3)
        assert 0 not in r.indices[0] and 3 not in r.indices[1]
        if self.knows_clusters:
            assert r.indices[0, 0] in (1, 2) and r.indices[1, 0] in (4, 5)

    def test_save_load_round_trip(self, fitted: Recommender, tmp_path) -> None:  # type: ignore[no-untyped-def]
        fitted.save(tmp_path / "m")
        loaded = Recommender.load(tmp_path / "m")
        assert type(loaded) is type(fitted)
        hs = [np.array([0, 1]), np.array([4])]
        a, b = fitted.recommend(hs, 5), loaded.recommend(hs, 5)
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
        assert not list(tmp_path.glob("**/*.pkl"))

    def test_score_items_equals_score(self, fitted: Recommender) -> None:
        """Serving scores candidate lists through score_items: the same numbers as score()."""
        hs = [np.array([0, 1]), np.array([4]), np.array([5, 0, 1]), np.zeros(0, np.int64)]
        items = np.array([6, 2, 0, 5, 3, 3])
        full = fitted.score(hs)
        part = fitted.score_items(hs, items)
        assert part.shape == (len(hs), len(items)) and part.dtype == np.float32
        np.testing.assert_allclose(part, full[:, items], rtol=1e-4, atol=1e-5)
        assert np.isneginf(fitted.score_items(hs, np.array([N_ITEMS, -1]))).all()

    def test_loads_memory_mapped_and_old_layout(self, fitted: Recommender, tmp_path) -> None:  # type: ignore[no-untyped-def]
        """Arrays are saved as .npy and mapped read-only, so N workers share one copy; nothing
        writes into them while serving; a folder in the first layout (arrays.npz) still loads."""
        fitted.save(tmp_path / "m")
        loaded = Recommender.load(tmp_path / "m")
        state = loaded._state()
        if self.maps_arrays:
            mapped = [a for a in state.values() if isinstance(a, np.memmap) or isinstance(a.base, np.memmap)]
            assert mapped and all(not a.flags.writeable for a in mapped)
        hs = [np.array([0, 1]), np.array([4])]
        ref = fitted.recommend(hs, 5)
        for _ in range(2):  # a second call reuses whatever the first one cached
            r = loaded.recommend(hs, 5)
            np.testing.assert_array_equal(r.indices, ref.indices)
            loaded.similar_items([0], 3)
            loaded.because(np.array([0, 1]), np.array([2, 5]))
            loaded.score_items(hs, np.array([2, 5]))
        old = tmp_path / "old"
        old.mkdir()
        np.savez(old / "arrays.npz", **{k: np.asarray(v) for k, v in fitted._state().items()})
        manifest = json.loads((tmp_path / "m" / "manifest.json").read_text())
        manifest.pop("arrays")
        manifest["format_version"] = 1
        (old / "manifest.json").write_text(json.dumps(manifest))
        for extra in (tmp_path / "m").iterdir():  # the ranker's own files (booster, generators)
            if extra.suffix not in (".npy", ".json") or extra.name == "stack.json":
                (shutil.copytree if extra.is_dir() else shutil.copy)(extra, old / extra.name)
        back = Recommender.load(old)
        np.testing.assert_array_equal(back.recommend(hs, 5).indices, ref.indices)
