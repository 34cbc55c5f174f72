"""The frame-deduplicating replay against a slow reference that stores every stack in full.

Data comes from the real n-step actor stepping a tiny frame-stacked pixel env
(random episode lengths, truncations, zero or reset padding) through the real
messages, several actors' streams interleaved; the reference is a
ReplayBuffer of the same capacity fed the full obs/next_obs stacks.
"""
import gymnasium as gym
import h5py
import numpy as np
import pytest
import torch

from mpirl import checkpoint
from mpirl.algos.dqn.config import DQNConfig
from mpirl.algos.dqn.learner import DQNLearner
from mpirl.algos.dqn.messages import fill_trajectory, make_replay, replay_spec, trajectory_spec, transitions
from mpirl.replay import FrameReplay, PrioritizedFrameReplay, PrioritizedReplay, ReplayBuffer
from mpirl.replay.frames import default_stack
from mpirl.rollout import NStepActor
from mpirl.specs import DiscreteSpec, EnvSpec, env_spec

H, W = 6, 5


class PixelEnv(gym.Env):
    """(H, W, k) uint8 frame stacks of random frames; pixel (0, 0) of a frame is its episode, (0, 1) its step.

    Episodes end after 1..max_len steps (terminated) or at ``limit`` (truncated).
    ``pad``: "zero" (FrameStackObservation's default) or "reset" (mpirl.atari.FrameStack).
    """

    action_space = gym.spaces.Discrete(3)

    def __init__(self, k=4, max_len=12, limit=9, pad="zero", dtype=np.uint8):
        self.k, self.max_len, self.limit, self.pad, self.dtype = k, max_len, limit, pad, dtype
        self.observation_space = gym.spaces.Box(0, 1 if dtype == np.bool_ else 255, (H, W, k), dtype)
        self.episode = -1

    def _frame(self):
        if self.dtype == np.bool_:
            return self.np_random.random((H, W)) < 0.5
        f = self.np_random.integers(0, 256, (H, W), dtype=np.uint8)
        f[0, 0], f[0, 1] = self.episode % 256, self.t % 256
        return f

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t, self.length = 0, int(self.np_random.integers(1, self.max_len + 1))
        self.stack = np.zeros((H, W, self.k), self.dtype)
        f = self._frame()
        self.stack[...] = f[..., None] if self.pad == "reset" else 0
        self.stack[..., -1] = f
        return self.stack.copy(), {}

    def step(self, action):
        self.t += 1
        self.stack[..., :-1] = self.stack[..., 1:]
        self.stack[..., -1] = self._frame()
        return self.stack.copy(), 1.0, self.t >= self.length, self.t >= self.limit, {}


class Flat(torch.nn.Module):
    """A Q-network over flattened pixels (any dtype)."""

    def __init__(self, d, actions=3):
        super().__init__()
        self.lin = torch.nn.Linear(d, actions)

    def forward(self, x):
        return self.lin(x.reshape(x.shape[0], -1).float() / 255.0)


def make_actor(seed, num_envs=3, T=4, n=3, **env_kw):
    envs = gym.vector.SyncVectorEnv([lambda: PixelEnv(**env_kw) for _ in range(num_envs)])
    envs.reset(seed=seed)
    torch.manual_seed(seed)
    k = envs.single_observation_space.shape[-1]
    actor = NStepActor(envs, Flat(H * W * k), rollout_steps=T, n_step=n, gamma=0.9, rng=np.random.default_rng(seed))
    msg = trajectory_spec(T * num_envs, env_spec(envs), history=(T + n, num_envs)).allocate()
    return actor, msg


def feed(replays, ref, rounds, seed=0, actors=2, order_seed=1, **kw):
    """Interleave ``rounds`` messages of ``actors`` actors (random order) into ``replays`` and ``ref``."""
    pool = [make_actor(seed + a, **kw) for a in range(actors)]
    order = np.random.default_rng(order_seed).integers(0, actors, rounds)
    for a in order:
        actor, msg = pool[a]
        out = actor.collect(epsilon=1.0)
        fill_trajectory(msg, out)
        batch = transitions(msg, source=int(a) + 1)
        pri = np.random.default_rng(len(ref)).random(len(batch["row"])) + 0.1
        for rep in replays:
            rep.add(batch, pri) if hasattr(rep, "update_priorities") else rep.add(batch)
        h, c = batch["history"], batch["column"]
        rows = {"obs": h[batch["row"], c], "next_obs": h[batch["boot"], c],
                **{f: batch[f] for f in ("action", "reward", "discount")}}
        ref.add(rows, pri) if hasattr(ref, "update_priorities") else ref.add(rows)
    return pool


