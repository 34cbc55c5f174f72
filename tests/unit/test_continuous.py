"""Continuous actions and normalisers: Gaussian distributions against torch.distributions and the change of
variables, the state-independent head, orthogonal init, running moments and reward scaling against loops."""
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from mpirl.networks import DiagGaussian, NetworkConfig, TanhGaussian, make_networks
from mpirl.networks.normalize import RewardScaler, RunningNorm, merge_moments, moments
from mpirl.specs import BoxSpec, spec_from_spaces

BOX = BoxSpec((3,), (-2.0, -1.0, 0.0), (2.0, 1.0, 4.0))


def params(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randn(n, 3, generator=g), 0.3 * torch.randn(n, 3, generator=g)], -1)


def test_diag_gaussian_matches_torch_normal():
    d = DiagGaussian(BOX)
    p = params()
    a = torch.randn(5, 3)
    ref = torch.distributions.Normal(p[:, :3], p[:, 3:].exp())
    assert d.num_params == 6
    torch.testing.assert_close(d.log_prob(p, a), ref.log_prob(a).sum(-1))
    torch.testing.assert_close(d.entropy(p), ref.entropy().sum(-1))
    lp, ent = d.log_prob_and_entropy(p, a)
    torch.testing.assert_close(lp, d.log_prob(p, a)) and torch.testing.assert_close(ent, d.entropy(p))
    torch.testing.assert_close(d.mode(p), p[:, :3])
    # [T, B] leading dimensions, as the learners call it.
    torch.testing.assert_close(d.log_prob(p.reshape(5, 1, 6), a.reshape(5, 1, 3)), d.log_prob(p, a).reshape(5, 1))


def test_diag_gaussian_samples_and_clips_only_for_the_environment():
    d = DiagGaussian(BOX)
    p = np.array([[0.5, -0.2, 3.9, math.log(0.5), math.log(2.0), 0.0]], np.float32).repeat(20000, 0)
    a = d.sample(p, np.random.default_rng(0))
    assert a.shape == (20000, 3) and a.dtype == np.float32
    np.testing.assert_allclose(a.mean(0), [0.5, -0.2, 3.9], atol=0.04)
    np.testing.assert_allclose(a.std(0), [0.5, 2.0, 1.0], rtol=0.03)
    assert (a[:, 1] > 1.0).any()  # the sample itself is not clipped...
    env = d.to_env(a)
    assert env.min(0).tolist() >= [-2.0, -1.0, 0.0] and env.max(0).tolist() <= [2.0, 1.0, 4.0]  # ...the step is
    inside = (a >= BOX.low) & (a <= BOX.high)
    np.testing.assert_array_equal(env[inside], a[inside])


def test_tanh_gaussian_is_the_change_of_variables_of_the_squash():
    d = TanhGaussian(BOX)
    p = params(4).double()
    u = torch.randn(4, 3, dtype=torch.float64) * 3.0
    low, high = torch.tensor(BOX.low, dtype=torch.float64), torch.tensor(BOX.high, dtype=torch.float64)
    # Slow reference: log p(a) = log N(u) - sum_i log |d a_i / d u_i|, a = low + (tanh u + 1)(high - low)/2.
    normal = torch.distributions.Normal(p[:, :3], p[:, 3:].exp()).log_prob(u).sum(-1)
    jac = torch.log((1 - torch.tanh(u) ** 2) * (high - low) / 2).sum(-1)
    torch.testing.assert_close(d.log_prob(p, u), normal - jac)
    a = d.to_env(np.array([[-40.0, 0.0, 40.0]], np.float32))
    np.testing.assert_allclose(a, [[-2.0, 0.0, 4.0]], atol=1e-6)
    # The density integrates to 1 over the Box (1-D check by quadrature).
    one = TanhGaussian(BoxSpec((1,), (-1.0,), (3.0,)))
    q = torch.tensor([[0.4, math.log(0.7)]], dtype=torch.float64)
    xs = np.linspace(-1 + 1e-9, 3 - 1e-9, 200001)
    us = torch.from_numpy(np.arctanh((xs - 1.0) / 2.0)).reshape(-1, 1)
    dens = one.log_prob(q.expand(len(xs), 2), us).exp().numpy()
    assert abs(np.trapezoid(dens, xs) - 1.0) < 1e-3
    with pytest.raises(ValueError, match="finite"):
        TanhGaussian(BoxSpec((1,), (-math.inf,), (math.inf,)))


