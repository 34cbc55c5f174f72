"""Replay memories: ring buffer order and checkpoints, sum tree search, prioritized sampling and weights."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mpirl.replay import PrioritizedReplay, ReplayBuffer, SumTree

SPEC = {"obs": ((3,), np.float32), "action": ((), np.int64), "reward": ((), np.float32)}


def make_batch(start: int, n: int) -> dict:
    """n transitions whose content encodes their global insertion number g = start..start+n-1."""
    g = np.arange(start, start + n)
    return {"obs": np.stack([g, g + 0.5, -g], axis=1).astype(np.float32),
            "action": g.astype(np.int64), "reward": (g * 0.25).astype(np.float32)}


def reference_find(leaves: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Slow prefix-sum search; values at or past the total go to the last positive leaf."""
    out = np.searchsorted(np.cumsum(leaves), values, side="right")
    return np.minimum(out, np.flatnonzero(leaves > 0)[-1])


def chi2_bound_999(df: int) -> float:
    """99.9% quantile of chi-square(df) by the Wilson-Hilferty normal approximation."""
    z = 3.0902
    return df * (1 - 2 / (9 * df) + z * np.sqrt(2 / (9 * df))) ** 3


# -- ring buffer -------------------------------------------------------------

def test_ring_buffer_wraps_in_odd_batches_and_keeps_the_newest():
    cap = 10
    buf = ReplayBuffer(cap, SPEC)
    g = 0
    for n in (3, 7, 5, 1, 0, 11, 13, 9, 2):
        rows = buf.add(make_batch(g, n))
        kept = np.arange(g + n - min(n, cap), g + n)  # a batch longer than the ring keeps its tail
        np.testing.assert_array_equal(rows, kept % cap)
        g += n
        assert len(buf) == min(g, cap)
        assert buf.insert_pos == g % cap
        live = np.arange(max(0, g - cap), g)  # the newest min(g, cap) transitions, row = g % cap
        data = buf.get(live % cap)
        np.testing.assert_array_equal(data["action"], live)
        np.testing.assert_array_equal(data["obs"], make_batch(live[0], live.size)["obs"])
        np.testing.assert_array_equal(data["reward"], (live * 0.25).astype(np.float32))


def test_sizes_and_validation():
    buf = ReplayBuffer(1000, {"obs": ((4,), np.float32), "action": ((), np.int64)})
    assert buf.capacity == 1000
    assert buf.bytes_per_transition == 4 * 4 + 8
    assert buf.nbytes == 1000 * 24
    with pytest.raises(KeyError):
        buf.add({"obs": np.zeros((2, 4))})
    with pytest.raises(ValueError):
        buf.add({"obs": np.zeros((2, 5)), "action": np.zeros(2)})
    with pytest.raises(ValueError):
        buf.add({"obs": np.zeros((2, 4)), "action": np.zeros(3)})
    with pytest.raises(ValueError):
        buf.sample(4, np.random.default_rng(0))  # empty


def test_uniform_sample_only_returns_filled_rows_and_covers_them():
    buf = ReplayBuffer(100, SPEC)
    buf.add(make_batch(0, 7))
    idx, data = buf.sample(5000, np.random.default_rng(1))
    assert idx.min() >= 0 and idx.max() < 7
    assert set(idx.tolist()) == set(range(7))
    np.testing.assert_array_equal(data["action"], idx)  # data rows match the indices returned


