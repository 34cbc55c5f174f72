"""PPO's learner without MPI: samples from an unroll, minibatch epochs, KL early stop, state round trip."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from mpirl.algos.ppo.config import PPOConfig, network_config
from mpirl.algos.ppo.learner import PPOLearner
from mpirl.networks import make_networks
from mpirl.rollout import UnrollActor
from mpirl.specs import env_spec


def setup(T=32, envs=4, seed=0, **kw):
    vec = gym.make_vec("CartPole-v1", num_envs=envs)
    vec.reset(seed=seed)
    torch.manual_seed(seed)
    a = PPOConfig(num_steps=T, **kw)
    net = make_networks(env_spec(vec), network_config(a))
    learner = PPOLearner(a, net, total_env_steps=100_000, rng=np.random.default_rng(seed))
    actor = UnrollActor(vec, net.policy, T, np.random.default_rng(seed), net.dist)
    return a, net, learner, actor


def copy_unroll(out):
    return {k: v.copy() for k, v in out.items() if isinstance(v, np.ndarray)}


def test_samples_drop_reset_steps_and_old_log_probs_are_the_behaviour_policy():
    a, net, learner, actor = setup(T=64)
    out = copy_unroll(actor.unroll())
    s = learner.samples(out)
    real = int((out["reset"] == 0).sum())
    assert out["reset"].any(), "the unroll should cross an episode end"
    assert {k: len(v) for k, v in s.items()} == dict.fromkeys(s, real)
    with torch.no_grad():
        params, _ = net(torch.from_numpy(out["obs"][:-1]))
        log_pi = net.dist.log_prob(params, torch.from_numpy(out["action"]))
    keep = torch.from_numpy(out["reset"] == 0).reshape(-1)
    torch.testing.assert_close(s["log_old"], log_pi.reshape(-1)[keep])


def test_an_iteration_raises_the_surrogate_and_takes_epochs_x_minibatches_steps():
    a, net, learner, actor = setup(update_epochs=3, num_minibatches=4, lr=1e-3)
    out = copy_unroll(actor.unroll())
    before = learner.samples(out)
    stats = learner.update(out)
    assert stats["minibatch_steps"] == 12 and learner.updates == 12 and stats["kl_stopped"] == 0
    with torch.no_grad():
        params, _ = net(before["obs"])
        log_pi = net.dist.log_prob(params, before["action"])
    adv = (before["adv"] - before["adv"].mean()) / before["adv"].std()
    ratio = (log_pi - before["log_old"]).exp()
    assert float((ratio * adv).mean()) > 0.0  # the new policy favours the actions with positive advantage
    assert 0.0 < stats["approx_kl"] < 0.1


def test_kl_early_stop_ends_the_iteration_without_applying_that_minibatch():
    a, net, learner, actor = setup(update_epochs=10, num_minibatches=4, lr=1e-2, target_kl=1e-4)
    out = copy_unroll(actor.unroll())
    stats = learner.update(out)
    assert stats["kl_stopped"] == 1
    assert stats["minibatch_steps"] == learner.updates < 40


def test_entropy_cost_falls_linearly_to_its_final_value_and_the_loss_uses_it():
    a, net, learner, actor = setup(entropy_cost=0.05, entropy_cost_final=0.01, lr_decay=False, update_epochs=1,
                                   num_minibatches=1)
    learner.set_lr_for(25_000)
    assert learner.entropy_cost == pytest.approx(0.04)
    out = copy_unroll(actor.unroll())
    s = learner.samples(out)
    parts = learner._loss(s, torch.arange(len(s["ret"])))
    expected = parts.pg_loss + a.value_cost * parts.value_loss - 0.04 * parts.entropy
    torch.testing.assert_close(parts.loss.detach(), expected.detach())
    assert learner.update(out)["entropy_cost"] == pytest.approx(0.04)
    learner.set_lr_for(200_000)
    assert learner.entropy_cost == pytest.approx(0.01)
    _, _, constant, _ = setup(entropy_cost=0.02)
    constant.set_lr_for(90_000)
    assert constant.entropy_cost == 0.02


def test_state_round_trip_continues_identically():
    a, net, one, actor = setup()
    unrolls = [copy_unroll(actor.unroll()) for _ in range(3)]
    one.update(unrolls[0])
    _, _, two, _ = setup(seed=1)
    two.load_state_dict(one.state_dict())
    two.rng = np.random.default_rng(7)
    one.rng = np.random.default_rng(7)
    np.testing.assert_array_equal(two.flat, one.flat)
    for u in unrolls[1:]:
        one.update(u)
        two.update(u)
    np.testing.assert_array_equal(two.flat, one.flat)


def test_config_refuses_bad_values():
    from mpirl.errors import ConfigError

    with pytest.raises(ConfigError, match="ppo.hidden"):
        PPOConfig(hidden=[])