def spec_of(k=4, dtype=np.uint8):
    return replay_spec(EnvSpec((H, W, k), np.dtype(dtype), DiscreteSpec(3)))


def assert_same_rows(rep, ref, idx):
    got, want = rep.get(idx), ref.get(idx)
    assert set(got) == set(want)
    for f in want:
        assert got[f].shape == want[f].shape and got[f].dtype == want[f].dtype, f
        np.testing.assert_array_equal(np.ascontiguousarray(got[f]), want[f], err_msg=f)


@pytest.mark.parametrize("pad", ["zero", "reset"])
@pytest.mark.parametrize("cap", [5000, 97])  # everything, and many ring wrap-arounds
def test_every_live_row_is_bitwise_the_inserted_stacks(pad, cap):
    rep, ref = FrameReplay(cap, spec_of()), ReplayBuffer(cap, spec_of())
    feed([rep], ref, rounds=60, pad=pad)
    assert len(rep) == len(ref) and rep.stack == 4
    assert_same_rows(rep, ref, np.arange(len(rep)))
    assert rep.frames_per_transition < 2.5  # shared: 4 per transition without sharing (8 with next_obs)
    idx, batch = rep.sample(64, np.random.default_rng(0))
    assert rep.live(idx).all() and batch["obs"].shape == (64, H, W, 4)


def test_streams_survive_a_restart_and_obs_pixels_tell_episode_and_step():
    rep, ref = FrameReplay(5000, spec_of()), ReplayBuffer(5000, spec_of())
    pool = feed([rep], ref, rounds=20, actors=1)
    # A restarted actor (a resumed run): same source, new episodes; overlap rows no longer match.
    pool[0] = make_actor(7)
    actor, msg = pool[0]
    for _ in range(5):
        fill_trajectory(msg, actor.collect(1.0))
        batch = transitions(msg, source=1)
        rep.add(batch)
        h, c = batch["history"], batch["column"]
        ref.add({"obs": h[batch["row"], c], "next_obs": h[batch["boot"], c],
                 **{f: batch[f] for f in ("action", "reward", "discount")}})
    assert_same_rows(rep, ref, np.arange(len(rep)))
    obs = rep.get(np.arange(len(rep)))
    newest = obs["obs"][..., -1]
    # next_obs is 1..n steps later in the same episode (or its true final observation).
    assert (obs["next_obs"][..., -1][:, 0, 0] == newest[:, 0, 0]).all()
    steps = obs["next_obs"][..., -1][:, 0, 1].astype(int) - newest[:, 0, 1]
    assert steps.min() >= 1 and steps.max() <= 3


def test_frame_pressure_evicts_oldest_and_keeps_the_rest_exact():
    # Episodes of 1-2 steps share few frames: with a tight frame ring the frames run out first.
    rep = FrameReplay(400, spec_of(), frame_capacity=600)
    ref = ReplayBuffer(400, spec_of())
    feed([rep], ref, rounds=80, max_len=2, limit=2)
    assert 0 < len(rep) < len(ref)
    live = (rep._tail + np.arange(len(rep))) % rep.capacity
    assert_same_rows(rep, ref, live)
    assert not rep.live((rep._tail - 1 - np.arange(5)) % rep.capacity).any()


def test_prioritized_matches_the_row_reference_draw_for_draw():
    rep, ref = PrioritizedFrameReplay(150, spec_of()), PrioritizedReplay(150, spec_of())
    feed([rep], ref, rounds=50)
    assert len(rep) == len(ref) == 150
    for seed in range(3):
        i1, b1, w1 = rep.sample(32, 0.5, np.random.default_rng(seed))
        i2, b2, w2 = ref.sample(32, 0.5, np.random.default_rng(seed))
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(w1, w2)
        for f in b2:
            np.testing.assert_array_equal(np.ascontiguousarray(b1[f]), b2[f])
    rep.update_priorities(i1, np.arange(32.0))
    ref.update_priorities(i2, np.arange(32.0))
    np.testing.assert_array_equal(rep.priorities(np.arange(150)), ref.priorities(np.arange(150)))


