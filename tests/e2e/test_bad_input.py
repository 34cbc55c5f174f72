"""Bad input to ``mpirl train``/``eval``: exit code 2, one clear line on stderr, no traceback, fast.

Every ``train`` case runs under ``mpirun`` (rank 0 validates, every rank
exits 2), so these also prove that a rejected job does not hang the ranks.
"""
import argparse
import os
import shutil

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEADLINE_S = 20.0


def assert_usage_error(cp, *needles):
    """Exit 2, within the deadline, exactly one stderr line 'mpirl: error: ...' containing every needle."""
    lines = [ln for ln in cp.stderr.splitlines() if ln.strip()]
    detail = f"rc={cp.returncode} elapsed={cp.elapsed:.1f}s\nstdout:\n{cp.stdout}\nstderr:\n{cp.stderr}"
    assert cp.returncode == 2, detail
    assert cp.elapsed < DEADLINE_S, detail
    assert "Traceback" not in cp.stderr, detail
    assert len(lines) == 1 and lines[0].startswith("mpirl: error: "), detail
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in the error line\n{detail}"
    return lines[0]


# (id, top-level text prepended to the base job, --set overrides, substrings of the error line)
CONFIG_CASES = [
    ("unknown-top-level-key", "seeed = 1\n", [], ["unknown key 'seeed'", "did you mean 'seed'?"]),
    ("unknown-key-via-set", "", ["env.idd=Taxi-v4"], ["unknown key 'env.idd'", "did you mean 'env.id'?"]),
    ("unknown-nested-key", None, [], ["unknown key 'env.ids'", "did you mean 'env.id'?"]),
    ("unknown-algo-key", "", ["tabular_q.gama=0.9"],
     ["unknown key 'tabular_q.gama'", "did you mean 'tabular_q.gamma'?"]),
    ("wrong-type-str", None, [], ["key 'seed' must be int", "'abc'"]),
    ("wrong-type-float", "", ["env.num_envs=1.5"], ["key 'env.num_envs' must be int", "1.5"]),
    ("out-of-range-gamma", "", ["tabular_q.gamma=1.5"], ["key 'tabular_q.gamma' must be <= 1.0", "1.5"]),
    ("out-of-range-keep", "", ["checkpoint.keep=0"], ["key 'checkpoint.keep' must be >= 1", "got 0"]),
    ("unknown-algo", "", ["algo=tabular-q"],
     ["unknown algo 'tabular-q'", "did you mean 'tabular_q'?", "valid: ", "tabular_q"]),
    ("unknown-env-id", "", ["env.id=FrozenLake-v9"],
     ["unknown env id 'FrozenLake-v9'", "key 'env.id'", "did you mean 'FrozenLake-v1'?"]),
    ("wrong-space", "", ["env.id=CartPole-v1"],
     ["tabular_q", "Discrete observation space", "'CartPole-v1'", "env.id"]),
    ("set-without-equals", "", ["tabular_q.gamma"], ["--set expects key=value", "'tabular_q.gamma'"]),
    ("set-into-non-section", "", ["seed.x=1"], ["--set seed.x", "'seed' is not a section"]),
]


def _job_text(base, case_id, extra):
    if case_id == "unknown-nested-key":
        return base.replace('id = "FrozenLake-v1"', 'ids = "FrozenLake-v1"')
    if case_id == "wrong-type-str":
        return base.replace("seed = 0", 'seed = "abc"')
    return extra + base  # top-level keys must precede the first [section]