@pytest.mark.parametrize("first", [4, 10, 23])  # partial, exactly full, wrapped
@pytest.mark.parametrize("whole", [False, True])
def test_state_dict_round_trip_continues_at_the_same_position(first, whole):
    a = ReplayBuffer(10, SPEC)
    a.add(make_batch(0, first))
    state = a.state_dict()
    assert int(state["size"]) == min(first, 10) and int(state["insert_pos"]) == first % 10
    assert state["size"].dtype == np.int64 and state["size"].shape == ()
    if whole:  # whole arrays are accepted too
        state = dict(state, **{f"data/{k}": v for k, v in a.storage.items()})
    b = ReplayBuffer(10, SPEC)
    b.add(make_batch(100, 3))  # stale content must not survive the load
    b.load_state_dict(state)
    assert len(b) == len(a) and b.insert_pos == a.insert_pos
    np.testing.assert_array_equal(a.add(make_batch(first, 6)), b.add(make_batch(first, 6)))
    for k in SPEC:
        np.testing.assert_array_equal(a.storage[k], b.storage[k])
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(a.sample(8, rng_a)[1]["obs"], b.sample(8, rng_b)[1]["obs"])


def test_load_state_dict_rejects_a_mismatched_state():
    a = ReplayBuffer(10, SPEC)
    a.add(make_batch(0, 4))
    with pytest.raises(ValueError):
        ReplayBuffer(3, SPEC).load_state_dict(a.state_dict())
    with pytest.raises(KeyError):
        ReplayBuffer(10, {"obs": ((3,), np.float32)}).load_state_dict(a.state_dict())


# -- sum tree ----------------------------------------------------------------

def assert_tree_consistent(tree: SumTree, leaves: np.ndarray):
    np.testing.assert_array_equal(tree.leaves(), leaves)
    t, p = tree._tree, tree._p
    np.testing.assert_array_equal(t[1:p], t[2:2 * p:2] + t[3:2 * p:2])  # every node = sum of its children
    assert t[p + tree.capacity:].sum() == 0
    assert tree.total == pytest.approx(leaves.sum(), rel=1e-12)


@pytest.mark.parametrize("capacity", [1, 2, 37, 64, 1000])
def test_sumtree_updates_with_duplicates_last_write_wins(capacity):
    rng = np.random.default_rng(capacity)
    tree, ref = SumTree(capacity), np.zeros(capacity)
    for _ in range(30):
        n = int(rng.integers(1, 3 * capacity + 2))
        idx = rng.integers(0, capacity, n)  # many repeats
        pri = rng.exponential(1.0, n) * (rng.random(n) > 0.2)
        tree.update(idx, pri)
        for i, p in zip(idx, pri):  # slow reference: sequential writes
            ref[i] = p
        assert_tree_consistent(tree, ref)
    tree.set_all(ref[::-1].copy())
    assert_tree_consistent(tree, ref[::-1])


def test_sumtree_rejects_bad_input():
    tree = SumTree(5)
    with pytest.raises(IndexError):
        tree.update(np.array([5]), np.array([1.0]))
    with pytest.raises(ValueError):
        tree.update(np.array([0]), np.array([-1.0]))
    with pytest.raises(ValueError):
        tree.update(np.array([0]), np.array([np.nan]))
    with pytest.raises(ValueError):
        tree.find(np.array([0.0]))  # total 0


def test_sumtree_find_matches_reference_at_boundaries_and_near_total():
    rng = np.random.default_rng(0)
    capacity = 300
    leaves = rng.integers(0, 5, capacity).astype(np.float64)  # integers: exact sums, many zero leaves
    leaves[-7:] = 0.0  # trailing zeros: the last positive leaf is not the last leaf
    tree = SumTree(capacity)
    tree.update(np.arange(capacity), leaves)
    total = tree.total
    cum = np.cumsum(leaves)
    values = np.concatenate([
        rng.random(20000) * total,
        cum[:-1], np.nextafter(cum[:-1], 0), np.nextafter(cum[:-1], np.inf),  # exact interval edges
        [0.0, np.nextafter(total, 0), total - 1e-9, total, np.nextafter(total, np.inf), total * 2],
    ])
    values = values[values >= 0]
    got = tree.find(values)
    np.testing.assert_array_equal(got, reference_find(leaves, values))
    assert np.all(leaves[got] > 0)