def test_prioritized_probabilities_and_evicted_rows_stay_at_zero():
    rep = PrioritizedFrameReplay(300, spec_of(), alpha=1.0, frame_capacity=500)
    feed([rep], ReplayBuffer(300, spec_of()), rounds=80, max_len=2, limit=2)
    rows = np.arange(rep.capacity)
    live = rep.buffer.live(rows)
    assert 0 < live.sum() < rep.capacity
    assert (rep.priorities(rows[~live]) == 0).all() and (rep.priorities(rows[live]) > 0).all()
    rep.update_priorities(rows[~live][:5], np.full(5, 100.0))  # late updates do not bring rows back
    assert (rep.priorities(rows[~live]) == 0).all()
    idx, _, _ = rep.sample(20000, 0.4, np.random.default_rng(0))
    freq = np.bincount(idx, minlength=rep.capacity) / len(idx)
    p = rep.priorities(rows) / rep.priorities(rows).sum()
    assert freq[~live].sum() == 0
    np.testing.assert_allclose(freq, p, atol=0.004)


@pytest.mark.parametrize("prioritized, slab", [(False, None), (True, None), (True, 2048)])
def test_state_dict_round_trip_through_a_checkpoint_file(tmp_path, monkeypatch, prioritized, slab):
    if slab:  # big arrays are written and hashed in slabs: same file contents, same checksum
        monkeypatch.setattr(checkpoint, "_SLAB_BYTES", slab)
    make = (lambda: PrioritizedFrameReplay(120, spec_of())) if prioritized else (lambda: FrameReplay(120, spec_of()))
    a, ref = make(), (PrioritizedReplay if prioritized else ReplayBuffer)(120, spec_of())
    pool = feed([a], ref, rounds=30)
    d, mem = a.state_dict(), getattr(a, "buffer", a)
    assert np.shares_memory(d["frames"], mem._frames) and np.shares_memory(d["refs"], mem._refs)
    path = checkpoint.save(str(tmp_path), 1, {f"replay/{k}": v for k, v in d.items()}, {"env_steps": 1}, {},
                           "dqn", "Pixel-v0", {}, "")
    state = checkpoint.load(path).state
    with h5py.File(path, "r") as f, monkeypatch.context() as m:
        m.setattr(checkpoint, "_SLAB_BYTES", 1 << 60)  # the whole-array form of older checkpoints
        assert checkpoint._checksum(f) == f.attrs["checksum"]
    b = make()
    b.load_state_dict({k[len("replay/"):]: v for k, v in state.items()})
    for src, (actor, msg) in enumerate(pool, 1):  # both continue alike, sharing frames across the restore
        fill_trajectory(msg, actor.collect(1.0))
        for rep in (a, b):
            rep.add(transitions(msg, source=src))
    assert len(a) == len(b) and a.frames_per_transition == b.frames_per_transition
    args = (16, 0.4) if prioritized else (16,)
    i1, b1, *_ = a.sample(*args, np.random.default_rng(3))
    i2, b2, *_ = b.sample(*args, np.random.default_rng(3))
    np.testing.assert_array_equal(i1, i2)
    for f in b1:
        np.testing.assert_array_equal(b1[f], b2[f])
    with pytest.raises(ValueError):
        FrameReplay(121, spec_of()).load_state_dict(a.state_dict())


def test_bool_observations_are_one_frame_each():
    spec = spec_of(dtype=np.bool_)
    assert default_stack((10, 10, 4), np.bool_) == 1 and default_stack((84, 84, 4), np.uint8) == 4
    assert default_stack((96, 96, 3), np.uint8) == 1 and default_stack((4, 84, 84), np.uint8) == 1
    rep, ref = FrameReplay(500, spec), ReplayBuffer(500, spec)
    feed([rep], ref, rounds=25, dtype=np.bool_)
    assert rep.stack == 1 and rep.frames_per_transition < 1.6  # obs and next_obs share: one frame each
    assert_same_rows(rep, ref, np.arange(len(rep)))


