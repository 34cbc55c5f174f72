"""A2C family parts without MPI: n-step returns and loss against slow references, the gossip schedule,
the replica fingerprint check, gradients into a shared flat buffer, and the learner."""
import math

import numpy as np
import pytest
import torch

from mpirl.algos.a2c.config import A2CConfig
from mpirl.algos.a2c.learner import ActorCriticLearner, param_fingerprint, replicas_agree
from mpirl.functional.a2c import a2c_loss as a2c_loss_lp
from mpirl.functional.a2c import n_step_returns
from mpirl.nets import ActorCritic
from mpirl.networks import Categorical
from mpirl.params import flat_gradients
from mpirl.specs import DiscreteSpec
from mpirl.functional.gossip import gossip_peer, mixing_matrix, schedule_period


def random_unroll(T, B, seed):
    """Flags as gymnasium's next-step autoreset makes them: after an ended step comes a reset step."""
    rng = np.random.default_rng(seed)
    reset = np.zeros((T, B), bool)
    term = np.zeros((T, B), bool)
    trunc = np.zeros((T, B), bool)
    reset[0] = rng.random(B) < 0.3  # the previous unroll may have ended an episode on its last step
    for t in range(T):
        if t > 0:
            reset[t] = term[t - 1] | trunc[t - 1]
        end = ~reset[t] & (rng.random(B) < 0.3)
        kind = rng.random(B) < 0.5
        term[t], trunc[t] = end & kind, end & ~kind
    rewards = np.where(reset, 0.0, rng.normal(size=(T, B)))
    values = rng.normal(size=(T + 1, B))
    return rewards, values, term, trunc, reset


def slow_returns(rewards, values, term, trunc, reset, gamma):
    """From first principles: sum the rewards forward to the episode's end or the unroll's end.

    Uses the truncation flags, which n_step_returns never sees.
    """
    T, B = rewards.shape
    out = np.zeros((T, B))
    for b in range(B):
        for t in range(T):
            if reset[t, b]:
                out[t, b] = values[t, b]
                continue
            g, disc = 0.0, 1.0
            for s in range(t, T):
                g += disc * rewards[s, b]
                if term[s, b]:
                    break
                if trunc[s, b] or s == T - 1:  # bootstrap from the next (final, if truncated) observation
                    g += disc * gamma * values[s + 1, b]
                    break
                disc *= gamma
            out[t, b] = g
    return out


def t(x, dtype=torch.float64):
    return torch.as_tensor(np.asarray(x), dtype=dtype)


@pytest.mark.parametrize("T, B, seed", [(1, 3, 0), (5, 4, 1), (20, 8, 2), (7, 1, 3), (12, 16, 4)])
@pytest.mark.parametrize("gamma", [0.0, 0.9, 1.0])
def test_n_step_returns_match_the_forward_sums(T, B, seed, gamma):
    rewards, values, term, trunc, reset = random_unroll(T, B, seed)
    got = n_step_returns(t(rewards), t(values), t(term, torch.bool), t(reset, torch.bool), gamma)
    np.testing.assert_allclose(got.numpy(), slow_returns(rewards, values, term, trunc, reset, gamma), atol=1e-12)


def test_truncation_bootstraps_from_the_final_observation_and_termination_does_not():
    # One copy: steps 0-1 of an episode truncated at step 1, reset step 2, then a terminated step 3.
    rewards = np.array([[1.0], [2.0], [0.0], [5.0]])
    values = np.array([[10.0], [20.0], [30.0], [40.0], [50.0]])  # V(x_2) = 30: the truncated episode's final obs
    term = np.array([[0], [0], [0], [1]], bool)
    reset = np.array([[0], [0], [1], [0]], bool)
    got = n_step_returns(t(rewards), t(values), t(term, torch.bool), t(reset, torch.bool), 0.5).numpy()[:, 0]
    np.testing.assert_allclose(got, [1 + 0.5 * (2 + 0.5 * 30), 2 + 0.5 * 30, 30, 5])


def a2c_loss(logits, values, actions, *args):
    """The loss on log-probabilities, from the logits ``[T(+1), B, A]`` of a Categorical policy."""
    T = actions.shape[0]
    log_pi, entropy = Categorical(DiscreteSpec(logits.shape[-1])).log_prob_and_entropy(logits[:T], actions)
    return a2c_loss_lp(log_pi, entropy, values, *args)


