"""Fault handling without MPI: the non-finite guard and every torch learner skipping through it,
the checkpoint's non-finite check, the silence clock of the comm layer, and the `[fault]` keys."""
import numpy as np
import pytest
import torch

from mpirl.nonfinite import NonFiniteGuard, nan_loss_from, total_grad_norm
from mpirl.algos.a2c.config import A2CConfig
from mpirl.algos.a2c.learner import ActorCriticLearner
from mpirl.algos.dqn.config import DQNConfig
from mpirl.algos.dqn.learner import DQNLearner
from mpirl.algos.dqn.messages import replay_spec
from mpirl.algos.impala.config import ImpalaConfig
from mpirl.algos.impala.learner import ImpalaLearner
from mpirl.checkpoint import nonfinite_arrays
from mpirl.comm.watch import SilenceClock, silent_message
from mpirl.config import parse_config
from mpirl.errors import ConfigError, NonFiniteError
from mpirl.nets import ActorCritic, QNetwork
from mpirl.replay import PrioritizedReplay, ReplayBuffer
from mpirl.specs import DiscreteSpec, EnvSpec

NAN_FROM_3 = {"MPIRL_FAULT": "nan_loss:3"}


# ---------------------------------------------------------------- the guard

def test_guard_counts_skips_and_raises_after_max_in_a_row():
    g = NonFiniteGuard(3, environ={})
    assert g.allow(1.0, np.ones(3), torch.ones(2))
    assert not g.allow(float("nan"))
    assert not g.allow(1.0, torch.tensor([1.0, float("inf")]))
    assert g.allow(2.0)  # a finite update resets the run of skips, not the total
    assert (g.skipped, g.in_a_row) == (2, 0)
    assert not g.allow(np.array([np.nan]))
    assert not g.allow(float("-inf"))
    with pytest.raises(NonFiniteError, match=r"3 updates in a row .*fault\.max_nonfinite = 3; 5 skipped in all"):
        g.allow(float("nan"))
    assert g.metrics() == {"nonfinite_skipped": 5}


def test_guard_with_zero_never_raises():
    g = NonFiniteGuard(0, environ={})
    for _ in range(100):
        assert not g.allow(float("nan"))
    assert g.skipped == 100


def test_fault_switch_makes_the_loss_nan_from_the_kth_computation_on():
    assert nan_loss_from({}) is None and nan_loss_from({"MPIRL_FAULT": "checkpoint_before_rename"}) is None
    assert nan_loss_from({"MPIRL_FAULT": "nan_loss:7"}) == 7
    for bad in ("nan_loss", "nan_loss:0", "nan_loss:x"):
        with pytest.raises(ValueError, match="nan_loss:K"):
            nan_loss_from({"MPIRL_FAULT": bad})
    g = NonFiniteGuard(0, environ=NAN_FROM_3)
    got = [float(g.loss(torch.tensor(2.0))) for _ in range(5)]
    assert got[:2] == [2.0, 2.0] and all(np.isnan(got[2:]))


def test_total_grad_norm():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    assert float(total_grad_norm([a, b])) == pytest.approx(5.0)
    b.grad = torch.tensor([float("nan")])
    assert np.isnan(float(total_grad_norm([a, b])))


# ---------------------------------------------------------------- every learner skips NaN updates

def _dqn(prioritized, max_grad_norm):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    spec = replay_spec(EnvSpec((3,), np.dtype(np.float32), DiscreteSpec(2)))
    mem = PrioritizedReplay(100, spec) if prioritized else ReplayBuffer(100, spec)
    mem.add({"obs": rng.normal(size=(50, 3)).astype(np.float32), "action": rng.integers(2, size=50),
             "reward": rng.normal(size=50).astype(np.float32), "discount": np.full(50, 0.9, np.float32),
             "next_obs": rng.normal(size=(50, 3)).astype(np.float32)})
    a = DQNConfig(hidden=[16], batch_size=8, target_update_period=1, max_grad_norm=max_grad_norm)
    return DQNLearner(a, QNetwork(3, 2, tuple(a.hidden)), mem, np.random.default_rng(1), max_nonfinite=4)