def test_sumtree_find_with_float_priorities_agrees_up_to_round_off():
    rng = np.random.default_rng(1)
    capacity = 1000
    leaves = rng.exponential(1.0, capacity) ** 3 * (rng.random(capacity) > 0.3)
    tree = SumTree(capacity)
    tree.update(np.arange(capacity), leaves)
    values = np.concatenate([rng.random(50000), 1 - rng.random(1000) * 1e-12]) * tree.total
    got = tree.find(values)
    assert np.all(leaves[got] > 0) and got.max() < capacity
    ref = reference_find(leaves, values)
    edges = np.cumsum(leaves)
    # Disagreement is only allowed for values within round-off of an interval edge.
    differ = got != ref
    near = np.min(np.abs(values[differ, None] - edges[None, :]), axis=1) if differ.any() else np.zeros(0)
    assert np.all(near <= 1e-9 * tree.total)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=40).filter(any),
       st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=20))
def test_sumtree_find_property(priorities, fractions):
    leaves = np.array(priorities, dtype=np.float64)
    tree = SumTree(leaves.size)
    tree.update(np.arange(leaves.size), leaves)
    cum = np.cumsum(leaves)
    values = np.concatenate([np.array(fractions) * tree.total, cum[:-1], [np.nextafter(tree.total, 0)]])
    got = tree.find(values)
    np.testing.assert_array_equal(got, reference_find(leaves, values))
    assert np.all(leaves[got] > 0)


# -- prioritized replay ------------------------------------------------------

def filled_per(raw_priorities, alpha=0.6, eps=1e-6, capacity=None):
    n = len(raw_priorities)
    per = PrioritizedReplay(capacity or n, SPEC, alpha=alpha, eps=eps)
    per.add(make_batch(0, n), priorities=np.asarray(raw_priorities, dtype=np.float64))
    return per


