"""combine = "pooled" of tabular Q-learning against a slow serial reference."""
import numpy as np
import pytest

from mpirl.algos.tabular_q import pooled_combine


def serial(q0, steps, targets):
    """Q-learning's update of one entry, one step at a time: Q <- Q + a (T - Q)."""
    q = q0
    for a, t in zip(steps, targets):
        q = q + a * (t - q)
    return q


def rank_sums(q0, ranks):
    """What the Allreduce delivers: sums over ranks of (Q_r - Q_sync), L_r and f_r for one entry."""
    delta = log_keep = moved = 0.0
    for steps, targets in ranks:
        delta += serial(q0, steps, targets) - q0
        keep = np.prod([1.0 - a for a in steps])
        log_keep += np.log(keep) if keep > 0 else -np.inf
        moved += 1.0 - keep
    return np.array([delta]), np.array([log_keep]), np.array([moved])


def test_one_rank_is_serial_q_learning():
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(1, 30))
        steps, targets, q0 = rng.uniform(0.01, 1.0, k), rng.normal(0, 5, k), float(rng.normal())
        got = pooled_combine(np.array([q0]), *rank_sums(q0, [(steps, targets)]))[0]
        assert got == pytest.approx(serial(q0, steps, targets), rel=1e-9, abs=1e-9)


def test_many_ranks_never_pass_the_targets_where_a_sum_of_changes_does():
    # Every rank walks one entry from 0 towards the same target 1 with big steps between two syncs.
    q0, ranks = 0.0, [([0.5] * 5, [1.0] * 5)] * 8
    got = pooled_combine(np.array([q0]), *rank_sums(q0, ranks))[0]
    # Pooled: one serial sequence of 40 half-steps, 1 - 0.5^40 of the way.
    assert got == pytest.approx(1.0 - 0.5 ** 40, rel=1e-12)
    summed = q0 + sum(serial(q0, s, t) - q0 for s, t in ranks)
    assert summed > 7.0  # "sum" without its 1/ranks step cap: eight times too far


def test_result_stays_between_q_sync_and_the_targets():
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(1, 16))
        ranks = []
        for _ in range(n):
            k = int(rng.integers(0, 20))  # a rank may not have touched the entry at all
            ranks.append((rng.uniform(0.0, 1.0, k), rng.uniform(-2.0, 3.0, k)))
        q0 = float(rng.uniform(-5, 5))
        got = pooled_combine(np.array([q0]), *rank_sums(q0, ranks))[0]
        lo, hi = min([q0] + [t.min() for _, t in ranks if len(t)]), max([q0] + [t.max() for _, t in ranks if len(t)])
        assert lo - 1e-9 <= got <= hi + 1e-9


def test_full_steps_and_untouched_entries():
    q_sync = np.array([2.0, -1.0])
    # Entry 0: two ranks each took a full step (a = 1) to targets 4 and 6: the pooled mean, 5.
    # Entry 1: nobody touched it.
    delta = np.array([(4.0 - 2.0) + (6.0 - 2.0), 0.0])
    got = pooled_combine(q_sync, delta, np.array([-np.inf, 0.0]), np.array([2.0, 0.0]))
    np.testing.assert_array_equal(got, [5.0, -1.0])


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="shapes differ"):
        pooled_combine(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(6), np.zeros((2, 3)))
