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


@pytest.mark.slow
def test_apex_resume_continues_the_learning_curve(run_mpirl, tmp_path):
    """Train until the training mean passes 300, stop, resume: the first 100 episodes after resume are as good.

    A resume that lost the replay, the target network, the optimizer state or
    the actors' finished warm-up shows up here as a drop of the return.
    """
    run = str(tmp_path / "run")
    job = os.path.join(ROOT, "jobs", "cartpole_apex.toml")
    quiet = ["--set", "log.interval_s=0.2", "--set", "log.tensorboard=false", "--no-eval"]
    p = run_mpirl(["train", job, "--run-dir", run, "--set", "checkpoint.replay=true",
                   "--set", "stop.episode_return_mean=300"] + quiet, n=3, timeout=180)
    assert p.returncode == 0, p.stderr
    before = metrics(run)[-1]
    assert float(before["episode_return_mean"]) >= 300, before  # phase 1 learned (it stopped on the threshold)
    steps0, episodes0 = int(before["env_steps"]), int(before["episodes"])
    # The stop threshold is raised so that the resumed run keeps going on the restored window of returns.
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", f"total_env_steps={steps0 + 60_000}",
                   "--set", "stop.episode_return_mean=1e9"] + quiet, n=3, timeout=180)
    assert p.returncode == 0, p.stderr
    rows = [r for r in metrics(run) if int(r["env_steps"]) > steps0]
    fresh = [r for r in rows if int(r["episodes"]) >= episodes0 + 100]  # windows made only of resumed episodes
    assert fresh, f"fewer than 100 episodes after resume: {rows[-1]}"
    after = float(fresh[0]["episode_return_mean"])
    assert after >= 0.6 * float(before["episode_return_mean"]), (before, fresh[0])