def slow_loss(logits, values, actions, rewards, term, trunc, reset, gamma, value_cost, entropy_cost):
    T, B = actions.shape
    ret = slow_returns(rewards, values.detach().numpy(), term, trunc, reset, gamma)
    pg = vl = ent = 0.0
    n = 0
    for i in range(T):
        for b in range(B):
            if reset[i, b]:
                continue
            n += 1
            logp = torch.log_softmax(logits[i, b], -1)
            adv = float(ret[i, b]) - float(values[i, b].detach())
            pg = pg - logp[actions[i, b]] * adv
            vl = vl + 0.5 * (float(ret[i, b]) - values[i, b]) ** 2
            ent = ent - (logp.exp() * logp).sum()
    n = max(n, 1)
    return pg / n + value_cost * vl / n - entropy_cost * ent / n


@pytest.mark.parametrize("T, B, seed", [(1, 2, 0), (6, 3, 5), (10, 4, 6)])
def test_a2c_loss_and_its_gradient_match_the_reference(T, B, seed):
    rewards, values_np, term, trunc, reset = random_unroll(T, B, seed)
    rng = np.random.default_rng(seed + 100)
    actions = rng.integers(3, size=(T, B))
    logits_np = rng.normal(size=(T + 1, B, 3))
    lg1, v1 = t(logits_np).requires_grad_(), t(values_np).requires_grad_()
    lg2, v2 = t(logits_np).requires_grad_(), t(values_np).requires_grad_()
    out = a2c_loss(lg1, v1, t(actions, torch.int64), t(rewards), t(term, torch.bool), t(reset, torch.bool),
                   0.9, 0.5, 0.01)
    ref = slow_loss(lg2, v2, actions, rewards, term, trunc, reset, 0.9, 0.5, 0.01)
    assert math.isclose(float(out.loss.detach()), float(ref.detach()), rel_tol=1e-10, abs_tol=1e-12)
    out.loss.backward()
    ref.backward()
    np.testing.assert_allclose(lg1.grad.numpy(), lg2.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(v1.grad.numpy(), v2.grad.numpy(), atol=1e-12)
    # Reset steps carry no gradient, and nothing flows into the bootstrap value V(x_T).
    assert np.all(lg1.grad.numpy()[:T][reset] == 0) and np.all(v1.grad.numpy()[T] == 0)


def test_a2c_loss_rejects_misaligned_inputs():
    with pytest.raises(ValueError, match="T\\+1"):
        a2c_loss(torch.zeros(3, 2, 2), torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.int64), torch.zeros(3, 2),
                 torch.zeros(3, 2), torch.zeros(3, 2), 0.9, 0.5, 0.0)


# ---------------------------------------------------------------- gossip schedule

@pytest.mark.parametrize("size", range(1, 11))
def test_every_round_is_a_matching_with_a_doubly_stochastic_symmetric_mixing_matrix(size):
    for k in range(3 * schedule_period(size)):
        for r in range(size):
            p = gossip_peer(r, size, k)
            assert p is None or (p != r and 0 <= p < size and gossip_peer(p, size, k) == r)
        w = mixing_matrix(size, k)
        np.testing.assert_allclose(w.sum(0), 1.0)
        np.testing.assert_allclose(w.sum(1), 1.0)
        np.testing.assert_array_equal(w, w.T)
        if size % 2 == 0:  # even N: nobody sits out
            assert all(gossip_peer(r, size, k) is not None for r in range(size))


@pytest.mark.parametrize("size", range(2, 11))
def test_the_graphs_of_one_period_connect_all_ranks(size):
    adj = np.eye(size, dtype=bool)
    for k in range(schedule_period(size)):
        adj |= mixing_matrix(size, k) > 0
    reach = adj.copy()
    for _ in range(size):
        reach = (reach.astype(int) @ adj.astype(int)) > 0
    assert reach.all()
    if size & (size - 1):  # round robin: every pair meets once per period
        assert adj.all()


@pytest.mark.parametrize("size", [2, 4, 8, 16])
def test_hypercube_rounds_average_exactly(size):
    w = np.eye(size)
    for k in range(schedule_period(size)):
        w = mixing_matrix(size, k) @ w
    np.testing.assert_allclose(w, np.full((size, size), 1.0 / size))


