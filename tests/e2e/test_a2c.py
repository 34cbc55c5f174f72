"""a2c, a3c and gossip_a2c end to end under real mpirun: clean runs with their metrics, identical A2C
replicas, per-rank gossip checkpoints, resume, and CartPole learning at -n 4."""
import csv
import json
import math
import os

import pytest

from mpirl import checkpoint

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
JOBS = {algo: os.path.join(ROOT, "jobs", f"cartpole_{algo}.toml") for algo in ("a2c", "a3c", "gossip_a2c")}
SMALL = ["--set", "env.num_envs=8", "--set", "log.interval_s=0", "--set", "log.tensorboard=false", "--no-eval",
         "--set", "stop.episode_return_mean=1000"]


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


def column(rows, key):
    return [float(r[key]) for r in rows if r.get(key)]


@pytest.mark.parametrize("algo, n", [("a2c", 1), ("a2c", 3), ("a2c", 4), ("a3c", 2), ("a3c", 4),
                                     ("gossip_a2c", 3), ("gossip_a2c", 4)])
def test_runs_and_shuts_down_cleanly(run_mpirl, tmp_path, algo, n):
    run = str(tmp_path / "run")
    # a3c with several workers: long enough that they overlap (a worker that finished importing torch
    # first could do all of 12K steps alone in under a second, with no stale gradient at all).
    steps = 60000 if algo == "a3c" and n > 2 else 12000
    p = run_mpirl(["train", JOBS[algo], "--run-dir", run, "--set", f"total_env_steps={steps}"] + SMALL, n=n,
                  timeout=120)
    assert p.returncode == 0, p.stderr
    rows = metrics(run)
    last = rows[-1]
    assert int(last["env_steps"]) >= steps and int(last["updates"]) > 0 and int(last["episodes"]) > 0
    fracs = column(rows, "mpi_time_frac")
    assert fracs and all(0 <= f < 1 for f in fracs)
    ck = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert ck.algo == algo and ck.counters["env_steps"] == int(last["env_steps"])
    assert "net/actor.0.weight" in ck.state and "net/critic.0.weight" in ck.state
    assert int(ck.state["optim/state/0/step"]) == ck.counters["updates"]
    if algo == "a2c":
        # Every rank's parameter fingerprint entered the Allreduce before every update (and after the
        # last): a differing replica raises and aborts the run, so reaching here means bitwise identity.
        assert [int(r["replicas_checked"]) for r in rows] == [int(r["updates"]) for r in rows]
    if algo == "a3c":
        stale = column(rows, "staleness")
        assert stale and all(0 <= s <= float(r) for s, r in zip(stale, column(rows, "staleness_max")))
        if n > 2:  # several workers: some gradients are stale
            assert max(column(rows, "staleness_max")) >= 1
    if algo == "gossip_a2c":
        dist = column(rows, "consensus_distance")
        assert dist and all(math.isfinite(d) and d >= 0 for d in dist)
        for k in range(n):  # every rank's network and optimizer
            assert f"rank_{k}/net/actor.0.weight" in ck.state
            assert int(ck.state[f"rank_{k}/optim/state/0/step"]) == ck.counters["updates"]
        for name in ("actor.0.weight", "critic.4.bias"):  # net/* (evaluated) is the ranks' average
            mean = sum(ck.state[f"rank_{k}/net/{name}"].astype("float64") for k in range(n)) / n
            assert abs(ck.state[f"net/{name}"] - mean).max() < 1e-6


def test_gossip_ranks_differ_between_averagings_and_stay_close(run_mpirl, tmp_path):
    run = str(tmp_path / "run")
    # Without the decay to lr 0 at the end, which would let the last two hypercube rounds average exactly.
    p = run_mpirl(["train", JOBS["gossip_a2c"], "--run-dir", run, "--set", "total_env_steps=12000",
                   "--set", "gossip_a2c.lr_decay=false"] + SMALL, n=4, timeout=120)
    assert p.returncode == 0, p.stderr
    ck = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    w = [ck.state[f"rank_{k}/net/actor.0.weight"] for k in range(4)]
    assert any((w[0] != x).any() for x in w[1:])  # decentralized: not one shared copy
    spread = max(float(abs(x - w[0]).max()) for x in w[1:])
    assert spread < 0.1 * float(abs(w[0]).max())


@pytest.mark.parametrize("algo, n", [("a2c", 3), ("a3c", 3), ("gossip_a2c", 4)])
def test_resume_continues_counters_and_every_optimizer(run_mpirl, tmp_path, algo, n):
    run = str(tmp_path / "run")
    p = run_mpirl(["train", JOBS[algo], "--run-dir", run, "--set", "total_env_steps=10000"] + SMALL, n=n, timeout=120)
    assert p.returncode == 0, p.stderr
    first = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    n_first = len(metrics(run))
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", "total_env_steps=20000"] + SMALL[:-2],
                  n=n, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "resuming from" in p.stdout
    second = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert second.counters["env_steps"] >= 20000
    assert second.counters["updates"] > first.counters["updates"]
    assert second.counters["episodes"] > first.counters["episodes"]
    # The optimizers counted on from the checkpoint instead of restarting at 0 (for gossip: every rank's own).
    names = [f"rank_{k}/optim/state/0/step" for k in range(n)] if algo == "gossip_a2c" else ["optim/state/0/step"]
    assert all(int(second.state[name]) == second.counters["updates"] for name in names)
    if algo == "gossip_a2c":  # each rank's own param groups (their lengths differ by rank) read back intact
        for k in range(n):
            groups = json.loads(bytes(second.state[f"rank_{k}/optim/param_groups_json"]).decode())
            assert 0.0 <= groups[0]["lr"] <= 5e-3  # the decayed lr, 0 at total_env_steps
    rows = metrics(run)
    steps = [int(r["env_steps"]) for r in rows]
    assert steps == sorted(steps) and len(rows) > n_first and steps[n_first - 1] == first.counters["env_steps"]


def test_a3c_needs_a_worker(run_mpirl, tmp_path):
    p = run_mpirl(["train", JOBS["a3c"], "--run-dir", str(tmp_path / "run")] + SMALL, n=1, timeout=60)
    assert p.returncode == 2
    assert "at least 2 MPI ranks" in p.stderr


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["a2c", "a3c", "gossip_a2c"])
def test_cartpole_job_reaches_475(run_mpirl, tmp_path, algo):
    run = str(tmp_path / "run")
    p = run_mpirl(["train", JOBS[algo], "--run-dir", run, "--set", "log.tensorboard=false"], n=4, timeout=240)
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 100 and result["env_id"] == "CartPole-v1" and result["algo"] == algo
    assert result["episode_return_mean"] >= 475, result
    last = metrics(run)[-1]
    assert int(last["env_steps"]) <= 1_000_000 + 50_000  # within the budget (plus one round)
