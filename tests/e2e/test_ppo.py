"""ppo end to end under real mpirun: clean runs at several rank counts with identical replicas, and resume."""
import csv
import os

import pytest

from mpirl import checkpoint

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
JOB = os.path.join(ROOT, "jobs", "cartpole_ppo.toml")
SMALL = ["--set", "log.interval_s=0", "--set", "log.tensorboard=false", "--no-eval",
         "--set", "ppo.num_steps=32", "--set", "env.num_envs=4", "--set", "ppo.update_epochs=4",
         "--set", "ppo.num_minibatches=4", "--set", "stop.episode_return_mean=1000"]


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("n", [1, 2, 3])
def test_runs_with_identical_replicas(run_mpirl, tmp_path, n):
    run = str(tmp_path / "run")
    p = run_mpirl(["train", JOB, "--run-dir", run, "--set", "total_env_steps=6000"] + SMALL, n=n, timeout=120)
    assert p.returncode == 0, p.stderr
    rows = metrics(run)
    last = rows[-1]
    assert int(last["env_steps"]) >= 6000
    # 4 epochs x 4 minibatches per iteration, every one applied (no target_kl in the job); an iteration
    # is at most n x 4 x 32 env steps (reset steps do not count).
    updates = int(last["updates"])
    assert updates % 16 == 0 and updates // 16 >= 6000 / (n * 4 * 32)
    assert all(int(r["minibatch_steps"]) == 16 for r in rows if r.get("minibatch_steps"))
    # Every rank's parameter fingerprint entered an Allreduce before every iteration (and after the last):
    # a differing replica raises and aborts the run, so reaching here means bitwise identity.
    assert [int(r["replicas_checked"]) for r in rows] == [int(r["updates"]) for r in rows]
    assert all(0 <= float(r["mpi_time_frac"]) < 1 for r in rows if r.get("mpi_time_frac"))
    assert all(float(r["approx_kl"]) >= 0 for r in rows if r.get("approx_kl"))
    ck = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert ck.algo == "ppo" and ck.counters["updates"] == int(last["updates"])
    assert int(ck.state["optim/state/0/step"]) == ck.counters["updates"]


def test_resume_continues_counters_and_the_optimizer(run_mpirl, tmp_path):
    run = str(tmp_path / "run")
    p = run_mpirl(["train", JOB, "--run-dir", run, "--set", "total_env_steps=4000"] + SMALL, n=2, timeout=120)
    assert p.returncode == 0, p.stderr
    first = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    n_first = len(metrics(run))
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", "total_env_steps=8000"] + SMALL[:-2],
                  n=2, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "resuming from" in p.stdout
    second = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert second.counters["env_steps"] >= 8000
    assert second.counters["updates"] > first.counters["updates"]
    assert int(second.state["optim/state/0/step"]) == second.counters["updates"]
    steps = [int(r["env_steps"]) for r in metrics(run)]
    assert steps == sorted(steps) and steps[n_first - 1] == first.counters["env_steps"]