def counts_of(per, draws, batch_size, beta=0.4, seed=0):
    rng = np.random.default_rng(seed)
    counts = np.zeros(per.capacity, dtype=np.int64)
    for _ in range(draws // batch_size):
        idx, data, _ = per.sample(batch_size, beta, rng)
        np.testing.assert_array_equal(data["action"], idx)
        assert np.all(np.diff(idx) >= 0)  # stratified: segment j precedes segment j+1
        counts += np.bincount(idx, minlength=per.capacity)
    return counts


def chi2(counts, probs):
    expected = counts.sum() * probs
    return float(((counts - expected) ** 2 / expected).sum())


def test_stratified_sampling_matches_proportional_distribution():
    raw = np.array([0.05, 0.5, 1, 2, 3, 5, 8, 0.2, 13, 0.7, 4, 1.5, 0.1, 6, 2.5, 9])
    per = filled_per(raw, alpha=0.6)
    counts = counts_of(per, 200_000, 500)
    p = (raw + 1e-6) ** 0.6
    stat = chi2(counts, p / p.sum())
    assert stat < chi2_bound_999(raw.size - 1), stat
    assert chi2(counts, raw / raw.sum()) > 10 * chi2_bound_999(raw.size - 1)  # alpha matters: the test has power


def test_new_items_get_the_max_priority_seen_so_far():
    per = PrioritizedReplay(8, SPEC, alpha=0.5)
    per.add(make_batch(0, 2))
    np.testing.assert_allclose(per.priorities([0, 1]), 1.0)  # 1.0 before any priority is known
    per.add(make_batch(2, 2), priorities=np.array([-3.0, 0.5]))  # raw |TD|: the sign is dropped
    np.testing.assert_allclose(per.priorities([2, 3]), (np.array([3.0, 0.5]) + 1e-6) ** 0.5)
    per.add(make_batch(4, 1))
    np.testing.assert_allclose(per.priorities([4]), (3.0 + 1e-6) ** 0.5)
    per.update_priorities(np.array([0]), np.array([7.0]))
    per.add(make_batch(5, 1))
    np.testing.assert_allclose(per.priorities([5]), (7.0 + 1e-6) ** 0.5)
    rows = per.add(make_batch(6, 11), priorities=np.arange(11.0))  # longer than the ring: the tail
    np.testing.assert_allclose(per.priorities(rows), (np.arange(3.0, 11.0) + 1e-6) ** 0.5)
    assert len(per) == 8
    with pytest.raises(IndexError):
        PrioritizedReplay(8, SPEC).update_priorities(np.array([0]), np.array([1.0]))  # empty: row 0 unfilled


def test_weights_equal_the_slow_reference():
    rng = np.random.default_rng(3)
    raw = rng.exponential(1.0, 50)
    per = filled_per(raw, alpha=0.7, capacity=80)  # N = 50 < capacity
    for beta in (0.0, 0.4, 1.0):
        idx, _, w = per.sample(64, beta, rng)
        assert w.dtype == np.float32 and idx.max() < 50
        p = (raw[idx] + 1e-6) ** 0.7
        ref = (50 * p / ((raw + 1e-6) ** 0.7).sum()) ** -beta
        np.testing.assert_allclose(w, ref / ref.max(), rtol=1e-6)
        if beta == 0.0:
            np.testing.assert_array_equal(w, 1.0)


def test_weights_beta_one_known_values():
    eps = 1e-6
    per = filled_per([1.0, 3.0], alpha=1.0, eps=eps)
    idx, _, w = per.sample(4, 1.0, np.random.default_rng(0))
    assert idx[0] == 0  # the first quarter of the total lies inside item 0
    np.testing.assert_allclose(w, np.where(idx == 0, 1.0, (1 + eps) / (3 + eps)), rtol=1e-6)


def test_update_priorities_changes_the_distribution():
    per = filled_per(np.ones(10), alpha=1.0, eps=1e-12)
    per.update_priorities(np.array([3, 7, 3]), np.array([5.0, 0.0, 11.0]))  # 3 ends at 11, 7 at ~0
    counts = counts_of(per, 50_000, 250, seed=1)
    assert counts[7] == 0
    p = np.ones(10)
    p[3], p[7] = 11.0, 1e-12
    assert chi2(counts, p / p.sum()) < chi2_bound_999(9) * 3
    assert per.max_priority == pytest.approx(11.0)


def test_prioritized_state_dict_round_trip_keeps_priorities():
    rng = np.random.default_rng(4)
    a = PrioritizedReplay(16, SPEC, alpha=0.6)
    a.add(make_batch(0, 21), priorities=rng.exponential(1.0, 21))
    a.update_priorities(np.array([2, 5]), np.array([30.0, 0.01]))
    b = PrioritizedReplay(16, SPEC, alpha=0.6)
    b.load_state_dict(a.state_dict())
    assert b.max_priority == a.max_priority and b.buffer.insert_pos == a.buffer.insert_pos
    np.testing.assert_array_equal(b.tree.leaves(), a.tree.leaves())
    ra, rb = np.random.default_rng(9), np.random.default_rng(9)
    for x, y in zip(a.sample(32, 0.5, ra), b.sample(32, 0.5, rb)):
        if isinstance(x, dict):
            for k in x:
                np.testing.assert_array_equal(x[k], y[k])
        else:
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.add(make_batch(21, 3)), b.add(make_batch(21, 3)))
    np.testing.assert_array_equal(a.tree.leaves(), b.tree.leaves())
    with pytest.raises(ValueError):
        PrioritizedReplay(16, SPEC, alpha=0.5).load_state_dict(a.state_dict())


def test_prioritized_bytes_per_transition():
    per = PrioritizedReplay(1000, SPEC)
    assert per.bytes_per_transition == 3 * 4 + 8 + 4 + 2 * 1024 * 8 / 1000
    assert per.nbytes == 1000 * 24 + 2 * 1024 * 8
