"""Learning tests: the shipped CartPole jobs solve the task (greedy eval >= 475 over 100 episodes)."""
import json
import os

import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


@pytest.mark.slow
@pytest.mark.parametrize("job", ["cartpole_apex.toml", "cartpole_dqn.toml"])
def test_cartpole_job_reaches_475(run_mpirl, tmp_path, job):
    run = str(tmp_path / "run")
    p = run_mpirl(["train", os.path.join(ROOT, "jobs", job), "--run-dir", run, "--set", "log.tensorboard=false"],
                  n=3, timeout=240)
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["episodes"] == 100 and result["env_id"] == "CartPole-v1"
    assert result["episode_return_mean"] >= 475, result
    with open(os.path.join(run, "eval.json")) as f:
        assert json.load(f)["episode_return_mean"] == result["episode_return_mean"]