@pytest.mark.parametrize("case_id,extra,overrides,needles", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_bad_config(run_mpirl, write_job, base_job, tmp_path, case_id, extra, overrides, needles):
    job = write_job(_job_text(base_job, case_id, extra))
    sets = [a for o in overrides for a in ("--set", o)]
    cp = run_mpirl(["train", job, "--run-dir", str(tmp_path / "run"), *sets])
    line = assert_usage_error(cp, *needles)
    if case_id not in ("set-without-equals", "set-into-non-section"):
        # Errors name where the key was given: the --set override, or the job file for its own keys.
        where = f"--set {overrides[0].split('=')[0]}" if overrides else job
        assert line.startswith(f"mpirl: error: {where}: "), line
    assert not (tmp_path / "run").exists()  # nothing written for a rejected job


@pytest.mark.parametrize("kwargs", [
    "{bogus = 1}",
    '{map_name = "9x9"}',
], ids=["unknown-kwarg", "bad-kwarg-value"])
def test_env_kwargs_rejected(run_mpirl, write_job, tmp_path, kwargs):
    cp = run_mpirl(["train", write_job(), "--run-dir", str(tmp_path / "run"), "--set", f"env.kwargs={kwargs}"])
    assert_usage_error(cp, "'FrozenLake-v1'", "env.kwargs")


def test_bad_command_line_reported_once(run_mpirl, write_job):
    cp = run_mpirl(["train", write_job(), "--bogus"])
    assert cp.returncode == 2 and cp.elapsed < DEADLINE_S and "Traceback" not in cp.stderr, cp.stderr
    assert cp.stderr.count("unrecognized arguments: --bogus") == 1, cp.stderr


def test_bad_key_at_four_ranks(run_mpirl, tmp_path):
    """The repo's own job with a typo, at 4 ranks: still one line, exit 2."""
    job = os.path.join(REPO, "jobs", "frozenlake_q.toml")
    cp = run_mpirl(["train", job, "--run-dir", str(tmp_path / "run"), "--set", "env.idd=Taxi-v4"], n=4)
    assert_usage_error(cp, "--set env.idd: unknown key 'env.idd'", "did you mean 'env.id'?")


def test_missing_job_file(run_mpirl, tmp_path):
    missing = str(tmp_path / "nope.toml")
    cp = run_mpirl(["train", missing])
    assert_usage_error(cp, "job file not found", missing)


def test_malformed_toml(run_mpirl, write_job):
    job = write_job('algo = "tabular_q"\n[env\nid = "FrozenLake-v1"\n', name="broken.toml")
    cp = run_mpirl(["train", job])
    assert_usage_error(cp, job, "not valid TOML", "line 2")


def test_no_job_and_no_resume(run_mpirl):
    cp = run_mpirl(["train"])
    assert_usage_error(cp, "train needs a job file")


def test_rank_count_too_small(monkeypatch, write_job, tmp_path):
    """An algo needing 2 ranks launched on 1: UsageError naming the launch command (no MPI needed)."""
    import mpirl.algos.tabular_q as tabular_q
    from mpirl.errors import UsageError
    from mpirl.run import prepare

    monkeypatch.setattr(tabular_q, "MIN_RANKS", 2)
    run_dir = tmp_path / "run"
    args = argparse.Namespace(job=write_job(), set=[], run_dir=str(run_dir), resume=False, no_eval=True)
    with pytest.raises(UsageError, match="mpirun -n 2") as info:
        prepare(args, 1)
    assert "'tabular_q'" in str(info.value) and "got 1" in str(info.value)
    assert not run_dir.exists()
    plan, resume = prepare(args, 2)  # enough ranks: accepted
    assert plan["run_dir"] == str(run_dir) and plan["resume"] is None and resume is None


# ---------------------------------------------------------------- resume

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, run_mpirl, base_job):
    """A finished 2000-step FrozenLake 4x4 run at 2 ranks (one checkpoint)."""
    base = tmp_path_factory.mktemp("trained")
    job = base / "fl.toml"
    job.write_text(base_job)
    run_dir = base / "run"
    cp = run_mpirl(["train", str(job), "--run-dir", str(run_dir), "--set", "total_env_steps=2000", "--no-eval"],
                   timeout=60)
    assert cp.returncode == 0, cp.stderr
    ckpts = sorted(os.listdir(run_dir / "checkpoints"))
    assert ckpts == ["ckpt-2000.h5", "latest.h5"], ckpts
    return {"job": str(job), "run_dir": str(run_dir), "ckpt": str(run_dir / "checkpoints" / "ckpt-2000.h5")}


def _snapshot(run_dir):
    ck = os.path.join(run_dir, "checkpoints")
    with open(os.path.join(run_dir, "config.toml")) as f:
        return sorted(os.listdir(ck)), f.read()


def test_resume_without_run_dir(run_mpirl, write_job):
    cp = run_mpirl(["train", write_job(), "--resume"])
    assert_usage_error(cp, "--resume needs --run-dir")


def test_resume_without_checkpoints(run_mpirl, tmp_path):
    empty = tmp_path / "empty-run"
    empty.mkdir()
    cp = run_mpirl(["train", "--resume", "--run-dir", str(empty)])
    assert_usage_error(cp, "no checkpoint to resume from", str(empty))


