"""`mpirl bench learning`: the job's documented rank count, the claim checks, and one real sweep."""
import csv
import json
import os
import subprocess
import sys

import pytest

from mpirl.bench import learning

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_every_shipped_job_documents_its_rank_count():
    jobs = sorted(f[:-5] for f in os.listdir(os.path.join(ROOT, "jobs")) if f.endswith(".toml"))
    ranks = {j: learning.documented_ranks(learning.job_path(j)) for j in jobs}
    assert ranks["cartpole_a2c"] == 4 and ranks["cartpole_impala"] == 3 and all(n >= 1 for n in ranks.values())


def test_unknown_job_is_a_clear_error():
    with pytest.raises(SystemExit, match="no job 'nope'"):
        learning.job_path("nope")


def test_summary_counts_passes_per_job_ranks_and_kernel():
    runs = [{"job": "j", "ranks": 2, "kernel": k, "passed": p, "eval_return": v, "env_steps": 10}
            for k, p, v in [("native", True, 500.0), ("native", False, 400.0), ("default", True, 490.0)]]
    s = learning.summarise(runs)
    assert s["j/n2/native"]["passed"] == 1 and s["j/n2/native"]["min"] == 400.0 and s["j/n2/default"]["runs"] == 1


def test_judge_training_checks_the_last_training_mean_not_the_greedy_one(monkeypatch, tmp_path):
    job = tmp_path / "j.toml"
    job.write_text('algo = "ppo"\n')
    rows = [{"env_steps": 100.0, "episode_return_mean": 1650.0}, {"env_steps": 200.0, "episode_return_mean": 1710.0}]
    fake = {"rows": rows,
            "total_s": 12.5, "eval": {"env_id": "HalfCheetah-v5", "episode_return_mean": 1600.0}}
    monkeypatch.setattr(learning, "launch", lambda *a, **k: fake)
    greedy = learning.run_one(str(job), 2, 0, "native", [], 60.0)
    train = learning.run_one(str(job), 2, 0, "native", [], 60.0, judge="training")
    assert greedy["claim"] == 1700.0 and not greedy["passed"]
    assert train["passed"] and train["train_return"] == 1710.0 and train["env_steps"] == 200
    assert learning.summarise([train])["j/n2/native"]["min"] == 1710.0


def test_a_tabular_sweep_over_two_kernel_sets(tmp_path):
    p = subprocess.run([sys.executable, "-m", "mpirl", "bench", "learning", "--jobs", "frozenlake_q", "--seeds", "0",
                        "--kernels", "native,default", "--ranks", "2", "--out-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                       env=dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]))
    assert p.returncode == 0, p.stdout + p.stderr
    with open(tmp_path / "learning.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["kernel"] for r in rows] == ["native", "default"] and all(r["passed"] == "True" for r in rows)
    assert all(float(r["exact_return"]) >= 0.97 * float(r["optimum"]) for r in rows)
    doc = json.load(open(tmp_path / "learning.json"))
    assert doc["summary"]["frozenlake_q/n2/native"]["passed"] == 1 and doc["native_kernels"]
