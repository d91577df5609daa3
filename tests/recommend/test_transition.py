"""The item-transition generator (issue 21): counts on hand-made sequences whose right
answer is known, so a wrong direction, window, decay or a pair across two users fails."""

from __future__ import annotations

import numpy as np
import pytest

from shopsense.errors import ValidationError
from shopsense.recommend import Interactions, Recommender, Transition, tune_transition
from tests.recommend.contract import RecommenderContract

POP = 1e-6  # the popularity term never reaches this


class TestTransitionContract(RecommenderContract):
    def make(self) -> Recommender:
        return Transition(window=1, last=2, recency=0.5)


def probs(model: Transition, item: int) -> np.ndarray:
    """Transition part of a one-item history's scores (the popularity term taken off)."""
    s = model.score([np.array([item])])[0] - model.pop_
    return np.round(s.astype(np.float64), 5)


def test_direction_is_from_earlier_to_later() -> None:
    data = Interactions.from_sequences([[0, 1], [0, 1], [2, 0]], n_items=4)
    m = Transition(window=1).fit(data)
    assert probs(m, 0).tolist() == [0.0, 1.0, 0.0, 0.0]  # 0 -> 1 twice; 2 -> 0 is not 0 -> 2
    assert probs(m, 1).tolist() == [0.0, 0.0, 0.0, 0.0]  # nothing ever came after 1
    assert probs(m, 2).tolist() == [1.0, 0.0, 0.0, 0.0]
    assert m.recommend([np.array([0])], 1).indices[0, 0] == 1


def test_backward_adds_the_reverse_order_only_when_asked() -> None:
    data = Interactions.from_sequences([[0, 1], [0, 1], [2, 0]], n_items=4)
    m = Transition(window=1, backward=0.5).fit(data)
    # after 0: forward 0->1 (2) plus half of 2->0 reversed (0.5); after 1: half of 0->1 reversed
    assert probs(m, 0).tolist() == [0.0, 0.8, 0.2, 0.0]
    assert probs(m, 1).tolist() == [1.0, 0.0, 0.0, 0.0]


def test_window_and_decay() -> None:
    data = Interactions.from_sequences([[0, 1, 2, 3]], n_items=5)
    one = Transition(window=1).fit(data)
    assert probs(one, 0).tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    two = Transition(window=2, decay=0.5).fit(data)
    # 0 -> 1 one step (1.0), 0 -> 2 two steps (0.5): normalised 2/3, 1/3; 0 -> 3 is 3 steps away
    np.testing.assert_allclose(probs(two, 0), [0.0, 2 / 3, 1 / 3, 0.0, 0.0], atol=1e-5)
    three = Transition(window=3, decay=1.0).fit(data)
    np.testing.assert_allclose(probs(three, 0), [0.0, 1 / 3, 1 / 3, 1 / 3, 0.0], atol=1e-5)


def test_pairs_never_cross_two_users_even_when_their_events_interleave() -> None:
    # user 0: 0 at t=0, 1 at t=2; user 1: 2 at t=1, 3 at t=3. In global time order the events
    # read 0, 2, 1, 3: a model that forgot the user would count 0->2, 2->1 and 1->3.
    data = Interactions.from_arrays([0, 1, 0, 1], [0, 2, 1, 3], n_items=4, timestamp=np.array([0, 1, 2, 3.0]))
    m = Transition(window=1).fit(data)
    assert probs(m, 0).tolist() == [0.0, 1.0, 0.0, 0.0]
    assert probs(m, 2).tolist() == [0.0, 0.0, 0.0, 1.0]
    assert probs(m, 1).tolist() == [0.0, 0.0, 0.0, 0.0]
    # and a user's own order is time, not the order the arrays came in
    late_first = Interactions.from_arrays([0, 0], [1, 0], n_items=2, timestamp=np.array([5.0, 1.0]))
    assert probs(Transition().fit(late_first), 0).tolist() == [0.0, 1.0]


def test_repeats_are_no_transition_and_history_is_excluded() -> None:
    data = Interactions.from_sequences([[0, 0, 1], [1, 0], [1, 0], [1, 0], [1, 2]], n_items=3)
    m = Transition(window=1, last=1).fit(data)
    assert probs(m, 0).tolist() == [0.0, 1.0, 0.0]  # 0 -> 0 is a repeat, not a transition
    # after 1 comes 0 (3 times) before 2 (once), but 0 is in the history: 2 is recommended
    r = m.recommend([np.array([0, 1])], 2)
    assert r.indices[0].tolist() == [2, -1]
    assert m.recommend([np.array([0, 1])], 1, exclude=False).indices[0, 0] == 0


def test_last_items_and_recency() -> None:
    data = Interactions.from_sequences([[0, 2], [1, 3], [1, 3]], n_items=4)
    # history ... 0, 1: the newest item (1) leads to 3, the one before (0) to 2
    newest = Transition(last=1).fit(data)
    assert newest.recommend([np.array([0, 1])], 1).indices[0, 0] == 3
    assert probs(newest, 1)[2] == 0.0
    both = Transition(last=2, recency=0.5).fit(data)
    s = both.score([np.array([0, 1])])[0] - both.pop_
    np.testing.assert_allclose(s[[2, 3]], [0.5, 1.0], atol=1e-6)
    # items no recent item ever led to are ordered by popularity, below any transition
    assert s.max() <= 1.0 + POP and both.score([np.array([3])])[0].max() <= POP


