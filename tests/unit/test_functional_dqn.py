"""mpirl.functional.dqn and mpirl.nets against plain loop references written in the papers' notation."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mpirl.functional import double_q_targets, dqn_loss, n_step_transitions
from mpirl.nets import ActorCritic, QNetwork, mlp


# ---------------------------------------------------------------- n-step transitions

def n_step_reference(r, terminated, truncated, gamma, n):
    """G_t^(n) = sum_{k<m} gamma^k r_{t+k}, one (t, b) at a time, stopping at an episode end or at T."""
    T, B = r.shape
    G = np.zeros((T, B))
    disc = np.zeros((T, B))
    idx = np.zeros((T, B), dtype=np.int64)
    valid = np.zeros((T, B), dtype=bool)
    for b in range(B):
        for t in range(T):
            g, m, ended, term = 0.0, 0, False, False
            for k in range(n):
                if t + k >= T:
                    break
                g += gamma**k * r[t + k, b]
                m += 1
                if terminated[t + k, b] or truncated[t + k, b]:
                    ended, term = True, bool(terminated[t + k, b])
                    break
            G[t, b] = g
            disc[t, b] = 0.0 if term else gamma**m
            idx[t, b] = t + m
            valid[t, b] = m == n or ended
    return G, disc, idx, valid


def assert_matches_reference(r, term, trunc, gamma, n):
    out = n_step_transitions(r, term, trunc, gamma, n)
    G, disc, idx, valid = n_step_reference(r, term, trunc, gamma, n)
    np.testing.assert_allclose(out.returns, G, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.discounts, disc, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out.bootstrap_index, idx)
    np.testing.assert_array_equal(out.valid, valid)
    assert out.bootstrap_index.dtype == np.int64 and out.valid.dtype == bool
    for field in out:
        assert field.shape == r.shape


def test_hand_example_termination():
    r = np.array([[1.0], [2.0], [3.0], [4.0]])
    term = np.array([[False], [True], [False], [False]])
    trunc = np.zeros_like(term)
    out = n_step_transitions(r, term, trunc, gamma=0.5, n=3)
    # t=0: steps 0,1, terminated at 1.  t=1: step 1 only.  t=2,3: cut by the unroll end.
    np.testing.assert_allclose(out.returns[:, 0], [1 + 0.5 * 2, 2, 3 + 0.5 * 4, 4])
    np.testing.assert_allclose(out.discounts[:, 0], [0, 0, 0.25, 0.5])
    np.testing.assert_array_equal(out.bootstrap_index[:, 0], [2, 2, 4, 4])
    np.testing.assert_array_equal(out.valid[:, 0], [True, True, False, False])


def test_hand_example_truncation_bootstraps():
    r = np.array([[1.0], [2.0], [3.0], [4.0]])
    term = np.zeros((4, 1), dtype=bool)
    trunc = np.array([[False], [False], [True], [False]])
    out = n_step_transitions(r, term, trunc, gamma=0.5, n=3)
    np.testing.assert_allclose(out.returns[:, 0], [1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3, 4])
    np.testing.assert_allclose(out.discounts[:, 0], [0.125, 0.25, 0.5, 0.5])
    np.testing.assert_array_equal(out.bootstrap_index[:, 0], [3, 3, 3, 4])
    np.testing.assert_array_equal(out.valid[:, 0], [True, True, True, False])


def test_n1_is_one_step_td():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(6, 3))
    term = rng.random((6, 3)) < 0.3
    trunc = rng.random((6, 3)) < 0.2
    out = n_step_transitions(r, term, trunc, gamma=0.9, n=1)
    np.testing.assert_allclose(out.returns, r, rtol=1e-6)
    np.testing.assert_allclose(out.discounts, np.where(term, 0.0, 0.9), rtol=1e-6)
    np.testing.assert_array_equal(out.bootstrap_index, np.arange(1, 7)[:, None].repeat(3, 1))
    assert out.valid.all()


def test_boundaries():
    T, n, gamma = 5, 3, 0.9
    r = np.ones((T, 1))
    no = np.zeros((T, 1), dtype=bool)
    # A full n-step window ending exactly at T is complete; the last n-1 are not.
    out = n_step_transitions(r, no, no, gamma, n)
    np.testing.assert_array_equal(out.valid[:, 0], [True, True, True, False, False])
    np.testing.assert_array_equal(out.bootstrap_index[:, 0], [3, 4, 5, 5, 5])
    # A termination on the last step completes every window that reaches it.
    last = no.copy()
    last[-1] = True
    out = n_step_transitions(r, last, no, gamma, n)
    assert out.valid.all()
    np.testing.assert_allclose(out.discounts[2:, 0], 0.0)
    # An episode end just after a full window does not touch it.
    after = no.copy()
    after[3] = True
    out = n_step_transitions(r, after, no, gamma, n)
    assert out.discounts[0, 0] == pytest.approx(gamma**3)
    assert out.returns[0, 0] == pytest.approx(1 + gamma + gamma**2)
    # Terminated and truncated on the same step: the termination wins (no bootstrap).
    both = no.copy()
    both[1] = True
    out = n_step_transitions(r, both, both, gamma, n)
    assert out.discounts[0, 0] == 0.0 and out.bootstrap_index[0, 0] == 2
    # n longer than the unroll: only windows closed by an episode end are valid.
    out = n_step_transitions(r, after, no, gamma, n=10)
    np.testing.assert_array_equal(out.valid[:, 0], [True, True, True, True, False])


@pytest.mark.parametrize("seed", range(20))
def test_random_episodes_match_reference(seed):
    rng = np.random.default_rng(seed)
    T, B, n = int(rng.integers(1, 15)), int(rng.integers(1, 5)), int(rng.integers(1, 6))
    gamma = float(rng.choice([0.0, 1.0, rng.random()]))
    r = rng.normal(size=(T, B)).astype(rng.choice([np.float32, np.float64]))
    term = rng.random((T, B)) < rng.random() * 0.5
    trunc = rng.random((T, B)) < rng.random() * 0.3
    assert_matches_reference(r, term, trunc, gamma, n)


@settings(deadline=None, max_examples=150)
@given(
    data=st.data(),
    T=st.integers(1, 12),
    B=st.integers(1, 3),
    n=st.integers(1, 6),
    gamma=st.floats(0.0, 1.0),
)
def test_hypothesis_matches_reference(data, T, B, n, gamma):
    r = data.draw(hnp.arrays(np.float64, (T, B), elements=st.floats(-10, 10)))
    term = data.draw(hnp.arrays(bool, (T, B)))
    trunc = data.draw(hnp.arrays(bool, (T, B)))
    assert_matches_reference(r, term, trunc, gamma, n)


def test_n_step_bad_inputs_name_the_argument():
    r = np.zeros((4, 2))
    ok = np.zeros((4, 2), dtype=bool)
    with pytest.raises(ValueError, match="rewards_t"):
        n_step_transitions(np.zeros(4), np.zeros(4, bool), np.zeros(4, bool), 0.9, 2)
    with pytest.raises(ValueError, match=r"terminated_t.*\(4, 2\).*\(4, 3\)"):
        n_step_transitions(r, np.zeros((4, 3), bool), ok, 0.9, 2)
    with pytest.raises(ValueError, match="truncated_t"):
        n_step_transitions(r, ok, np.zeros((2, 4), bool), 0.9, 2)
    with pytest.raises(ValueError, match="n must"):
        n_step_transitions(r, ok, ok, 0.9, 0)
    with pytest.raises(ValueError, match="gamma"):
        n_step_transitions(r, ok, ok, 1.5, 2)


# ---------------------------------------------------------------- double-Q targets

def double_q_reference(q_online, q_target, returns, discounts):
    """y_b = R_b + gamma_b Q_target(s', argmax_a Q_online(s', a))."""
    y = []
    for b in range(q_online.shape[0]):
        a_star = max(range(q_online.shape[1]), key=lambda a: q_online[b, a].item())
        y.append(returns[b].item() + discounts[b].item() * q_target[b, a_star].item())
    return torch.tensor(y)


def test_double_q_uses_online_argmax_and_target_value():
    q_online = torch.tensor([[1.0, 5.0, 0.0]])
    q_target = torch.tensor([[10.0, 2.0, 3.0]])
    y = double_q_targets(q_online, q_target, torch.tensor([1.0]), torch.tensor([0.5]))
    # Online picks action 1; the target net values it at 2 (not its own max 10, not the online 5).
    assert y.tolist() == [1.0 + 0.5 * 2.0]


def test_double_q_matches_reference_and_has_no_grad():
    g = torch.Generator().manual_seed(0)
    B, A = 32, 5
    q_online = torch.randn(B, A, generator=g, requires_grad=True)
    q_target = torch.randn(B, A, generator=g, requires_grad=True)
    returns = torch.randn(B, generator=g)
    discounts = torch.rand(B, generator=g) * (torch.rand(B, generator=g) > 0.2)
    y = double_q_targets(q_online, q_target, returns, discounts)
    torch.testing.assert_close(y, double_q_reference(q_online, q_target, returns, discounts))
    assert not y.requires_grad


def test_double_q_bad_shapes_name_the_argument():
    q = torch.zeros(4, 3)
    v = torch.zeros(4)
    with pytest.raises(ValueError, match="q_next_online"):
        double_q_targets(torch.zeros(4), q, v, v)
    with pytest.raises(ValueError, match=r"q_next_target.*\(4, 3\).*\(4, 2\)"):
        double_q_targets(q, torch.zeros(4, 2), v, v)
    with pytest.raises(ValueError, match="returns"):
        double_q_targets(q, q, torch.zeros(4, 1), v)
    with pytest.raises(ValueError, match="discounts"):
        double_q_targets(q, q, v, torch.zeros(5))


# ---------------------------------------------------------------- DQN loss

def huber(x, delta):
    return 0.5 * x * x if abs(x) <= delta else delta * (abs(x) - 0.5 * delta)


@pytest.mark.parametrize("delta", [1.0, 0.3, 5.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_dqn_loss_matches_manual_huber(delta, weighted):
    g = torch.Generator().manual_seed(1)
    B, A = 16, 4
    q = (3 * torch.randn(B, A, generator=g)).requires_grad_()
    actions = torch.randint(0, A, (B,), generator=g)
    targets = 3 * torch.randn(B, generator=g)
    weights = torch.rand(B, generator=g) if weighted else None
    out = dqn_loss(q, actions, targets, weights, huber_delta=delta)
    expected, deltas = 0.0, []
    for b in range(B):
        td = targets[b].item() - q[b, actions[b]].item()
        deltas.append(td)
        expected += (weights[b].item() if weighted else 1.0) * huber(td, delta)
    assert out.loss.item() == pytest.approx(expected / B, rel=1e-5)
    torch.testing.assert_close(out.td_errors, torch.tensor(deltas))
    assert not out.td_errors.requires_grad
    out.loss.backward()
    # Only the taken actions' values receive gradient.
    mask = torch.zeros(B, A, dtype=torch.bool)
    mask[torch.arange(B), actions] = True
    assert (q.grad[~mask] == 0).all()


def test_dqn_loss_does_not_differentiate_targets():
    q = torch.zeros(2, 2, requires_grad=True)
    targets = torch.ones(2, requires_grad=True)
    dqn_loss(q, torch.tensor([0, 1]), targets).loss.backward()
    assert targets.grad is None


def test_dqn_loss_bad_inputs_name_the_argument():
    q, a, y = torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), torch.zeros(4)
    with pytest.raises(ValueError, match="q_values"):
        dqn_loss(torch.zeros(4), a, y)
    with pytest.raises(ValueError, match=r"actions.*\(4,\).*\(4, 1\)"):
        dqn_loss(q, a[:, None], y)
    with pytest.raises(ValueError, match="actions must be an integer"):
        dqn_loss(q, a.float(), y)
    with pytest.raises(ValueError, match="actions must lie"):
        dqn_loss(q, torch.tensor([0, 1, 2, 3]), y)
    with pytest.raises(ValueError, match="targets"):
        dqn_loss(q, a, torch.zeros(3))
    with pytest.raises(ValueError, match="weights"):
        dqn_loss(q, a, y, torch.zeros(4, 1))
    with pytest.raises(ValueError, match="huber_delta"):
        dqn_loss(q, a, y, huber_delta=0.0)


# ---------------------------------------------------------------- networks

def test_mlp_structure():
    net = mlp(3, (8, 8), 2)
    kinds = [type(m) for m in net]
    assert kinds == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
    assert [type(m) for m in mlp(3, (), 2)] == [torch.nn.Linear]
    assert net(torch.zeros(5, 3)).shape == (5, 2)


@pytest.mark.parametrize("dueling", [False, True])
def test_qnetwork_shapes(dueling):
    torch.manual_seed(0)
    net = QNetwork(4, 3, hidden=(16, 16), dueling=dueling)
    assert net(torch.randn(7, 4)).shape == (7, 3)


def test_dueling_identity():
    torch.manual_seed(0)
    net = QNetwork(4, 5, hidden=(16,), dueling=True)
    obs = torch.randn(9, 4)
    q = net(obs)
    h = net.torso(obs)
    adv, v = net.advantage_head(h), net.value_head(h).squeeze(-1)
    torch.testing.assert_close(q - q.mean(-1, keepdim=True), adv - adv.mean(-1, keepdim=True))
    torch.testing.assert_close(q.mean(-1), v)


def test_actor_critic_shapes():
    torch.manual_seed(0)
    logits, values = ActorCritic(4, 2)(torch.randn(6, 4))
    assert logits.shape == (6, 2) and values.shape == (6,)