@pytest.mark.parametrize("prioritized", [False, True])
@pytest.mark.parametrize("max_grad_norm", [10.0, 0.0])
def test_dqn_learner_skips_nonfinite_updates(monkeypatch, prioritized, max_grad_norm):
    monkeypatch.setenv("MPIRL_FAULT", "nan_loss:3")
    learner = _dqn(prioritized, max_grad_norm)
    for _ in range(2):
        assert learner.update()["nonfinite_skipped"] == 0
    state = learner.state_dict(with_replay=True)
    for k in range(1, 4):
        m = learner.update()
        assert np.isnan(m["loss"]) and m["nonfinite_skipped"] == k
    assert learner.updates == 2
    after = learner.state_dict(with_replay=True)
    for name, arr in state.items():  # networks, target, optimizer and priorities untouched
        np.testing.assert_array_equal(after[name], arr, err_msg=name)
    with pytest.raises(NonFiniteError, match="fault.max_nonfinite = 4"):
        learner.update()


def _impala_batch(T=5, N=3, obs=2, actions=2, seed=0):
    rng = np.random.default_rng(seed)
    return {"obs": rng.normal(size=(T + 1, N, obs)).astype(np.float32),
            "action": rng.integers(actions, size=(T, N)), "reward": rng.normal(size=(T, N)).astype(np.float32),
            "terminated": np.zeros((T, N), np.uint8), "truncated": np.zeros((T, N), np.uint8),
            "reset": np.zeros((T, N), np.uint8), "policy_params": rng.normal(size=(T, N, actions)).astype(np.float32)}


@pytest.mark.parametrize("max_grad_norm", [40.0, 0.0])
def test_impala_learner_skips_nonfinite_updates(monkeypatch, max_grad_norm):
    monkeypatch.setenv("MPIRL_FAULT", "nan_loss:3")
    torch.manual_seed(0)
    learner = ImpalaLearner(ImpalaConfig(hidden=[8], max_grad_norm=max_grad_norm), ActorCritic(2, 2, (8,)), 1000,
                            max_nonfinite=2)
    batch = _impala_batch()
    for _ in range(2):
        m = learner.update(batch, 10)
        assert m["nonfinite_skipped"] == 0 and np.isfinite(m["grad_norm"])
    state = learner.state_dict()
    m = learner.update(batch, 10)
    assert np.isnan(m["loss"]) and m["nonfinite_skipped"] == 1 and learner.updates == 2
    for name, arr in state.items():
        np.testing.assert_array_equal(learner.state_dict()[name], arr, err_msg=name)
    with pytest.raises(NonFiniteError, match="2 updates in a row"):
        learner.update(batch, 10)


def test_actor_critic_learner_poisons_the_gradient_and_skips_it(monkeypatch):
    """The loss's rank (a worker, a replica) sends an all-NaN gradient; the applying rank skips it."""
    monkeypatch.setenv("MPIRL_FAULT", "nan_loss:2")
    torch.manual_seed(0)
    a = A2CConfig(hidden=[8])
    worker = ActorCriticLearner(a, ActorCritic(2, 2, (8,)), 1000)
    server = ActorCriticLearner(a, ActorCritic(2, 2, (8,)), 1000, max_nonfinite=3)
    server.flat[...] = worker.flat
    unroll = {k: v for k, v in _impala_batch().items() if k != "policy_params"}
    worker.compute_gradient(unroll)
    assert np.isfinite(worker.grad).all()
    server.grad[...] = worker.grad
    assert server.apply_gradient(10)["nonfinite_skipped"] == 0 and server.updates == 1
    state = server.state_dict()
    worker.compute_gradient(unroll)
    assert np.isnan(worker.grad).all()
    for k in (1, 2):
        server.grad[...] = worker.grad
        assert server.apply_gradient(10)["nonfinite_skipped"] == k
    assert server.updates == 1
    for name, arr in state.items():
        np.testing.assert_array_equal(server.state_dict()[name], arr, err_msg=name)
    with pytest.raises(NonFiniteError):
        server.apply_gradient(10)


