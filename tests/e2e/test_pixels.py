"""Pixel workloads end to end: every torch algorithm trains on MinAtar frames, IMPALA on preprocessed Pong
(and `mpirl eval` plays it through the same wrappers), and a job without its package is a usage error."""
import json
import os

import numpy as np
import pytest

from mpirl import checkpoint

pytest.importorskip("minatar", reason="the minatar extra is not installed (pip install 'mpirl[minatar]')")

QUIET = ["--set", "log.interval_s=0", "--set", "log.tensorboard=false", "--set", "log.progress=false"]

MINATAR_JOB = """\
algo = "{algo}"
total_env_steps = {steps}

[env]
id = "MinAtar/Breakout-v1"
num_envs = 4

[eval]
episodes = 5

[{algo}]
hidden = [32]
{extra}
"""

EXTRA = {"dqn": "learning_starts = 200\nbatch_size = 32", "apex": "learning_starts = 200\nbatch_size = 32",
         "impala": "unroll_length = 10", "a2c": "t_max = 8", "a3c": "t_max = 8", "gossip_a2c": "t_max = 8",
         "ppo": "num_steps = 32"}


@pytest.mark.parametrize("algo", sorted(EXTRA))
def test_every_torch_algorithm_trains_on_minatar_frames(run_mpirl, tmp_path, algo):
    job = tmp_path / f"{algo}.toml"
    job.write_text(MINATAR_JOB.format(algo=algo, steps=3000, extra=EXTRA[algo]))
    run_dir = tmp_path / "run"
    cp = run_mpirl(["train", str(job), "--run-dir", str(run_dir), *QUIET], n=2, timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    result = json.loads(cp.stdout.strip().splitlines()[-1])
    assert result["env_id"] == "MinAtar/Breakout-v1" and result["episodes"] == 5
    state = checkpoint.load(str(run_dir / "checkpoints" / "latest.h5")).state
    convs = [k for k in state if k.endswith("conv.0.weight")]  # the MinAtar network, chosen from the spec
    assert convs and all(state[k].shape == (16, 4, 3, 3) for k in convs), sorted(state)


@pytest.mark.parametrize("algo", ["impala", "a2c", "a3c", "ppo"])
def test_a_shared_encoder_trains_and_plays_on_minatar_frames(run_mpirl, tmp_path, algo):
    job = tmp_path / f"{algo}.toml"
    job.write_text(MINATAR_JOB.format(algo=algo, steps=3000, extra=EXTRA[algo] + "\nshared_encoder = true"))
    run_dir = tmp_path / "run"
    cp = run_mpirl(["train", str(job), "--run-dir", str(run_dir), *QUIET], n=2, timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert json.loads(cp.stdout.strip().splitlines()[-1])["episodes"] == 5
    state = checkpoint.load(str(run_dir / "checkpoints" / "latest.h5")).state
    convs = [k for k in state if k.endswith("conv.0.weight")]
    assert convs == ["net/encoder.conv.0.weight"], sorted(state)  # one encoder under both heads


def test_impala_plays_preprocessed_pong_and_eval_uses_the_same_wrappers(run_mpirl, tmp_path):
    pytest.importorskip("ale_py", reason="the atari extra is not installed (pip install 'mpirl[atari]')")
    job = tmp_path / "pong.toml"
    job.write_text('algo = "impala"\ntotal_env_steps = 1200\n[env]\nid = "ALE/Pong-v5"\nwrappers = "atari"\n'
                   'num_envs = 2\nreward_clip = 1.0\n[impala]\nhidden = [64]\nunroll_length = 20\n')
    run_dir = tmp_path / "run"
    cp = run_mpirl(["train", str(job), "--run-dir", str(run_dir), "--no-eval", *QUIET], n=2, timeout=180)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    state = checkpoint.load(str(run_dir / "checkpoints" / "latest.h5")).state
    assert state["net/actor.0.conv.0.weight"].shape == (32, 4, 8, 8)  # Nature CNN on (84, 84, 4) stacks
    cp = run_mpirl(["eval", str(run_dir), "--episodes", "1"], n=None, timeout=180)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    result = json.loads(cp.stdout.strip().splitlines()[-1])
    # A whole game of Pong ends at 21 points to one side: -21 <= return <= 21, and it takes many steps.
    assert -21 <= result["episode_return_mean"] <= 21 and result["episode_length_mean"] > 500, result


@pytest.mark.parametrize("package,module,env_id,extra", [
    ("minatar", "minatar", "MinAtar/Breakout-v1", ""),
    ("ale-py", "ale_py", "ALE/Pong-v5", 'wrappers = "atari"\n'),
])
def test_a_job_without_its_package_names_the_package(run_mpirl, tmp_path, package, module, env_id, extra):
    shadow = tmp_path / "shadow" / module
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(f'raise ImportError("No module named {module!r}")\n')
    job = tmp_path / "job.toml"
    job.write_text(f'algo = "impala"\n[env]\nid = "{env_id}"\n{extra}')
    env = {"PYTHONPATH": str(tmp_path / "shadow") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cp = run_mpirl(["train", str(job), "--run-dir", str(tmp_path / "run")], n=2, env=env, timeout=60)
    lines = [ln for ln in cp.stderr.splitlines() if ln.strip()]
    assert cp.returncode == 2 and "Traceback" not in cp.stderr, cp.stderr
    assert len(lines) == 1 and f"needs the {package!r} package" in lines[0], cp.stderr
    assert "env.id" in lines[0] and ("mpirl[minatar]" if module == "minatar" else "mpirl[atari]") in lines[0]
    assert not (tmp_path / "run").exists()


def test_reward_clip_leaves_the_returns_unclipped(run_mpirl, tmp_path):
    """CartPole's reward is 1 per step: clipped to 0.5 for the learner, the returns still count 1 per step."""
    job = tmp_path / "cp.toml"
    job.write_text('algo = "a2c"\ntotal_env_steps = 4000\n[env]\nid = "CartPole-v1"\nnum_envs = 4\n'
                   'reward_clip = 0.5\n')
    run_dir = tmp_path / "run"
    cp = run_mpirl(["train", str(job), "--run-dir", str(run_dir), "--no-eval", *QUIET], n=1, timeout=60)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    import csv

    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    means = [float(r["episode_return_mean"]) for r in rows if r["episode_return_mean"] not in ("", "nan")]
    assert means and min(means) >= 8.0, means  # a CartPole episode lasts at least 8 steps: >= 8 unclipped
    assert np.isfinite(means).all()
