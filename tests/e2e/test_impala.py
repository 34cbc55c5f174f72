"""IMPALA end to end under real mpirun: clean shutdown with policy lag logged, resume, CartPole learning."""
import csv
import json
import math
import os

import pytest

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from mpirl import checkpoint

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
JOB = os.path.join(ROOT, "jobs", "cartpole_impala.toml")
SMALL = ["--set", "env.num_envs=8", "--set", "log.interval_s=0", "--set", "log.tensorboard=false", "--no-eval"]


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("n", [2, 3])
def test_impala_runs_and_shuts_down_cleanly(run_mpirl, tmp_path, n):
    run = str(tmp_path / "run")
    p = run_mpirl(["train", JOB, "--run-dir", run, "--set", "total_env_steps=20000",
                   "--set", "stop.episode_return_mean=1000"] + SMALL, n=n, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.elapsed < 60, p.elapsed
    rows = metrics(run)
    last = rows[-1]
    assert int(last["env_steps"]) >= 20000 and int(last["updates"]) > 0 and int(last["episodes"]) > 0
    lags = [float(r["policy_lag"]) for r in rows if r["policy_lag"]]
    assert lags and all(math.isfinite(x) and x >= 0 for x in lags)
    ck = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert ck.algo == "impala" and ck.counters["env_steps"] == int(last["env_steps"])
    assert "net/actor.0.weight" in ck.state and "net/critic.0.weight" in ck.state
    assert "optim/param_groups_json" in ck.state


def test_impala_resume_continues_counters_optimizer_and_schedule(run_mpirl, tmp_path):
    run = str(tmp_path / "run")
    common = ["--set", "stop.episode_return_mean=1000"] + SMALL
    p = run_mpirl(["train", JOB, "--run-dir", run, "--set", "total_env_steps=15000"] + common, n=3, timeout=120)
    assert p.returncode == 0, p.stderr
    first = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert first.counters["updates"] > 0
    n_first = len(metrics(run))
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", "total_env_steps=30000"] + SMALL,
                  n=3, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "resuming from" in p.stdout
    second = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert second.counters["env_steps"] >= 30000
    assert second.counters["updates"] > first.counters["updates"]
    assert second.counters["episodes"] > first.counters["episodes"]
    # RMSprop counts its steps: it continued from the checkpoint instead of starting again at 0.
    assert int(second.state["optim/state/0/step"]) == second.counters["updates"]
    rows = metrics(run)
    steps = [int(r["env_steps"]) for r in rows]
    assert steps == sorted(steps) and steps[0] < first.counters["env_steps"] < steps[-1]
    # The learning rate decays linearly from where the checkpoint left it, over the new total_env_steps:
    # lr = lr0 (1 - s / 30000) with s the steps received before the row's last update (within 1000 steps).
    with open(JOB, "rb") as f:
        lr0 = tomllib.load(f)["impala"]["lr"]
    resumed = [(int(r["env_steps"]), float(r["lr"])) for r in rows[n_first:] if r["lr"]]
    assert resumed and all(lr0 * (1 - s / 30000) - 1e-6 <= lr <= lr0 * (1 - (s - 1000) / 30000) + 1e-6
                           for s, lr in resumed)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_learner_without_cuda_is_a_clear_error(run_mpirl, tmp_path):
    p = run_mpirl(["train", JOB, "--run-dir", str(tmp_path / "run"), "--set", "impala.learner.device=cuda"] + SMALL,
                  n=2, timeout=60)
    assert p.returncode == 2
    assert "impala.learner.device" in p.stderr and "CUDA" in p.stderr


@pytest.mark.slow
def test_cartpole_job_reaches_475(run_mpirl, tmp_path):
    run = str(tmp_path / "run")
    p = run_mpirl(["train", JOB, "--run-dir", run, "--set", "log.tensorboard=false"], n=3, timeout=240)
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 100 and result["env_id"] == "CartPole-v1" and result["algo"] == "impala"
    assert result["episode_return_mean"] >= 475, result
    last = metrics(run)[-1]
    assert int(last["env_steps"]) <= 1_000_000 + 100_000  # within the budget (plus data in flight)
