"""`learner.device` end to end under mpirun: the device path (staged on CPU) gives the CPU path's results.

``MPIRL_STAGED_LEARNER=1`` makes every learner keep its own copy of the network and do every copy a GPU
learner does (batches in, gradients out and back, weights published to the acting copy), between CPU
buffers. Synchronous algorithms are deterministic: the staged run must equal the plain one bitwise.
The asynchronous ones must run, resume and evaluate. Tests marked ``cuda`` run the same on a GPU.
"""
import json
import os

import numpy as np
import pytest

from mpirl import checkpoint

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
QUIET = ["--set", "log.interval_s=0", "--set", "log.tensorboard=false", "--set", "stop.episode_return_mean=1000",
         "--set", "stop.greedy_episodes=0"]
STAGED = {"MPIRL_STAGED_LEARNER": "1"}
NO_CUDA = not __import__("torch").cuda.is_available()

# job, ranks, overrides: small budgets in which every algorithm makes updates.
SYNC = {
    "ppo": ("cartpole_ppo", 2, ["total_env_steps=3000", "env.num_envs=4", "ppo.num_steps=32"]),
    "ppo_box_obs_norm": ("pendulum_ppo", 2, ["total_env_steps=4000", "ppo.norm_obs=true", "ppo.num_steps=64"]),
    "a2c": ("cartpole_a2c", 2, ["total_env_steps=3000"]),
    "gossip_a2c": ("cartpole_gossip_a2c", 3, ["total_env_steps=3000", "gossip_a2c.stats_every=2"]),
    "dqn": ("cartpole_dqn", 3, ["total_env_steps=3000", "dqn.learning_starts=500", "env.num_envs=4"]),
}
ASYNC = {
    "impala": ("cartpole_impala", 3, ["total_env_steps=6000", "env.num_envs=8"], "impala"),
    "apex": ("cartpole_apex", 3, ["total_env_steps=4000", "apex.learning_starts=500", "env.num_envs=4"], "apex"),
    "a3c": ("cartpole_a3c", 3, ["total_env_steps=4000", "env.num_envs=4"], "a3c"),
}


def sets(items):
    return [x for item in items for x in ("--set", item)]


def train(run_mpirl, job, n, overrides, run, env=None, extra=()):
    p = run_mpirl(["train", os.path.join(ROOT, "jobs", job + ".toml"), "--run-dir", run, *QUIET, *sets(overrides),
                   *extra], n=n, timeout=150, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


@pytest.mark.parametrize("case", sorted(SYNC))
def test_staged_learner_gives_the_cpu_learners_results_bitwise(run_mpirl, tmp_path, case):
    job, n, overrides = SYNC[case]
    plain, staged = str(tmp_path / "plain"), str(tmp_path / "staged")
    train(run_mpirl, job, n, overrides, plain, extra=["--no-eval"])
    train(run_mpirl, job, n, overrides, staged, env=STAGED, extra=["--no-eval"])
    a = checkpoint.load(os.path.join(plain, "checkpoints", "latest.h5"))
    b = checkpoint.load(os.path.join(staged, "checkpoints", "latest.h5"))
    assert a.counters["updates"] > 0 and a.counters["updates"] == b.counters["updates"]
    assert sorted(a.state) == sorted(b.state)
    differ = [k for k in a.state if not np.array_equal(a.state[k], b.state[k])]
    assert not differ, differ


@pytest.mark.parametrize("case", sorted(ASYNC))
def test_staged_asynchronous_learners_run_resume_and_evaluate(run_mpirl, tmp_path, case):
    job, n, overrides, algo = ASYNC[case]
    run = str(tmp_path / "run")
    train(run_mpirl, job, n, overrides, run, env=STAGED, extra=["--no-eval"])
    first = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert first.counters["updates"] > 0
    steps = int(first.counters["env_steps"])
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", f"total_env_steps={steps + 3000}", "--no-eval"],
                  n=n, timeout=150, env=STAGED)
    assert p.returncode == 0, p.stdout + p.stderr
    second = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert second.counters["updates"] > first.counters["updates"]
    ev = run_mpirl(["eval", os.path.join(run, "checkpoints", "latest.h5"), "--episodes", "3"], n=None,
                   timeout=60)
    assert ev.returncode == 0, ev.stderr
    assert json.loads(ev.stdout)["episodes"] == 3


def test_cuda_without_a_gpu_is_a_clear_error_for_every_torch_algorithm(run_mpirl, tmp_path):
    if not NO_CUDA:
        pytest.skip("torch sees a CUDA device here")
    p = run_mpirl(["train", os.path.join(ROOT, "jobs", "cartpole_ppo.toml"), "--run-dir", str(tmp_path / "r"),
                   "--set", "learner.device=cuda"], n=2, timeout=60)
    assert p.returncode == 2
    assert "--set learner.device: key 'learner.device' is 'cuda' but torch sees no CUDA device" in p.stderr
    assert "Traceback" not in p.stderr
    p = run_mpirl(["train", os.path.join(ROOT, "jobs", "frozenlake_q.toml"), "--run-dir", str(tmp_path / "q"),
                   "--set", "learner.device=auto"], n=2, timeout=60)
    assert p.returncode == 2 and "not supported by algo 'tabular_q'" in p.stderr


def test_auto_says_which_device_it_chose(run_mpirl, tmp_path):
    job, n, overrides = SYNC["a2c"]
    p = train(run_mpirl, job, n, overrides + ["learner.device=auto"], str(tmp_path / "run"), extra=["--no-eval"])
    expected = "auto: cpu (torch sees no CUDA device)" if NO_CUDA else "auto: cuda:0"
    assert f"mpirl: learner.device = {expected}" in p.stdout


@pytest.mark.cuda
@pytest.mark.skipif(NO_CUDA, reason="torch sees no CUDA device on this machine")
@pytest.mark.parametrize("case", ["ppo", "a2c", "impala", "apex"])
def test_cuda_learner_trains_resumes_and_evaluates(run_mpirl, tmp_path, case):
    job, n, overrides = (SYNC.get(case) or ASYNC[case])[:3]
    run = str(tmp_path / "run")
    p = train(run_mpirl, job, n, overrides + ["learner.device=cuda"], run, extra=["--no-eval"])
    assert "learner.device = cuda: cuda:0" in p.stdout
    first = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert first.counters["updates"] > 0
    steps = int(first.counters["env_steps"])
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", f"total_env_steps={steps + 3000}", "--no-eval"],
                  n=n, timeout=150)
    assert p.returncode == 0, p.stdout + p.stderr
    second = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert second.counters["updates"] > first.counters["updates"]
    ev = run_mpirl(["eval", os.path.join(run, "checkpoints", "latest.h5"), "--episodes", "3"], n=None,
                   timeout=60)
    assert ev.returncode == 0 and json.loads(ev.stdout)["episodes"] == 3, ev.stderr
