"""End-to-end runs of `mpirl train / eval / inspect` under real mpirun, as subprocesses."""
import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from mpirl import checkpoint

JOB = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "jobs", "frozenlake_q.toml"))


@pytest.fixture
def mpirl(run_mpirl):
    """``mpirl(args, n=None, timeout=120, env=None)``: mpirl under ``mpirun -n n`` (n None: no mpirun)."""
    def run(args, n=None, timeout=120, env=None):
        return run_mpirl(args, n=n, timeout=timeout, env=env)

    return run


def rows(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_the_run_directory_and_eval_inspect_read_it(mpirl, tmp_path):
    run = str(tmp_path / "run")
    p = mpirl(["train", JOB, "--run-dir", run, "--set", "total_env_steps=20000",
               "--set", "log.interval_s=0", "--set", "eval.episodes=50"], n=2)
    assert p.returncode == 0, p.stderr
    final = json.loads(p.stdout.strip().splitlines()[-1])
    assert final["episodes"] == 50 and final["env_id"] == "FrozenLake-v1"
    for name in ("config.toml", "metrics.csv", "eval.json", "checkpoints/latest.h5", "checkpoints/ckpt-20000.h5"):
        assert os.path.exists(os.path.join(run, name)), name
    assert os.listdir(os.path.join(run, "tb"))
    table = rows(run)
    assert set(["env_steps", "updates", "wall_time_s", "episode_return_mean", "episodes"]) <= set(table[0])
    steps = [int(r["env_steps"]) for r in table]
    assert steps == sorted(steps) and steps[-1] == 20000
    with open(os.path.join(run, "timings.json")) as f:
        timings = json.load(f)
    assert timings["ranks"] == 2 and timings["hosts"] == [socket.gethostname()] * 2
    assert f"mpirl: 2 ranks on 1 host: {socket.gethostname()} (ranks 0-1)" in p.stdout + p.stderr

    e = mpirl(["eval", os.path.join(run, "checkpoints", "latest.h5"), "--episodes", "30", "--seed", "1"])
    assert e.returncode == 0, e.stderr
    result = json.loads(e.stdout)
    for key in ("episode_return_mean", "episode_return_std", "episodes", "env_id"):
        assert key in result
    assert result["episodes"] == 30

    i = mpirl(["inspect", os.path.join(run, "checkpoints", "latest.h5")])
    meta = json.loads(i.stdout)
    assert meta["algo"] == "tabular_q" and meta["env_id"] == "FrozenLake-v1"
    assert meta["counters"]["env_steps"] == 20000 and meta["ranks_with_rng_state"] == [0, 1]
    assert meta["config"]["total_env_steps"] == 20000 and "mpirl" in meta["versions"]


def test_python_dash_m_works(mpirl):
    p = subprocess.run([sys.executable, "-m", "mpirl", "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "train" in p.stdout


def test_same_seed_same_result_and_resume_continues(mpirl, tmp_path):
    args = ["--set", "total_env_steps=16000", "--set", "log.interval_s=0", "--no-eval"]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    for run in (a, b):
        assert mpirl(["train", JOB, "--run-dir", run] + args, n=2).returncode == 0
    qa = checkpoint.load(os.path.join(a, "checkpoints", "latest.h5")).state["q"]
    qb = checkpoint.load(os.path.join(b, "checkpoints", "latest.h5")).state["q"]
    np.testing.assert_array_equal(qa, qb)

    # Resume run a to 32000 steps: counters, table and schedule continue from the checkpoint.
    p = mpirl(["train", "--resume", "--run-dir", a, "--set", "total_env_steps=32000", "--no-eval"], n=2)
    assert p.returncode == 0, p.stderr
    assert "resuming from" in p.stdout
    table = rows(a)
    steps = [int(r["env_steps"]) for r in table]
    assert steps == sorted(steps) and steps[-1] == 32000
    after = [r for r in table if int(r["env_steps"]) > 16000]
    before = [r for r in table if int(r["env_steps"]) <= 16000]
    assert float(after[0]["epsilon"]) <= float(before[-1]["epsilon"])  # the schedule did not restart
    assert int(after[0]["episodes"]) > int(before[-1]["episodes"])
    assert float(after[0]["wall_time_s"]) >= float(before[-1]["wall_time_s"])
    resumed = checkpoint.load(os.path.join(a, "checkpoints", "latest.h5"))
    assert resumed.counters["env_steps"] == 32000
    assert (resumed.state["visits"].sum() == 32000)  # visit counts continued from the checkpoint's
