"""DQN and Ape-X end to end under real mpirun: determinism, clean shutdown, resume with replay."""
import csv
import os

import pytest

from mpirl import checkpoint

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SMALL = ["--set", "env.num_envs=4", "--set", "log.interval_s=0", "--no-eval"]


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_dqn_is_deterministic_given_seed_and_ranks(run_mpirl, tmp_path):
    job = os.path.join(ROOT, "jobs", "cartpole_dqn.toml")
    runs = []
    for name in ("a", "b"):
        run = str(tmp_path / name)
        p = run_mpirl(["train", job, "--run-dir", run, "--set", "total_env_steps=3000",
                       "--set", f"{'dqn'}.learning_starts=500"] + SMALL, n=3, timeout=120)
        assert p.returncode == 0, p.stderr
        runs.append([{k: v for k, v in row.items() if k not in ("wall_time_s", "env_steps_per_s")}
                     for row in metrics(run)])
    assert runs[0] == runs[1]
    assert int(runs[0][-1]["updates"]) > 0 and int(runs[0][-1]["env_steps"]) >= 3000


@pytest.mark.parametrize("n", [2, 3])
def test_apex_runs_and_shuts_down_cleanly(run_mpirl, tmp_path, n):
    run = str(tmp_path / "run")
    job = os.path.join(ROOT, "jobs", "cartpole_apex.toml")
    p = run_mpirl(["train", job, "--run-dir", run, "--set", "total_env_steps=6000",
                   "--set", "apex.learning_starts=500"] + SMALL, n=n, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.elapsed < 60, p.elapsed
    last = metrics(run)[-1]
    assert int(last["env_steps"]) >= 6000 and int(last["updates"]) > 0
    ck = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert ck.algo == "apex" and "online/head.weight" in ck.state and "optim/param_groups_json" in ck.state


def test_apex_resume_keeps_replay_priorities_and_counters(run_mpirl, tmp_path):
    run = str(tmp_path / "run")
    job = os.path.join(ROOT, "jobs", "cartpole_apex.toml")
    common = ["--set", "checkpoint.replay=true", "--set", "apex.learning_starts=500"] + SMALL
    p = run_mpirl(["train", job, "--run-dir", run, "--set", "total_env_steps=4000"] + common, n=3, timeout=120)
    assert p.returncode == 0, p.stderr
    first = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    size = int(first.state["replay/size"])
    assert size > 0 and first.state["replay/priorities"].shape == (size,)
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", "total_env_steps=8000"] + common[:2] + SMALL,
                  n=3, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "resuming from" in p.stdout
    second = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert second.counters["env_steps"] >= 8000
    assert second.counters["updates"] > first.counters["updates"]
    assert int(second.state["replay/size"]) > size  # the memory continued, it did not start empty
    rows = metrics(run)
    steps = [int(r["env_steps"]) for r in rows]
    assert steps == sorted(steps)
