"""IMPALA parts without MPI: the actor's unrolls across autoresets, the masked V-trace loss, the learner's state."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from mpirl.algos.impala.config import ImpalaConfig
from mpirl.algos._schedules import linear_anneal, lr_at
from mpirl.algos.impala.learner import ImpalaLearner
from mpirl.algos.impala.messages import UnrollBatch, fill_unroll, unroll_spec
from mpirl.functional import unroll_discounts, vtrace
from mpirl.functional import impala_loss as impala_loss_lp
from mpirl.nets import ActorCritic
from mpirl.networks import Categorical
from mpirl.rollout import UnrollActor
from mpirl.specs import DiscreteSpec, EnvSpec


class Counter(gym.Env):
    """obs = [episode id, t]; reward = t + 1; terminates after `length` steps or truncates at `limit`."""

    observation_space = gym.spaces.Box(-1e9, 1e9, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length, limit):
        self.length, self.limit, self.episode, self.t = length, limit, -1, 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return np.array([self.episode, 0], np.float32), {}

    def step(self, action):
        self.t += 1
        obs = np.array([self.episode, self.t], np.float32)
        return obs, float(self.t), self.t >= self.length, self.t >= self.limit, {}


def impala_loss(logits, values, behaviour_logits, actions, *args, **kwargs):
    """The loss on log-probabilities, from the logits of a Categorical policy."""
    dist = Categorical(DiscreteSpec(logits.shape[-1]))
    T = actions.shape[0]
    log_pi, entropy = dist.log_prob_and_entropy(logits[:T], actions)
    return impala_loss_lp(log_pi, dist.log_prob(behaviour_logits, actions), entropy, values, *args, **kwargs)


def learner(a, total_env_steps, **kw):
    return ImpalaLearner(a, ActorCritic(2, 2, tuple(a.hidden)), total_env_steps, **kw)


def make_actor(length, limit, T, envs=2):
    vec = gym.vector.SyncVectorEnv([lambda i=i: Counter(length + i, limit) for i in range(envs)])
    return UnrollActor(vec, torch.nn.Linear(2, 2), T, np.random.default_rng(0))


@pytest.mark.parametrize("length, limit, T", [(3, 100, 4), (5, 3, 7), (4, 100, 1), (2, 2, 5)])
def test_unrolls_chain_and_flag_the_reset_steps(length, limit, T):
    actor = make_actor(length, limit, T)
    prev_last, prev_done = None, np.zeros(2, bool)
    for _ in range(9):
        out = actor.unroll()
        obs, reset = out["obs"], out["reset"].astype(bool)
        if prev_last is not None:
            np.testing.assert_array_equal(obs[0], prev_last)  # the last obs of an unroll is the first of the next
        prev_last = obs[T].copy()
        for t in range(T):
            for b in range(2):
                ep, step = obs[t, b]
                nep, nstep = obs[t + 1, b]
                assert reset[t, b] == prev_done[b]  # exactly the steps right after an episode's end
                if reset[t, b]:  # only the reset: from the final obs to a new episode's first, nothing earned
                    assert (nep, nstep) == (ep + 1, 0) and out["reward"][t, b] == 0
                    assert not out["terminated"][t, b] and not out["truncated"][t, b]
                else:  # a real transition of the same episode
                    assert (nep, nstep) == (ep, step + 1) and out["reward"][t, b] == step + 1
                    assert bool(out["terminated"][t, b]) == (step + 1 == length + b)
                    assert bool(out["truncated"][t, b]) == (step + 1 == limit)
                prev_done[b] = not reset[t, b] and step + 1 == min(length + b, limit)
        assert out["steps"] == int((~reset).sum())


def test_actor_reports_returns_and_real_steps():
    actor = make_actor(4, 100, T=10, envs=1)
    out = actor.unroll()
    assert out["episode_returns"] == [10.0, 10.0]  # 1+2+3+4 twice in 10 calls, each followed by its reset step
    assert out["steps"] == 8  # the two reset steps are no env steps
    assert out["reset"][:, 0].tolist() == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]


def test_logits_recorded_are_the_policy_that_sampled():
    torch.manual_seed(0)
    actor = make_actor(50, 100, T=200, envs=2)
    out = actor.unroll()
    with torch.no_grad():
        expected = actor.policy(torch.from_numpy(out["obs"][:200].reshape(-1, 2))).numpy().reshape(200, 2, 2)
    np.testing.assert_allclose(out["policy_params"], expected, rtol=1e-6, atol=1e-6)
    # Sampled from softmax(logits): the empirical frequency of action 1 matches its mean probability.
    p1 = torch.softmax(torch.from_numpy(out["policy_params"]), -1)[..., 1].numpy()
    assert abs(out["action"].mean() - p1.mean()) < 0.08


# ---------------------------------------------------------------- the loss on a hand-made unroll

def hand_unroll():
    """One env copy, T = 5: steps 0-1 end an episode by truncation at step 1, step 2 is the reset step,
    steps 3-4 run a new episode that terminates at step 4. Rewards 1 on real steps."""
    reset = torch.tensor([[0], [0], [1], [0], [0]], dtype=torch.uint8)
    terminated = torch.tensor([[0], [0], [0], [0], [1]], dtype=torch.uint8)
    rewards = torch.tensor([[1.0], [1.0], [0.0], [1.0], [1.0]])
    values = torch.tensor([[10.0], [20.0], [30.0], [40.0], [50.0], [60.0]])  # V(x_0..x_5); x_2 is the final obs
    return reset, terminated, rewards, values


def test_discounts_cut_at_terminations_and_reset_steps():
    reset, terminated, _, _ = hand_unroll()
    assert unroll_discounts(terminated, reset, 0.9)[:, 0].tolist() == pytest.approx([0.9, 0.9, 0.0, 0.9, 0.0])


def test_on_policy_targets_bootstrap_truncation_and_stop_at_termination_and_reset():
    reset, terminated, rewards, values = hand_unroll()
    g = 0.9
    logits = torch.zeros(6, 1, 2)  # on-policy: behaviour == target, rho = 1
    out = impala_loss(logits, values, logits[:5], torch.zeros(5, 1, dtype=torch.long), rewards, terminated, reset,
                      g, baseline_cost=0.5, entropy_cost=0.0)
    vs = out.vs[:, 0].tolist()
    assert vs[1] == pytest.approx(1 + g * 30.0)            # truncated: bootstraps from V(final obs) = V(x_2)
    assert vs[0] == pytest.approx(1 + g * vs[1])            # n-step return through the truncation step
    assert vs[2] == pytest.approx(30.0)                     # the reset step: its own value, no target of its own
    assert vs[4] == pytest.approx(1.0)                      # terminated: no bootstrap from V(x_5) = 60
    assert vs[3] == pytest.approx(1 + g * 1.0)              # the new episode does not see the old one
    # Value loss: mean of 0.5 (v_s - V)^2 over the 4 real steps; the reset step is not counted.
    real = [0, 1, 3, 4]
    expected = sum(0.5 * (vs[t] - values[t, 0].item()) ** 2 for t in real) / 4
    assert out.baseline_loss.item() == pytest.approx(expected, rel=1e-6)


def test_reset_step_carries_no_gradient_and_its_action_is_irrelevant():
    reset, terminated, rewards, values = hand_unroll()
    logits = torch.randn(6, 1, 2, requires_grad=True)
    vals = values.clone().requires_grad_(True)
    behaviour = torch.randn(5, 1, 2)
    actions = torch.tensor([[0], [1], [0], [1], [0]])
    out = impala_loss(logits, vals, behaviour, actions, rewards, terminated, reset, 0.9, 0.5, 0.01)
    out.loss.backward()
    assert torch.all(logits.grad[2] == 0) and vals.grad[2].item() == 0  # the reset step
    assert torch.all(logits.grad[5] == 0) and vals.grad[5].item() == 0  # bootstrap row: a target, not trained
    flipped = actions.clone()
    flipped[2] = 1 - flipped[2]
    other = impala_loss(logits.detach(), values, behaviour, flipped, rewards, terminated, reset, 0.9, 0.5, 0.01)
    assert other.loss.item() == pytest.approx(out.loss.item(), rel=1e-6)
    assert torch.allclose(other.vs, out.vs)


def test_off_policy_loss_matches_vtrace_on_the_real_steps():
    torch.manual_seed(1)
    T, B, A = 7, 3, 4
    logits, behaviour = torch.randn(T + 1, B, A), torch.randn(T, B, A)
    values, rewards = torch.randn(T + 1, B), torch.randn(T, B)
    actions = torch.randint(A, (T, B))
    terminated = (torch.rand(T, B) < 0.2).to(torch.uint8)
    reset = torch.zeros(T, B, dtype=torch.uint8)  # no reset steps: the plain V-trace of the paper
    out = impala_loss(logits, values, behaviour, actions, rewards, terminated, reset, 0.95, 0.5, 0.0, 1.0, 1.0)
    logp = torch.log_softmax(logits[:T], -1).gather(-1, actions[..., None])[..., 0]
    logmu = torch.log_softmax(behaviour, -1).gather(-1, actions[..., None])[..., 0]
    ref = vtrace(logp - logmu, 0.95 * (1 - terminated.float()), rewards, values[:T], values[T])
    assert torch.allclose(out.vs, ref.vs, atol=1e-6)
    assert out.pg_loss.item() == pytest.approx(-(logp * ref.pg_advantages).mean().item(), rel=1e-5)


# ---------------------------------------------------------------- messages, learner

def test_batch_places_unrolls_side_by_side():
    actor = make_actor(3, 100, T=4)
    spec = unroll_spec(4, 2, EnvSpec((2,), np.dtype(np.float32), DiscreteSpec(2)), 2)
    batch = UnrollBatch(spec, batch_size=2)
    msgs = [spec.allocate() for _ in range(2)]
    for v, m in enumerate(msgs):
        out = actor.unroll()
        fill_unroll(m, out, version=v + 7)
        assert int(m["episodes"]) == len(out["episode_returns"]) and int(m["steps"]) == out["steps"]
        assert batch.add(m) is (v == 1)
    assert batch.versions.tolist() == [7, 8]
    np.testing.assert_array_equal(batch.arrays["obs"][:, 2:], msgs[1]["obs"])
    np.testing.assert_array_equal(batch.arrays["reset"][:, :2], msgs[0]["reset"])


def test_lr_decays_linearly_to_zero():
    a = ImpalaConfig(lr=1e-3)
    assert [lr_at(a, s, 1000) for s in (0, 500, 1000, 2000)] == pytest.approx([1e-3, 5e-4, 0.0, 0.0])
    assert lr_at(ImpalaConfig(lr=1e-3, lr_decay=False), 900, 1000) == 1e-3


def test_entropy_cost_anneals_linearly_to_its_final_value():
    assert [linear_anneal(0.05, 0.01, s, 1000) for s in (0, 500, 1000, 2000)] == pytest.approx([0.05, 0.03, 0.01, 0.01])
    assert linear_anneal(0.05, None, 900, 1000) == 0.05


def test_learner_loss_uses_the_scheduled_entropy_cost():
    # loss = pg + baseline - cost * entropy on the same batch and weights: the costs the schedule gives
    # at 0, 500 and 1000 steps (0.05, 0.03, 0.01) must show in the loss as -cost * entropy.
    actor = make_actor(5, 100, T=6)
    out = actor.unroll()
    batch = {k: out[k].copy() for k in ("obs", "action", "reward", "terminated", "reset", "policy_params")}
    rows = {}
    for steps in (0, 500, 1000):
        torch.manual_seed(0)
        lrn = learner(ImpalaConfig(hidden=[8], entropy_cost=0.05, entropy_cost_final=0.01), total_env_steps=1000)
        rows[steps] = lrn.update(batch, steps)
    assert [rows[s]["entropy_cost"] for s in (0, 500, 1000)] == pytest.approx([0.05, 0.03, 0.01])
    for s in (500, 1000):
        r0, r = rows[0], rows[s]
        assert r["loss"] - r0["loss"] == pytest.approx((0.05 - r["entropy_cost"]) * r0["entropy"], rel=1e-4)


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_learner_state_round_trip_continues_identically(optimizer):
    a = ImpalaConfig(hidden=[8], optimizer=optimizer, lr=1e-2)
    actor = make_actor(5, 100, T=6)
    batches = []
    for _ in range(4):
        out = actor.unroll()
        batches.append({k: out[k].copy() for k in ("obs", "action", "reward", "terminated", "reset",
                                                     "policy_params")})
    torch.manual_seed(0)
    one = learner(a, total_env_steps=1000)
    for b in batches[:2]:
        one.update(b, 100)
    torch.manual_seed(1)
    two = learner(a, total_env_steps=1000)
    two.load_state_dict(one.state_dict())
    np.testing.assert_array_equal(two.weights(), one.weights())
    for b in batches[2:]:
        m1, m2 = one.update(b, 600), two.update(b, 600)
        assert m1["lr"] == m2["lr"] == pytest.approx(4e-3)
    np.testing.assert_array_equal(two.weights(), one.weights())
    assert not np.array_equal(one.weights(), learner(a, 1000).weights())


def test_reward_scale_scales_the_value_targets():
    # With the critic's output layer zeroed V = 0, so the targets are the scaled discounted rewards and the
    # value loss 0.5 mean(v_s^2) grows with the square of reward_scale.
    actor = make_actor(5, 100, T=6)
    out = actor.unroll()
    batch = {k: out[k].copy() for k in ("obs", "action", "reward", "terminated", "reset", "policy_params")}
    losses = []
    for scale in (1.0, 0.1):
        torch.manual_seed(0)  # the same policy, hence the same importance weights
        lrn = learner(ImpalaConfig(hidden=[8], reward_scale=scale), total_env_steps=1000)
        with torch.no_grad():
            lrn.net.critic[-1].weight.zero_()
            lrn.net.critic[-1].bias.zero_()
        losses.append(lrn.update(batch, 0)["baseline_loss"])
    assert losses[0] > 1.0
    assert losses[1] == pytest.approx(0.01 * losses[0], rel=1e-5)