def test_box_networks_have_a_state_independent_log_std_and_orthogonal_init():
    spec = spec_from_spaces(gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Box(-1, 1, (3,), np.float32))
    torch.manual_seed(0)
    net = make_networks(spec, NetworkConfig("policy_value", (16, 16), "tanh", distribution="auto",
                                            init="orthogonal"))
    assert isinstance(net.dist, DiagGaussian)
    out, values = net(torch.randn(7, 4))
    assert out.shape == (7, 6) and values.shape == (7,)
    assert torch.equal(out[:, 3:], torch.zeros(7, 3))  # log std 0 for every state at the start
    head = net.actor[-1]
    assert head.mean.weight.abs().max() < 0.05 and torch.equal(head.mean.bias, torch.zeros(3))  # gain 0.01
    w = net.actor[0].weight  # [16, 4]: gain sqrt(2), orthogonal columns
    torch.testing.assert_close(w.T @ w, 2.0 * torch.eye(4), atol=1e-4, rtol=0)
    loss = -net.dist.log_prob(out, torch.randn(7, 3)).mean()
    loss.backward()
    assert head.log_std.grad is not None and head.log_std.grad.abs().sum() > 0
    greedy = net.greedy(torch.randn(2, 4))
    assert greedy.shape == (2, 3)
    tanh = make_networks(spec, NetworkConfig("policy_value", (8,), "tanh", distribution="tanh_gaussian",
                                             shared_encoder=True))
    assert isinstance(tanh.dist, TanhGaussian) and tanh.policy(torch.randn(2, 4)).shape == (2, 6)


def test_log_std_init_sets_the_starting_spread_of_every_gaussian_policy():
    spec = spec_from_spaces(gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Box(-1, 1, (3,), np.float32))
    for dist, shared, init in (("gaussian", False, "orthogonal"), ("tanh_gaussian", True, "default")):
        net = make_networks(spec, NetworkConfig("policy_value", (8,), "tanh", distribution=dist,
                                                shared_encoder=shared, init=init, log_std_init=-1.5))
        out, _ = net(torch.randn(5, 4))
        torch.testing.assert_close(out[:, 3:], torch.full((5, 3), -1.5))


def test_auto_gives_the_categorical_and_the_same_weights_as_before():
    spec = spec_from_spaces(gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Discrete(2))
    nets = []
    for name in ("auto", "categorical"):
        torch.manual_seed(3)
        nets.append(make_networks(spec, NetworkConfig("policy_value", (8,), "tanh", distribution=name)))
    for (k, v), (k2, v2) in zip(nets[0].state_dict().items(), nets[1].state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert "actor.2.weight" in nets[0].state_dict()  # the checkpoint names of discrete policies are unchanged


def test_merged_moments_equal_the_statistics_of_all_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(5.0, 3.0, (n, 2)) for n in (7, 1, 30, 12)]
    count, mean, var = 0.0, np.zeros(2), np.ones(2)
    for b in batches:
        count, mean, var = merge_moments(count, mean, var, moments(b))
    allx = np.concatenate(batches)
    assert count == len(allx)
    np.testing.assert_allclose(mean, allx.mean(0)) and np.testing.assert_allclose(var, allx.var(0))
    # Two ranks' sums added before one merge give the same statistics.
    c2, m2, v2 = merge_moments(0.0, np.zeros(2), np.ones(2), moments(batches[0]) + moments(batches[2]))
    both = np.concatenate([batches[0], batches[2]])
    np.testing.assert_allclose(m2, both.mean(0)) and np.testing.assert_allclose(v2, both.var(0))
    norm = RunningNorm((2,), clip=10.0)
    torch.testing.assert_close(norm(torch.ones(1, 2)), torch.ones(1, 2), atol=1e-6, rtol=0)  # identity at first
    norm.update(moments(allx))
    x = torch.tensor([[5.0, 5.0], [1e6, -1e6]])
    want = (x[0].numpy() - allx.mean(0)) / np.sqrt(allx.var(0) + 1e-8)
    np.testing.assert_allclose(norm(x)[0].numpy(), want, rtol=1e-5)
    assert norm(x)[1].tolist() == [10.0, -10.0]


def test_reward_scaler_divides_by_the_std_of_the_discounted_returns_seen():
    rng = np.random.default_rng(1)
    T, B, gamma = 6, 3, 0.9
    scaler = RewardScaler(B, gamma, clip=5.0)
    G, seen = np.zeros(B), []
    for _ in range(3):
        reward = rng.normal(2.0, 4.0, (T, B)).astype(np.float32)
        reset = rng.random((T, B)) < 0.15
        reward[reset] = 0.0
        got = scaler(reward, reset)
        for t in range(T):  # slow reference: G restarts at reset steps, which are not counted
            for b in range(B):
                G[b] = 0.0 if reset[t, b] else gamma * G[b] + reward[t, b]
                if not reset[t, b]:
                    seen.append(G[b])
        want = np.clip(reward / np.sqrt(np.var(seen) + 1e-8), -5.0, 5.0)
        np.testing.assert_allclose(got, want, rtol=1e-5)
    restored = RewardScaler(B, gamma)
    restored.load_state_arrays(scaler.state_arrays())
    assert restored.count == len(seen) and restored.var[0] == pytest.approx(np.var(seen))
