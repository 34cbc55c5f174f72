"""The shared algorithm layer without MPI: env specs, networks, distributions, flat views, the learner, the loop."""
import copy
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest
import torch

from mpirl.algos._loop import WINDOW, ReturnWindow, stop_reached
from mpirl.algos.impala.messages import unroll_spec
from mpirl.learner import AllreduceMean, Learner
from mpirl.networks import Categorical, NetworkConfig, make_networks
from mpirl.params import FlatParams
from mpirl.rollout import Autoreset, UnrollActor
from mpirl.specs import BoxSpec, DiscreteSpec, spec_from_spaces


class Frames(gym.Env):
    """uint8 frames 4x5x3 whose pixels count the steps; 3 actions; 6 steps an episode."""

    observation_space = gym.spaces.Box(0, 255, (4, 5, 3), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros((4, 5, 3), np.uint8), {}

    def step(self, action):
        self.t += 1
        return np.full((4, 5, 3), self.t, np.uint8), 1.0, self.t >= 6, False, {}


def test_specs_from_spaces():
    s = spec_from_spaces(gym.spaces.Box(-1, 1, (4,), np.float32), gym.spaces.Discrete(2))
    assert s.obs_shape == (4,) and s.obs_kind == "vector" and s.action == DiscreteSpec(2)
    assert s.obs_field(3, 2) == ((3, 2, 4), np.dtype(np.float32)) and s.action.field(3, 2) == ((3, 2), np.int64)
    img = spec_from_spaces(Frames.observation_space, gym.spaces.Box(-2.0, 2.0, (2,), np.float32))
    assert img.obs_kind == "image" and img.obs_field(5) == ((5, 4, 5, 3), np.dtype(np.uint8))
    assert img.action == BoxSpec((2,), (-2.0, -2.0), (2.0, 2.0)) and img.action.field(7) == ((7, 2), np.float32)
    with pytest.raises(TypeError, match="Discrete nor Box"):
        spec_from_spaces(gym.spaces.Box(-1, 1, (4,)), gym.spaces.MultiBinary(3))
    with pytest.raises(TypeError, match="not a Box"):
        spec_from_spaces(gym.spaces.Discrete(4), gym.spaces.Discrete(2))


def test_uint8_frames_stay_uint8_from_the_env_to_the_first_layer():
    envs = gym.vector.SyncVectorEnv([Frames, Frames])
    spec = spec_from_spaces(envs.single_observation_space, envs.single_action_space)
    net = make_networks(spec, NetworkConfig("policy_value", (8,), "tanh"))
    actor = UnrollActor(envs, net.policy, 4, np.random.default_rng(0), net.dist)
    out = actor.unroll()
    assert out["obs"].dtype == np.uint8 and out["obs"].shape == (5, 2, 4, 5, 3)
    msg = unroll_spec(4, 2, spec, net.dist.num_params).allocate()
    assert msg["obs"].dtype == np.uint8 and msg["obs"].shape == (5, 2, 4, 5, 3)
    params, values = net(torch.from_numpy(out["obs"]))  # [T+1, B, *obs_shape] uint8 in, features inside
    assert params.shape == (5, 2, 3) and values.shape == (5, 2)
    np.testing.assert_allclose(params[1, 0].detach().numpy(), net.policy(torch.from_numpy(out["obs"][1]))[0].detach(),
                               rtol=1e-5)


def test_categorical_matches_torch_and_samples_its_softmax():
    torch.manual_seed(0)
    d = Categorical(DiscreteSpec(4))
    logits, actions = torch.randn(6, 5, 4), torch.randint(4, (6, 5))
    ref = torch.distributions.Categorical(logits=logits)
    lp, ent = d.log_prob_and_entropy(logits, actions)
    torch.testing.assert_close(lp, ref.log_prob(actions))
    torch.testing.assert_close(ent, ref.entropy())
    torch.testing.assert_close(d.entropy(logits), ref.entropy())
    assert torch.equal(d.mode(logits), logits.argmax(-1)) and d.num_params == 4
    p = np.array([[0.1, 0.2, 0.3, 0.4]])
    draws = d.sample(np.log(np.repeat(p, 20000, 0)), np.random.default_rng(1))
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 20000, p[0], atol=0.015)


