"""The ground truth the tabular tests use: value iteration and exact policy returns."""
import gymnasium as gym
import numpy as np
import pytest

from mpirl.evaluate import evaluate
from mpirl.config import EnvConfig
from mpirl.mdp import optimal_policy, policy_return, tabular_model


def test_frozenlake_optimum_matches_the_known_figure():
    model = tabular_model(gym.make("FrozenLake-v1"))
    pi, ret = optimal_policy(model, horizon=100)
    assert ret == pytest.approx(0.74, abs=0.01)  # the known optimum of 4x4 slippery, 100-step limit


def test_cliffwalking_optimum_is_13_steps():
    model = tabular_model(gym.make("CliffWalking-v1"))
    _, ret = optimal_policy(model, horizon=1000)
    assert ret == pytest.approx(-13.0)


def test_exact_return_agrees_with_rollouts():
    model = tabular_model(gym.make("FrozenLake-v1"))
    pi, exact = optimal_policy(model, horizon=100)
    result = evaluate(lambda s: int(pi[s]), EnvConfig(id="FrozenLake-v1"), episodes=3000, seed=0)
    assert abs(result["episode_return_mean"] - exact) < 4 * np.sqrt(exact * (1 - exact) / 3000)


def test_a_bad_policy_scores_lower():
    model = tabular_model(gym.make("FrozenLake-v1"))
    pi, best = optimal_policy(model, horizon=100)
    assert policy_return(model, np.zeros_like(pi), 100) < best - 0.3
