"""What ``--resume`` continues: counters (dqn) and every rank's RNG state (apex, impala, a3c).

End to end under real mpirun: train a short run, resume it with a larger
``total_env_steps``, and read the checkpoints back.
"""
import csv
import os

import pytest

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


# ---------------------------------------------------------------- the asynchronous actors' RNG states

ASYNC = {  # algo: (job, steps of the first run, extra sets)
    "apex": ("cartpole_apex", 8000, ["--set", "env.num_envs=4", "--set", "apex.learning_starts=500"]),
    "impala": ("cartpole_impala", 20000, ["--set", "env.num_envs=8"]),
    "a3c": ("cartpole_a3c", 8000, ["--set", "env.num_envs=4"]),
}


def _actor_keys(algo):
    # What each actor reports: its generator (acting) and environment RNGs, plus its own
    # sampling generator (impala, a3c) or its warm-up position (apex).
    return {"env_rng", "own_steps"} if algo == "apex" else {"env_rng", "actor_rng"}


def _assert_every_rank(ck, algo, n):
    assert sorted(ck.rng) == list(range(n)), (ck.path, sorted(ck.rng))
    for r in range(1, n):
        doc = ck.rng[r]
        assert {"python", "numpy_global", "generator", "extra"} <= set(doc), (ck.path, r, sorted(doc))
        assert _actor_keys(algo) <= set(doc["extra"]), (ck.path, r, sorted(doc["extra"]))
        assert doc["extra"]["env_rng"], (ck.path, r)  # CartPole's vector env: one generator
    # Every actor has a stream of its own.
    assert len({str(ck.rng[r]["generator"]) for r in range(1, n)}) == n - 1


@pytest.mark.parametrize("algo", sorted(ASYNC))
def test_async_checkpoints_hold_and_resume_every_ranks_rng(run_mpirl, tmp_path, algo):
    name, steps, extra = ASYNC[algo]
    n = 3
    run = str(tmp_path / "run")
    p = run_mpirl(["train", job(name), "--run-dir", run, "--set", f"total_env_steps={steps}",
                   "--set", "stop.episode_return_mean=1000", "--set", "checkpoint.interval_s=0.2"] + extra + QUIET,
                  n=n, timeout=120)
    assert p.returncode == 0, p.stderr
    files = checkpoint.list_checkpoints(os.path.join(run, "checkpoints"))
    # The final checkpoint (states sent with the goodbyes) and at least one written during training
    # (states sent in a report round) hold every rank's RNG state.
    assert len(files) >= 2, files
    for path in files:
        _assert_every_rank(checkpoint.load(path), algo, n)
    first = latest(run)
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", f"total_env_steps={2 * steps}"] + QUIET,
                  n=n, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "resuming from" in p.stdout
    assert "seeding it fresh" not in p.stderr, p.stderr  # every actor got its own state back
    second = latest(run)
    assert second.counters["env_steps"] >= 2 * steps and second.counters["updates"] > first.counters["updates"]
    _assert_every_rank(second, algo, n)
    for r in range(1, n):  # the streams went on from there
        assert second.rng[r]["generator"] != first.rng[r]["generator"]


def test_apex_resume_with_replay_continues_the_rate_limiter(run_mpirl, tmp_path):
    # The limiter's inserted/sampled counts come back with the memory: without them a resumed
    # learner saw a full replay and nothing sampled, and took no data until it had "caught up".
    run = str(tmp_path / "run")
    small = ["--set", "env.num_envs=4", "--set", "apex.learning_starts=500", "--set", "checkpoint.replay=true"]
    p = run_mpirl(["train", job("cartpole_apex"), "--run-dir", run, "--set", "total_env_steps=6000",
                   "--set", "stop.episode_return_mean=1000"] + small + QUIET, n=3, timeout=120)
    assert p.returncode == 0, p.stderr
    first = latest(run)
    inserted, sampled = first.rng[0]["extra"]["limiter"]
    assert inserted >= int(first.state["replay/size"]) > 0 and sampled > 0
    before = metrics(run)
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", "total_env_steps=9000"] + QUIET, n=3, timeout=120)
    assert p.returncode == 0, p.stderr
    after = metrics(run)[len(before):]
    assert after
    ratio_before = float(before[-1]["samples_per_insert"])
    assert abs(float(after[0]["samples_per_insert"]) - ratio_before) <= 0.25 * ratio_before, (before[-1], after[0])
    assert int(after[0]["updates"]) >= first.counters["updates"]