def test_because_names_the_item_it_came_after() -> None:
    data = Interactions.from_sequences([[0, 2], [1, 3], [1, 3]], n_items=5)
    m = Transition(last=2, recency=0.5).fit(data)
    assert m.because(np.array([0, 1]), np.array([3, 2, 4])).tolist() == [1, 0, -1]
    assert m.because(np.zeros(0, np.int64), np.array([3])).tolist() == [-1]
    assert m.because(np.array([0, 1]), np.array([99])).tolist() == [-1]


def test_save_load_round_trip_memory_mapped(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = Interactions.from_sequences([[0, 1, 2, 3], [3, 1, 0], [2, 3, 1]], n_items=5)
    m = Transition(window=2, decay=0.7, backward=0.3, last=2, recency=0.4).fit(data)
    m.save(tmp_path / "t")
    back = Recommender.load(tmp_path / "t")
    assert isinstance(back, Transition) and back.params() == m.params()
    for a in (back.P_.data, back.P_.indices, back.P_.indptr):  # the file's pages, not a copy
        x = a
        while x is not None and not isinstance(x, np.memmap):
            x = getattr(x, "base", None)
        assert x is not None and not a.flags.writeable
    hs = [np.array([0]), np.array([3, 1]), np.array([2, 3, 4])]
    np.testing.assert_array_equal(back.score(hs), m.score(hs))
    np.testing.assert_array_equal(back.because(np.array([3, 1]), np.arange(5)), m.because(np.array([3, 1]), np.arange(5)))
    assert not list(tmp_path.glob("**/*.pkl"))


def test_bounds_read_the_standard_way() -> None:
    with pytest.raises(ValidationError, match="The 'window' parameter of Transition must be an int >= 1"):
        Transition(window=0)
    with pytest.raises(ValidationError, match="'decay'"):
        Transition(decay=0.0)


def test_tuning_finds_the_window_the_data_has() -> None:
    """Every anchor ``a`` is followed, two steps later, by its partner ``b``, with random noise
    between: only a window of 2 or more can learn it."""
    rng = np.random.default_rng(0)
    n_pairs, noise0 = 20, 40
    n_items = noise0 + 30
    train, val_hist, val_tgt = [], [], []
    for u in range(400):
        a = int(rng.integers(n_pairs))
        s = [int(rng.integers(noise0, n_items)), a, int(rng.integers(noise0, n_items)), n_pairs + a]
        if u % 4 == 0:  # validation users: the partner is the held-out next item
            val_hist.append(np.array(s[:3])); val_tgt.append(s[3])
            s = s[:3]
        train.append(s)
    data = Interactions.from_sequences(train, n_items)
    best, table = tune_transition(data, val_hist, np.array(val_tgt),
                                  grid={"window": (1, 2), "backward": (0.0,), "last": (1, 2)})
    assert best["window"] == 2 and best["last"] == 2
    assert len(table) == 1 * 1 * 3 + 2 * 1 * 3  # window 1 tries one decay only
    one = max(r["ndcg@10"] for r in table if r["window"] == 1)
    assert max(r["ndcg@10"] for r in table) > one + 0.3
    with pytest.raises(ValidationError, match="Unknown Transition grid keys"):
        tune_transition(data, val_hist, np.array(val_tgt), grid={"alpha": (1,)})


def test_the_runner_chooses_on_validation_never_on_the_test_item() -> None:
    """The same run with every test item changed chooses the same hyperparameters."""
    from shopsense.eval import run_recommend

    rng = np.random.default_rng(1)
    seqs = [rng.integers(0, 30, size=int(rng.integers(3, 8))) for _ in range(200)]
    other = [np.concatenate([s[:-1], [(s[-1] + 7) % 30]]) for s in seqs]
    grid_runs = [run_recommend(x, 30, systems=["transition"], latency_calls=0).info for x in (seqs, other)]
    assert grid_runs[0]["transition_params"] == grid_runs[1]["transition_params"]
    assert grid_runs[0]["transition_validation"] == grid_runs[1]["transition_validation"]


@pytest.mark.parametrize("params", [{"window": 1, "last": 1}, {"window": 3, "decay": 0.5, "backward": 0.5, "last": 3}])
def test_sparse_target_ranks_equal_the_full_ranking(params) -> None:  # type: ignore[no-untyped-def]
    """Tuning reads the target's place from the sparse rows; it must be the place in recommend()'s
    list: ties on popularity, targets no item leads to, targets in the history, repeats."""
    rng = np.random.default_rng(3)
    n = 40
    seqs = [rng.integers(0, n - 5, size=int(rng.integers(2, 9))) for _ in range(120)]  # 5 items never seen
    m = Transition(**params).fit(Interactions.from_sequences(seqs, n))
    hs = [rng.integers(0, n, size=int(rng.integers(0, 6))) for _ in range(300)]
    tg = rng.integers(0, n, size=300)
    tg[:20] = [h[0] if len(h) else 0 for h in hs[:20]]  # some targets sit in their history
    full = m.recommend(hs, n)
    want = np.array([int(np.flatnonzero(full.indices[q] == t)[0]) if (full.indices[q] == t).any() else n
                     for q, t in enumerate(tg)])
    np.testing.assert_array_equal(m.target_ranks(hs, tg), want)