def test_k1_stack_of_uint8_and_sizes():
    rep, ref = FrameReplay(300, spec_of(), stack=1), ReplayBuffer(300, spec_of())
    feed([rep], ref, rounds=25)
    assert_same_rows(rep, ref, np.arange(len(rep)))
    big = PrioritizedFrameReplay(200_000, replay_spec(EnvSpec((84, 84, 4), np.dtype(np.uint8), DiscreteSpec(6))))
    assert big.bytes_per_transition <= 1.1 * 84 * 84  # frames, slots, keys, fields and the sum tree


def test_messages_keep_the_vector_layout_and_carry_images_once():
    vec = EnvSpec((4,), np.dtype(np.float32), DiscreteSpec(2))
    assert list(trajectory_spec(8, vec, history=(5, 2)).fields) == [
        "obs", "action", "reward", "discount", "next_obs", "valid", "priority", "steps", "episodes",
        "episode_returns"]
    img = trajectory_spec(8, EnvSpec((H, W, 4), np.dtype(np.uint8), DiscreteSpec(3)), history=(7, 2))
    assert img.fields["history"] == ((7, 2, H, W, 4), np.dtype(np.uint8)) and "obs" not in img.fields
    assert isinstance(make_replay(10, vec), ReplayBuffer)
    assert isinstance(make_replay(10, vec, prioritized=True), PrioritizedReplay)
    assert isinstance(make_replay(10, EnvSpec((H, W, 4), np.dtype(np.uint8), DiscreteSpec(3)), True),
                      PrioritizedFrameReplay)


def test_actor_priorities_from_history_match_obs_and_next_obs():
    actor, _ = make_actor(0)
    for _ in range(3):
        out = actor.collect(1.0)
    h, B = out["history"], out["history"].shape[1]
    slots = np.arange(len(out["boot"]))
    rows = {"obs": h[slots // B, slots % B], "next_obs": h[out["boot"], slots % B],
            "action": out["action"], "reward": out["reward"], "discount": out["discount"]}
    np.testing.assert_allclose(actor.priorities(out), actor.priorities(rows), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("prioritized", [False, True])
def test_dqn_learner_updates_from_the_frame_replay(prioritized):
    a = DQNConfig(hidden=[8], batch_size=16, target_update_period=2)
    mem = make_replay(200, EnvSpec((H, W, 4), np.dtype(np.uint8), DiscreteSpec(3)), prioritized)
    feed([mem], ReplayBuffer(200, spec_of()), rounds=10)
    torch.manual_seed(0)
    learner = DQNLearner(a, Flat(H * W * 4), mem, np.random.default_rng(0))
    for _ in range(3):
        m = learner.update()
    assert np.isfinite(m["loss"]) and learner.updates == 3
    assert set(learner.state_dict(with_replay=True)) >= {"replay/frames", "replay/refs"}


def test_bad_layouts_and_batches_raise():
    with pytest.raises(ValueError, match="stack"):
        FrameReplay(10, spec_of(), stack=2)
    with pytest.raises(ValueError, match="uint8 or bool"):
        FrameReplay(10, replay_spec(EnvSpec((H, W, 4), np.dtype(np.float32), DiscreteSpec(3))))
    rep = FrameReplay(10, spec_of())
    hist = np.zeros((3, 2, H, W, 4), np.uint8)
    good = {"history": hist, "row": np.array([0]), "column": np.array([1]), "boot": np.array([2]),
            "action": np.array([1]), "reward": np.ones(1, np.float32), "discount": np.ones(1, np.float32)}
    assert len(rep.add(good)) == 1
    with pytest.raises(ValueError, match="boot"):
        rep.add(dict(good, boot=np.array([3])))
    with pytest.raises(ValueError, match="history"):
        rep.add(dict(good, history=hist.astype(bool)))
    with pytest.raises(KeyError):
        rep.add({k: v for k, v in good.items() if k != "reward"})
    with pytest.raises(ValueError, match="does not fit"):
        FrameReplay(10, spec_of(), frame_capacity=8).add(good)