def test_flat_params_alias_buffers_and_notice_a_move():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    flat = FlatParams(net)
    n_params = sum(p.numel() for p in net.parameters())
    assert flat.size == n_params + 8  # BatchNorm's running mean and variance (float), not its int counter
    flat.host()[...] = 0.5
    assert float(net[1].running_var[0]) == 0.5 and float(net[0].weight.detach()[0, 0]) == 0.5
    flat.check()
    net[0].weight.data = net[0].weight.data.clone()  # what .to(device) does to every tensor
    with pytest.raises(RuntimeError, match="moved"):
        flat.check()
    flat.to("cpu")  # flattened again where the module now lives: aliasing restored, values kept
    flat.check()
    assert float(net[0].weight.detach()[0, 0]) == 0.5 and flat.host()[0] == 0.5
    flat.host()[0] = 2.0
    assert float(net[0].weight.detach()[0, 0]) == 2.0
    with pytest.raises(TypeError):
        FlatParams(torch.nn.Linear(2, 2).double())


def test_learner_step_skips_a_nonfinite_loss_and_reduces_with_the_hook(monkeypatch):
    monkeypatch.setenv("MPIRL_FAULT", "nan_loss:2")
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    sums = []

    class FakeWorld:  # two ranks whose gradients are equal: the mean is the gradient itself
        size = 2

        def allreduce(self, buf):
            sums.append(buf[-1])
            buf *= 2

    hook = AllreduceMean(FakeWorld(), 4, tail_fields=("votes",))
    lrn = Learner(net, optimizer="adam", lr=0.1, grad_reduce=hook)
    x = torch.randn(8, 3)
    hook.tail[:] = 1.0
    before = lrn.flat.copy()
    out = lrn.step((net(x) ** 2).mean())
    assert lrn.updates == 1 and out["nonfinite_skipped"] == 0 and not np.array_equal(before, lrn.flat)
    assert hook.sums() == {"votes": 2.0} and sums == [1.0]
    stuck = lrn.flat.copy()
    out = lrn.step((net(x) ** 2).mean())  # the fault switch makes this loss NaN
    assert lrn.updates == 1 and out["nonfinite_skipped"] == 1 and np.array_equal(stuck, lrn.flat)
    other = Learner(copy.deepcopy(net), optimizer="adam", lr=0.1)
    other.load_state_dict(lrn.state_dict())
    np.testing.assert_array_equal(other.flat, lrn.flat)


def test_one_stop_rule_and_the_window():
    cfg = SimpleNamespace(stop=SimpleNamespace(episode_return_mean=10.0))
    w = ReturnWindow([5.0] * 50)
    w.extend(np.full(60, 12.0))
    assert len(w) == WINDOW and w.mean == pytest.approx((40 * 5 + 60 * 12) / 100) and w.state()[-1] == 12.0
    assert not stop_reached(cfg, len(w), w.mean)
    w.extend([12.0] * 40)
    assert stop_reached(cfg, len(w), w.mean) and not stop_reached(cfg, 99, 50.0)
    assert not stop_reached(SimpleNamespace(stop=SimpleNamespace(episode_return_mean=None)), 100, 1e9)
    assert np.isnan(ReturnWindow().mean)


def test_autoreset_bookkeeping():
    ar = Autoreset(2)
    finished = []
    one = ar.step(np.array([1.0, 2.0]), np.array([False, True]), np.array([False, False]), finished)
    assert one[0].tolist() == [False, False] and one[4] == 2 and finished == [2.0]
    two = ar.step(np.array([3.0, 9.0]), np.array([False, False]), np.array([True, False]), finished)
    assert two[0].tolist() == [False, True] and two[1].tolist() == [3.0, 0.0] and two[4] == 1
    assert finished == [2.0, 4.0]  # copy 0's episode: 1 + 3, truncated


def test_the_contract_takes_frames_and_box_actions_and_dqn_refuses_box_naming_env_id():
    from mpirl.algos import dqn, impala
    from mpirl.algos.dqn.config import DQNConfig
    from mpirl.algos.impala.config import ImpalaConfig
    from mpirl.errors import ConfigError

    cfg = SimpleNamespace(algo="impala", agent=ImpalaConfig(hidden=[8], encoder="mlp"),
                          env=SimpleNamespace(id="Frames-v0"))
    shapes = impala.state_shapes(cfg, Frames())  # a uint8 image flattened by the MLP encoder when asked
    assert shapes["net/actor.0.weight"] == (8, 60) and shapes["net/actor.2.weight"] == (3, 8)
    box = Frames()
    box.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    shapes = impala.state_shapes(cfg, box)  # a Gaussian head: means and a state-independent log std
    assert shapes["net/actor.2.mean.weight"] == (2, 8) and shapes["net/actor.2.log_std"] == (2,)
    dcfg = SimpleNamespace(algo="dqn", agent=DQNConfig(), env=SimpleNamespace(id="Frames-v0"))
    with pytest.raises(ConfigError, match="Discrete action space.*Box.*env.id") as e:
        dqn.check_env(dcfg, box)
    assert e.value.key == "env.id"
