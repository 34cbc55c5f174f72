"""What ``--resume`` continues: counters (dqn) and every rank's RNG state (apex, impala, a3c).

End to end under real mpirun: train a short run, resume it with a larger
``total_env_steps``, and read the checkpoints back.
"""
import csv
import os

from mpirl import checkpoint

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
QUIET = ["--set", "log.interval_s=0", "--set", "log.tensorboard=false", "--no-eval"]


def job(name):
    return os.path.join(ROOT, "jobs", name + ".toml")


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


def latest(run_dir):
    return checkpoint.load(os.path.join(run_dir, "checkpoints", "latest.h5"))


def test_dqn_resume_continues_every_counter(run_mpirl, tmp_path):
    run = str(tmp_path / "run")
    small = ["--set", "env.num_envs=4", "--set", "dqn.learning_starts=500"] + QUIET
    p = run_mpirl(["train", job("cartpole_dqn"), "--run-dir", run, "--set", "total_env_steps=3000",
                   "--set", "stop.episode_return_mean=1000"] + small, n=2, timeout=120)
    assert p.returncode == 0, p.stderr
    first = latest(run)
    assert first.counters["updates"] > 0
    assert int(first.state["optim/state/0/step"]) == first.counters["updates"]
    n_first = len(metrics(run))
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", "total_env_steps=6000"] + QUIET,
                  n=2, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "resuming from" in p.stdout
    rows = metrics(run)
    after = rows[n_first:]
    assert after, "no metrics row after resume"
    # The first row after resume continues the counters (the bug: updates restarted at 0).
    assert int(after[0]["updates"]) >= first.counters["updates"], (after[0], first.counters)
    assert int(after[0]["env_steps"]) > first.counters["env_steps"]
    assert int(after[0]["episodes"]) >= first.counters["episodes"]
    for key in ("updates", "env_steps", "episodes"):
        values = [int(r[key]) for r in rows]
        assert values == sorted(values), key  # never goes back
    # The epsilon schedule continues from the restored env steps (decayed over 10K steps of the job).
    assert float(after[0]["epsilon"]) < float(rows[0]["epsilon"])
    second = latest(run)
    assert second.counters["env_steps"] >= 6000
    assert second.counters["updates"] > first.counters["updates"]
    assert second.counters["episodes"] > first.counters["episodes"]
    # Adam's step count went on from the checkpoint, and so did the target-copy schedule (updates % period).
    assert int(second.state["optim/state/0/step"]) == second.counters["updates"]
