"""Box actions end to end under real mpirun: PPO with synchronised observation and reward normalisers (stored,
resumed, applied by eval), and every policy-gradient algorithm on Pendulum-v1."""
import json
import os

import numpy as np
import pytest
import torch

from mpirl import checkpoint
from mpirl.config import from_dict

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
QUIET = ["--set", "log.interval_s=0", "--set", "log.tensorboard=false"]

PENDULUM = """algo = "{algo}"
seed = 0
total_env_steps = {steps}
[env]
id = "Pendulum-v1"
num_envs = 2
[eval]
episodes = 2
"""


def test_ppo_normalisers_are_shared_stored_resumed_and_used_by_eval(run_mpirl, write_job, tmp_path):
    job = write_job(PENDULUM.format(algo="ppo", steps=1200) + "[ppo]\nnum_steps = 100\nnorm_obs = true\n"
                    "norm_reward = true\n")
    run = str(tmp_path / "run")
    p = run_mpirl(["train", job, "--run-dir", run] + QUIET, n=2, timeout=120)
    assert p.returncode == 0, p.stderr
    first = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    steps = first.counters["env_steps"]
    assert steps >= 1200
    # Every rank's observations and returns entered the statistics once: they are the whole run's.
    assert float(first.state["net/obs_norm.count"][0]) == steps
    assert float(first.state["reward_norm/count"][0]) == steps
    assert first.state["net/obs_norm.var"][2] > 1.0  # the angular velocity spreads beyond the identity's 1
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", "total_env_steps=2000"] + QUIET, n=2,
                  timeout=120)
    assert p.returncode == 0, p.stderr
    second = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert second.counters["env_steps"] >= 2000
    assert float(second.state["net/obs_norm.count"][0]) == second.counters["env_steps"]
    assert float(second.state["reward_norm/count"][0]) == second.counters["env_steps"]

    # The greedy policy mpirl eval plays normalises with the stored statistics and clips to the Box.
    from mpirl.algos import ppo

    cfg = from_dict(second.config)
    policy = ppo.greedy_policy(second.state, cfg)
    s = second.state
    obs = np.array([0.6, -0.8, 3.5], np.float32)
    x = np.clip((obs - s["net/obs_norm.mean"]) / np.sqrt(s["net/obs_norm.var"] + 1e-8), -10, 10)
    h = torch.from_numpy(x.astype(np.float32))
    for i in (0, 2):
        h = torch.tanh(h @ torch.from_numpy(s[f"net/net.actor.{i}.weight"]).T + torch.from_numpy(s[f"net/net.actor.{i}.bias"]))
    mean = h @ torch.from_numpy(s["net/net.actor.4.mean.weight"]).T + torch.from_numpy(s["net/net.actor.4.mean.bias"])
    np.testing.assert_allclose(policy(obs), np.clip(mean.numpy(), -2.0, 2.0), rtol=1e-5, atol=1e-6)
    out = run_mpirl(["eval", run, "--episodes", "2"], n=None, timeout=60)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["episodes"] == 2 and got["episode_length_mean"] == 200.0 and got["episode_return_mean"] < 0


@pytest.mark.parametrize("algo,n", [("a2c", 2), ("a3c", 2), ("gossip_a2c", 2), ("impala", 2), ("ppo", 1)])
def test_every_policy_gradient_algorithm_trains_on_box_actions(run_mpirl, write_job, tmp_path, algo, n):
    run = str(tmp_path / "run")
    p = run_mpirl(["train", write_job(PENDULUM.format(algo=algo, steps=1500)), "--run-dir", run] + QUIET,
                  n=n, timeout=120)
    assert p.returncode == 0, p.stderr
    ck = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert ck.counters["env_steps"] >= 1500
    log_std = [k for k in ck.state if k.endswith("log_std") and k.startswith("net/")]
    assert len(log_std) == 1 and ck.state[log_std[0]].shape == (1,)
    with open(os.path.join(run, "eval.json")) as f:
        result = json.load(f)
    assert result["episodes"] == 2 and -2000 < result["episode_return_mean"] < 0