@pytest.mark.parametrize("size", [3, 5, 6, 7])
def test_repeated_rounds_contract_towards_the_average(size):
    x = np.random.default_rng(0).normal(size=size)
    y = x.copy()
    for k in range(20 * schedule_period(size)):
        y = mixing_matrix(size, k) @ y
    assert math.isclose(y.mean(), x.mean(), abs_tol=1e-12)
    assert np.abs(y - x.mean()).max() < 1e-3 * np.abs(x - x.mean()).max()


def test_gossip_peer_rejects_a_rank_outside_the_world():
    with pytest.raises(ValueError):
        gossip_peer(4, 4, 0)


# ---------------------------------------------------------------- replicas and flat buffers

def test_fingerprint_sum_detects_any_differing_replica():
    a = np.linspace(-1, 1, 1000).astype(np.float32)
    b = a.copy()
    b[500] = np.nextafter(b[500], np.float32(2))  # one ulp
    fa, fb = param_fingerprint(a), param_fingerprint(b)
    assert not np.array_equal(fa, fb)
    size = 4
    assert replicas_agree(size * fa, fa, size)
    summed = 3 * fa + fb  # one rank of four differs
    assert not replicas_agree(summed, fb, size)


def test_flat_gradients_can_live_in_front_of_other_values():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    n = sum(p.numel() for p in net.parameters())
    buf = np.full(n + 3, 7.0, np.float32)
    grad = flat_gradients(net, out=buf)
    assert grad.base is not None and np.shares_memory(grad, buf) and grad.size == n
    net(torch.ones(5, 3)).sum().backward()
    expected = torch.cat([p.grad.reshape(-1) for p in net.parameters()]).numpy()
    np.testing.assert_array_equal(buf[:n], expected)
    np.testing.assert_array_equal(buf[n:], 7.0)
    with pytest.raises(ValueError):
        flat_gradients(net, out=np.zeros(n - 1, np.float32))


def test_learner_gradient_is_the_loss_gradient_and_state_round_trips():

    a = A2CConfig(hidden=[8], max_grad_norm=0.0)
    learner = ActorCriticLearner(a, ActorCritic(4, 2, tuple(a.hidden)), 1000)
    rewards, _, term, _, reset = random_unroll(5, 3, 9)
    rng = np.random.default_rng(1)
    unroll = {"obs": rng.normal(size=(6, 3, 4)).astype(np.float32), "action": rng.integers(2, size=(5, 3)),
              "reward": rewards.astype(np.float32), "terminated": term.astype(np.uint8),
              "reset": reset.astype(np.uint8)}
    learner.compute_gradient(unroll)
    learner.compute_gradient(unroll)  # a second call must not accumulate onto the first
    ref = ActorCritic(4, 2, (8,))
    ref.load_state_dict(learner.net.state_dict())
    logits, values = ref(torch.from_numpy(unroll["obs"]).reshape(18, 4))
    a2c_loss(logits.reshape(6, 3, 2), values.reshape(6, 3), torch.from_numpy(unroll["action"]),
             torch.from_numpy(unroll["reward"]), torch.from_numpy(unroll["terminated"]),
             torch.from_numpy(unroll["reset"]), a.gamma, a.value_cost, a.entropy_cost).loss.backward()
    expected = torch.cat([p.grad.reshape(-1) for p in ref.parameters()]).numpy()
    np.testing.assert_allclose(learner.grad, expected, rtol=1e-5, atol=1e-7)
    before = learner.flat.copy()
    learner.apply_gradient(0)
    assert not np.array_equal(before, learner.flat)  # the optimizer moved the flat vector in place
    other = ActorCriticLearner(a, ActorCritic(4, 2, tuple(a.hidden)), 1000)
    other.load_state_dict(learner.state_dict())
    np.testing.assert_array_equal(other.flat, learner.flat)
    assert int(other.state_dict()["optim/state/0/step"]) == 1


@pytest.mark.parametrize("hidden", [[64, 64], [8], [5, 7, 9]])
def test_state_shapes_match_the_network_without_building_it(hidden):
    from types import SimpleNamespace

    import gymnasium as gym

    from mpirl.algos.a2c import state_shapes

    a = A2CConfig(hidden=hidden)
    env = gym.make("Acrobot-v1")
    cfg = SimpleNamespace(agent=a)
    net = ActorCritic(6, 3, tuple(a.hidden))
    assert state_shapes(cfg, env) == {f"net/{k}": tuple(v.shape) for k, v in net.state_dict().items()}