def test_resume_other_env_via_set(run_mpirl, trained_run):
    before = _snapshot(trained_run["run_dir"])
    cp = run_mpirl(["train", "--resume", "--run-dir", trained_run["run_dir"], "--set", "env.id=Taxi-v4"])
    assert_usage_error(cp, trained_run["ckpt"], "'FrozenLake-v1'", "env.id = 'Taxi-v4'")
    assert _snapshot(trained_run["run_dir"]) == before


def test_resume_other_env_via_job(run_mpirl, write_job, base_job, trained_run):
    job = write_job(base_job.replace("FrozenLake-v1", "Taxi-v4"), name="taxi.toml")
    before = _snapshot(trained_run["run_dir"])
    cp = run_mpirl(["train", job, "--resume", "--run-dir", trained_run["run_dir"]])
    assert_usage_error(cp, trained_run["ckpt"], "'FrozenLake-v1'", "env.id = 'Taxi-v4'")
    assert _snapshot(trained_run["run_dir"]) == before


def test_resume_other_table_shape(run_mpirl, write_job, base_job, trained_run):
    job = write_job(base_job.replace('id = "FrozenLake-v1"', 'id = "FrozenLake-v1"\nkwargs = {map_name = "8x8"}'),
                    name="fl8.toml")
    before = _snapshot(trained_run["run_dir"])
    cp = run_mpirl(["train", job, "--resume", "--run-dir", trained_run["run_dir"]])
    assert_usage_error(cp, trained_run["ckpt"], "'q'", "(16, 4)", "(64, 4)")
    assert _snapshot(trained_run["run_dir"]) == before


def test_new_run_into_dir_with_checkpoints(run_mpirl, trained_run):
    before = _snapshot(trained_run["run_dir"])
    cp = run_mpirl(["train", trained_run["job"], "--run-dir", trained_run["run_dir"]])
    assert_usage_error(cp, trained_run["run_dir"], "is not empty", "checkpoints", "--resume")
    assert _snapshot(trained_run["run_dir"]) == before


# ---------------------------------------------------------------- eval

def test_eval_missing_file(run_mpirl, tmp_path):
    missing = str(tmp_path / "nope.h5")
    cp = run_mpirl(["eval", missing], n=None)
    assert_usage_error(cp, "checkpoint not found", missing)


@pytest.mark.parametrize("damage", ["flipped-bytes", "truncated", "not-hdf5"])
def test_eval_corrupted_file(run_mpirl, tmp_path, trained_run, damage):
    bad = str(tmp_path / f"{damage}.h5")
    shutil.copy(trained_run["ckpt"], bad)
    size = os.path.getsize(bad)
    if damage == "flipped-bytes":
        with open(bad, "r+b") as f:  # damage the middle of the file (data or metadata)
            f.seek(size // 2)
            chunk = f.read(64)
            f.seek(size // 2)
            f.write(bytes(b ^ 0xFF for b in chunk))
    elif damage == "truncated":
        with open(bad, "r+b") as f:
            f.truncate(size // 3)
    else:
        with open(bad, "w") as f:
            f.write("this is not a checkpoint\n")
    cp = run_mpirl(["eval", bad], n=None)
    assert_usage_error(cp, bad)


def test_eval_zero_episodes(run_mpirl, trained_run):
    cp = run_mpirl(["eval", trained_run["ckpt"], "--episodes", "0"], n=None)
    assert_usage_error(cp, "--episodes must be >= 1", "got 0")


def test_greedy_stop_check_refused_where_unsupported(run_mpirl, write_job, tmp_path):
    cp = run_mpirl(["train", write_job(), "--run-dir", str(tmp_path / "run"), "--set", "stop.greedy_episodes=10"])
    assert_usage_error(cp, "--set stop.greedy_episodes", "not supported by algo 'tabular_q'")


@pytest.mark.parametrize("algo", ["dqn", "apex"])
def test_value_based_algorithms_refuse_box_actions(run_mpirl, write_job, tmp_path, algo):
    job = write_job(f'algo = "{algo}"\n[env]\nid = "Pendulum-v1"\n')
    cp = run_mpirl(["train", job, "--run-dir", str(tmp_path / "run")], n=2)
    assert_usage_error(cp, f"algo {algo!r}", "Discrete action space", "'Pendulum-v1'", "Box(", "env.id")
