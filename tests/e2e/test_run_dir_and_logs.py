"""What a user sees of a run: its directory, progress without a terminal, resume that only goes forward,
metrics that never run backwards, Ctrl-C that checkpoints, and the small CLI conveniences."""
import csv
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import MPIRL, MPIRUN
from mpirl import checkpoint

FOREVER = 50_000_000


def rows(run_dir):
    with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
        return list(csv.DictReader(f))


def test_runs_started_together_get_their_own_default_directories(write_job, tmp_path):
    job = write_job()
    procs = [subprocess.Popen([MPIRUN, "-n", "1", MPIRL, "train", job, "--no-eval"], cwd=str(tmp_path),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    dirs = sorted(os.listdir(tmp_path / "runs"))
    assert len(dirs) == 3 and all(d.startswith("job-") for d in dirs), dirs
    for d in dirs:  # each holds exactly one run: one header and one final checkpoint
        assert len(checkpoint.list_checkpoints(str(tmp_path / "runs" / d / "checkpoints"))) == 1
        assert sum(1 for r in rows(str(tmp_path / "runs" / d)) if r["env_steps"] == "env_steps") == 0


def test_run_directory_is_printed_first(run_mpirl, write_job, tmp_path):
    run = str(tmp_path / "run")
    p = run_mpirl(["train", write_job(), "--run-dir", run, "--no-eval"], n=1)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0] == f"mpirl: run directory {run}"
    assert p.stdout.splitlines()[1].startswith("mpirl: 1 rank on 1 host: ")


def test_non_empty_run_directory_is_refused_without_resume(run_mpirl, write_job, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("someone else's files")
    p = run_mpirl(["train", write_job(), "--run-dir", str(run)])
    assert p.returncode == 2
    assert "is not empty" in p.stderr and "--resume" in p.stderr and "Traceback" not in p.stderr
    assert os.listdir(run) == ["notes.txt"]


def test_plain_progress_lines_without_a_terminal(run_mpirl, write_job, base_job, tmp_path):
    job = write_job(base_job.replace("total_env_steps = 2000", "total_env_steps = 400000")
                    .replace("progress = false", "progress = true\nprint_every_s = 0.2")
                    .replace("interval_s = 0.0\ntensorboard", "interval_s = 0.05\ntensorboard"))
    p = run_mpirl(["train", job, "--run-dir", str(tmp_path / "run"), "--no-eval"], timeout=120,
                  env={"MPIRL_PROGRESS": ""})
    assert p.returncode == 0, p.stderr
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("mpirl: steps")]
    assert len(lines) >= 2, p.stdout  # one every 0.2 s, and the final one
    assert "\r" not in p.stdout  # no terminal redraws in a pipe
    assert lines[-1].split()[2] == "400,000"


def test_resume_below_the_checkpoint_is_refused(run_mpirl, write_job, tmp_path):
    run = str(tmp_path / "run")
    assert run_mpirl(["train", write_job(), "--run-dir", run, "--no-eval"]).returncode == 0
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", "total_env_steps=1000"])
    assert p.returncode == 2, p.stderr
    line = p.stderr.strip()
    assert line.startswith("mpirl: error: --set total_env_steps: ") and "2,000 env steps of checkpoint" in line, line
    assert checkpoint.load(os.path.join(run, "checkpoints", "latest.h5")).counters["env_steps"] == 2000


def test_metrics_never_run_backwards_after_a_resume(write_job, base_job, run_mpirl, tmp_path):
    # Checkpoints every 0.3 s, rows every 0.02 s: a kill -9 leaves rows logged after the last checkpoint.
    job = write_job(base_job.replace("total_env_steps = 2000", f"total_env_steps = {FOREVER}")
                    .replace("interval_s = 0.0\ntensorboard = false", "interval_s = 0.02\ntensorboard = true")
                    .replace("[checkpoint]\ninterval_s = 0.0", "[checkpoint]\ninterval_s = 0.3"))
    run = str(tmp_path / "run")
    proc = subprocess.Popen([MPIRUN, "-n", "2", MPIRL, "train", job, "--run-dir", run], cwd=str(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    ckpt_dir = os.path.join(run, "checkpoints")
    while len(checkpoint.list_checkpoints(ckpt_dir)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.15)  # some rows past the newest checkpoint
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    saved = checkpoint.load_latest(ckpt_dir).counters["env_steps"]
    before = [int(r["env_steps"]) for r in rows(run)]
    assert max(before) > saved, (before[-5:], saved)  # the situation the test is about
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", f"total_env_steps={saved + 20000}", "--no-eval"],
                  timeout=60)
    assert p.returncode == 0, p.stderr
    steps = [int(r["env_steps"]) for r in rows(run)]
    assert steps == sorted(steps) and steps[-1] == saved + 20000
    assert [s for s in steps if s <= saved] == [s for s in before if s <= saved]  # rows up to it are kept

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(os.path.join(run, "tb"), purge_orphaned_data=True)
    acc.Reload()
    tb_steps = [e.step for e in acc.Scalars("episodes")]
    assert tb_steps == sorted(tb_steps) and tb_steps[-1] == saved + 20000


def _start(cwd, args, n=2):
    return subprocess.Popen([MPIRUN, "-n", str(n), MPIRL, "train", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, MPIEXEC_TIMEOUT="120"))


def test_ctrl_c_checkpoints_stops_and_resumes(write_job, base_job, run_mpirl, tmp_path):
    # A terminal's Ctrl-C signals the whole foreground process group: mpirun and every rank.
    job = write_job(base_job.replace("total_env_steps = 2000", f"total_env_steps = {FOREVER}")
                    .replace("interval_s = 0.0\ntensorboard", "interval_s = 0.1\ntensorboard"))
    run = str(tmp_path / "run")
    proc = _start(str(tmp_path), [job, "--run-dir", run, "--no-eval"])
    deadline = time.monotonic() + 60
    while not (os.path.exists(os.path.join(run, "metrics.csv")) and len(rows(run)) >= 2):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    stopped = json.load(open(os.path.join(run, "stopped.json")))
    assert stopped["signal"] == "SIGINT" and 0 < stopped["env_steps"] < FOREVER
    assert f"resume with: mpirun -n 2 mpirl train --resume --run-dir {run}" in out
    assert "Traceback" not in err
    r = run_mpirl(["train", "--resume", "--run-dir", run, "--set", f"total_env_steps={stopped['env_steps'] + 4000}",
                   "--no-eval"], timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"at env step {stopped['env_steps']}" in r.stdout


def test_eval_and_inspect_take_a_run_directory(run_mpirl, write_job, tmp_path):
    run = str(tmp_path / "run")
    assert run_mpirl(["train", write_job(), "--run-dir", run, "--no-eval"]).returncode == 0
    p = run_mpirl(["eval", run, "--episodes", "5"], n=None)
    assert p.returncode == 0, p.stderr
    result = json.loads(p.stdout)
    assert result["episodes"] == 5 and result["checkpoint"] == os.path.join(run, "checkpoints", "latest.h5")
    assert json.loads(run_mpirl(["inspect", run], n=None).stdout)["counters"]["env_steps"] == 2000
    p = run_mpirl(["eval", str(tmp_path)], n=None)  # a folder that is no run directory
    assert p.returncode == 2 and "checkpoints/latest.h5" in p.stderr and "Traceback" not in p.stderr


def test_version_and_a_job_without_algo(run_mpirl, write_job, base_job):
    from mpirl import __version__

    p = run_mpirl(["--version"], n=None)
    assert p.returncode == 0 and p.stdout.strip() == f"mpirl {__version__}"
    for text in ("", base_job.replace('algo = "tabular_q"\n', "")):
        p = run_mpirl(["train", write_job(text)])
        assert p.returncode == 2 and "no 'algo' key" in p.stderr and "Traceback" not in p.stderr, p.stderr


@pytest.mark.parametrize("gap, aborts", [(0.2, False), (1.5, True)])
def test_second_ctrl_c_aborts_only_when_it_is_a_second_press(monkeypatch, gap, aborts):
    from mpirl import signals

    signals.reset()
    now = [100.0]
    monkeypatch.setattr(signals.time, "monotonic", lambda: now[0])
    signals._handler(signal.SIGINT, None)
    assert signals.requested() and signals.received() == "SIGINT"
    now[0] += gap  # the same Ctrl-C forwarded by mpiexec arrives within milliseconds
    if aborts:
        with pytest.raises(KeyboardInterrupt):
            signals._handler(signal.SIGINT, None)
    else:
        signals._handler(signal.SIGINT, None)
    signals.reset()


def test_per_rank_metric_columns_are_in_numeric_order(tmp_path):
    from mpirl.logger import MetricsLogger

    log = MetricsLogger(str(tmp_path), 0.0, tensorboard=False, progress=False)
    log.log({"env_steps": 1, "updates": 0, "wall_time_s": 0.0, "episode_return_mean": 0.0, "episodes": 0,
             **{f"env_steps_actor{r}": r for r in (10, 2, 1, 11)}})
    log.close()
    header = open(tmp_path / "metrics.csv").readline().strip().split(",")
    actors = [c for c in header if c.startswith("env_steps_actor")]
    assert actors == ["env_steps_actor1", "env_steps_actor2", "env_steps_actor10", "env_steps_actor11"]


@pytest.mark.parametrize("job,n", [("cartpole_dqn", 2), ("cartpole_apex", 3), ("cartpole_impala", 3),
                                   ("cartpole_a3c", 3), ("cartpole_a2c", 2), ("cartpole_gossip_a2c", 2)])
def test_every_torch_algorithm_takes_the_greedy_stop_check(run_mpirl, tmp_path, job, n):
    # A random policy's training mean (~22) passes 15 at once: the check runs, whatever it then decides.
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = run_mpirl(["train", os.path.join(repo, "jobs", f"{job}.toml"), "--run-dir", str(tmp_path / "run"),
                   "--set", "total_env_steps=30000", "--set", "stop.episode_return_mean=15",
                   "--set", "stop.greedy_episodes=3", "--set", "log.tensorboard=false", "--no-eval"], n=n, timeout=120)
    assert p.returncode == 0, p.stderr
    checks = [ln for ln in p.stdout.splitlines() if "greedy check over 3 episodes" in ln]
    assert checks, p.stdout
    if checks[-1].endswith("-> stop"):  # a confirmed stop ends the run before its budget
        assert int(rows(str(tmp_path / "run"))[-1]["env_steps"]) < 30000, checks
    assert all(c.endswith("-> continue") for c in checks[:-1]), checks  # a confirmed check is the last


def test_plot_draws_the_runs_curves_and_names_a_missing_file(run_mpirl, write_job, tmp_path):
    pytest.importorskip("matplotlib", reason="mpirl plot needs matplotlib (the bench extra)")
    run = str(tmp_path / "run")
    assert run_mpirl(["train", write_job(), "--run-dir", run, "--no-eval", "--set", "log.interval_s=0"],
                     n=1).returncode == 0
    out = str(tmp_path / "fig" / "curve.png")
    p = run_mpirl(["plot", run, run, "--x", "wall_time_s", "--out", out], n=None)
    assert p.returncode == 0 and p.stdout.strip() == f"wrote {out}", p.stderr
    import matplotlib.image

    img = matplotlib.image.imread(out)
    assert img.shape[0] == 440 and img.shape[1] == 770  # 7 x 4 inches at 110 dpi
    assert img[..., :3].std() > 0.05  # lines and labels, not a blank page
    p = run_mpirl(["plot", str(tmp_path / "nowhere"), "--out", out], n=None)
    assert p.returncode == 2 and "metrics.csv: no such file" in p.stderr and "Traceback" not in p.stderr
    p = run_mpirl(["plot", run, "--metric", "no_such", "--out", out], n=None)
    assert p.returncode == 2 and "no column 'no_such'" in p.stderr, p.stderr