def test_checkpoint_state_check_names_nonfinite_arrays():
    state = {"net/w": np.ones(3, np.float32), "net/b": np.array([1.0, np.inf]), "optim/x": np.array([np.nan]),
             "steps": np.array([3]), "replay/obs": np.array([np.nan])}
    assert nonfinite_arrays(state) == ["net/b", "optim/x"]
    assert nonfinite_arrays({"q": np.zeros((2, 2))}) == []


# ---------------------------------------------------------------- the silence clock

def test_silence_clock_counts_listening_time_only():
    clock = SilenceClock([1, 2], timeout_s=3.0, now=0.0, startup_s=10.0, max_gap_s=0.5)
    t = 0.0
    for _ in range(40):  # 4 s of polling every 0.1 s; rank 1 delivers every 0.5 s, rank 2 once at the start
        t += 0.1
        clock.tick(t)
        if round(t * 10) % 5 == 0:
            clock.heard_from(1)
        if round(t * 10) == 1:
            clock.heard_from(2)
    assert list(clock.silent()) == [2] and clock.silent()[2] == pytest.approx(3.9)
    clock.heard_from(2)
    clock.tick(t + 60.0)  # rank 0 was busy elsewhere for a minute: counts as one gap of 0.5 s
    assert clock.silent() == {}


def test_silence_clock_gives_the_first_message_the_startup_allowance_and_forgets_finished_sources():
    clock = SilenceClock([1, 2, 3], timeout_s=1.0, now=0.0, startup_s=5.0, max_gap_s=1.0)
    clock.heard_from(1)
    clock.forget(3)
    clock.heard_from(3)  # a late message from a forgotten source changes nothing
    for t in range(1, 5):
        clock.tick(float(t))
    assert list(clock.silent()) == [1]  # rank 2 has not spoken yet: 5 s allowance
    clock.tick(5.0)
    clock.tick(6.0)
    assert sorted(clock.silent()) == [1, 2]
    clock.heard_from(7)  # not a source: ignored
    assert 7 not in clock.heard


def test_silent_message_names_the_ranks_and_the_key():
    assert silent_message({2: 3.1}, 3.0, "x").startswith("rank 2 went silent: x (fault.actor_timeout_s = 3)")
    assert silent_message([3, 1], 60, "y").startswith("ranks 1, 3 went silent")


# ---------------------------------------------------------------- the [fault] keys

def test_fault_keys_have_defaults_and_bounds():
    cfg = parse_config({"algo": "tabular_q"})
    assert cfg.fault.actor_timeout_s == 60.0 and cfg.fault.max_nonfinite == 10
    cfg = parse_config({"algo": "tabular_q", "fault": {"actor_timeout_s": 0, "max_nonfinite": 0}})
    assert cfg.fault.actor_timeout_s == 0.0 and cfg.fault.max_nonfinite == 0
    with pytest.raises(ConfigError, match=r"'fault.actor_timeout_s' must be >= 0.0, got -1"):
        parse_config({"algo": "tabular_q", "fault": {"actor_timeout_s": -1}}, "job.toml")
    with pytest.raises(ConfigError, match=r"'fault.max_nonfinite' must be >= 0"):
        parse_config({"algo": "tabular_q", "fault": {"max_nonfinite": -2}}, "job.toml")
    with pytest.raises(ConfigError, match=r"'fault.actor_timeout_s' must be float"):
        parse_config({"algo": "tabular_q", "fault": {"actor_timeout_s": "soon"}}, "job.toml")
