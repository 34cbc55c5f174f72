"""stop.greedy_episodes: a training return at the threshold stops the run only if the greedy policy agrees."""
import os
from types import SimpleNamespace

import pytest

from mpirl.algos.a2c.learner import ActorCriticLearner
from mpirl.config import load_job
from mpirl.nets import ActorCritic
from mpirl.run import RunContext

JOB = os.path.join(os.path.dirname(__file__), "..", "..", "jobs", "cartpole_a2c.toml")


def fake_ctx(threshold, episodes):
    cfg = load_job(JOB, [f"stop.episode_return_mean={threshold}", f"stop.greedy_episodes={episodes}"])
    messages = []
    ctx = SimpleNamespace(cfg=cfg, world=SimpleNamespace(is_learner=True, bcast_json=lambda v: v),
                          logger=SimpleNamespace(message=messages.append), _next_greedy_check=0)
    ctx._greedy_check = lambda state, n, ep: RunContext._greedy_check(ctx, state, n, ep)
    learner = ActorCriticLearner(cfg.agent, ActorCritic(4, 2, tuple(cfg.agent.hidden)), cfg.total_env_steps)
    return ctx, learner, messages


def test_an_untrained_greedy_policy_does_not_confirm_and_the_next_check_waits():
    ctx, learner, messages = fake_ctx(490.0, 3)
    calls = []

    def state():
        calls.append(1)
        return learner.state_dict()

    assert RunContext.stop_confirmed(ctx, state, 1000) is False
    assert len(calls) == 1 and "greedy check over 3 episodes" in messages[0] and messages[0].endswith("continue")
    assert RunContext.stop_confirmed(ctx, state, 1099) is False  # within the next 100 episodes: no evaluation
    assert len(calls) == 1 and len(messages) == 1
    RunContext.stop_confirmed(ctx, state, 1100)
    assert len(calls) == 2


def test_a_greedy_policy_above_the_threshold_confirms():
    ctx, learner, messages = fake_ctx(5.0, 2)  # any CartPole policy lasts 5 steps
    assert RunContext.stop_confirmed(ctx, learner.state_dict, 10) is True
    assert messages[0].endswith("-> stop")


def test_off_by_default_never_evaluates():
    ctx, learner, _ = fake_ctx(490.0, 0)
    assert RunContext.stop_confirmed(ctx, lambda: pytest.fail("evaluated"), 10) is True
