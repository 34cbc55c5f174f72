"""Faults under real `mpirun`: a rank killed with SIGKILL, rank 0 killed while writing a checkpoint,
a silent (SIGSTOPped) actor, non-finite losses. Each job must end on its own (no hang), non-zero,
leave no process behind, and `--resume` must continue from the newest complete checkpoint.

Ranks are found as the descendants of our own `mpirun` (by their PMI_RANK), leftovers by the unique
run directory in their command line: nothing here touches processes this test did not start.
"""
import csv
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import time

import pytest

from conftest import MPIRL, MPIRUN
from mpirl import checkpoint

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
FOREVER = 50_000_000
QUIET = ["--set", "log.tensorboard=false", "--set", "log.progress=false", "--no-eval"]

# A tabular job that runs until killed and checkpoints every 0.2 s (FrozenLake: ~1 s start-up).
TABULAR_JOB = f"""\
algo = "tabular_q"
seed = 0
total_env_steps = {FOREVER}
[env]
id = "FrozenLake-v1"
[log]
interval_s = 0.1
[checkpoint]
interval_s = 0.2
[tabular_q]
sync_every = 50
"""


def _children():
    kids = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(name))
    return kids


def descendants(pid):
    """Every living descendant of ``pid``."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def rank_pids(mpirun_pid):
    """``{rank: pid}`` of the MPI ranks started by our ``mpirun`` (read from their PMI_RANK)."""
    out = {}
    for pid in descendants(mpirun_pid):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith(b"PMI_RANK="):
                out[int(item[9:])] = pid
    return out


def processes_of(run_dir):
    """PIDs of living (non-zombie) processes whose command line names ``run_dir``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if run_dir in cmd and state != "Z":
            found.append(int(name))
    return found


def assert_nothing_left(run_dir, also=(), within_s=5.0):
    """Every process of the run (and the PIDs in ``also``) is gone within ``within_s``."""
    deadline = time.monotonic() + within_s
    while True:
        left = processes_of(run_dir) + [p for p in also if _alive(p)]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"processes left behind: {[_describe(p) for p in left]}"


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _describe(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return pid, f.read().replace(b"\0", b" ").decode(errors="replace")[:200]
    except OSError:
        return pid, "?"


@pytest.fixture
def launch():
    """``launch(args, n, env=None)``: start ``mpirun -n n mpirl train args`` in its own session.

    At teardown anything still running of it is continued and killed (by its process group and
    the PIDs found under it), so a failing test leaves no stopped or orphaned rank behind.
    """
    started = []

    def start(args, n, env=None):
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("PMI_", "PMIX_", "HYDRA_", "HYDI_", "MPI_LOCAL", "OMPI_"))}
        e.update(MPIEXEC_TIMEOUT="120", **(env or {}))
        proc = subprocess.Popen([MPIRUN, "-n", str(n), MPIRL, "train", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=e, start_new_session=True)
        proc.known_pids = set()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        pids = proc.known_pids | set(descendants(proc.pid))
        for pid in pids:
            _signal(pid, signal.SIGCONT)
        if proc.poll() is None:
            _signal(-proc.pid, signal.SIGKILL)
        for pid in pids:
            _signal(pid, signal.SIGKILL)
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pass


def _signal(pid, sig):
    try:
        if pid < 0:
            os.killpg(-pid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_for(what, test, proc, timeout_s=90.0):
    """Poll ``test()`` every 20 ms until true; fail if ``proc`` ends or ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while not test():
        if proc.poll() is not None or time.monotonic() > deadline:
            out, err = proc.communicate() if proc.poll() is not None else ("", "")
            pytest.fail(f"waiting for {what}: job ended (rc={proc.returncode}) or {timeout_s} s passed\n{err}")
        time.sleep(0.02)


def signal_rank(proc, pid, sig, timeout_s, hang_message):
    """Send ``sig`` to one rank of the job ``proc`` and wait for the job to end; returns (out, err, seconds).

    The job's processes are recorded first so the test can check that none outlives it.
    """
    proc.known_pids = set(descendants(proc.pid))
    sent_at = time.monotonic()
    os.kill(pid, sig)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pytest.fail(hang_message)
    return out, err, time.monotonic() - sent_at


def last_row(run_dir):
    """The newest row of ``metrics.csv`` as a dict ({} before the first)."""
    try:
        with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
            rows = list(csv.DictReader(f))
        return rows[-1] if rows else {}
    except (OSError, csv.Error):
        return {}


def complete_checkpoints(ckpt_dir):
    """``{env_steps: path}`` of the checkpoints that load (checksum verified)."""
    out = {}
    for path in checkpoint.list_checkpoints(ckpt_dir):
        try:
            out[int(checkpoint.load(path).counters["env_steps"])] = path
        except checkpoint.CheckpointError:
            pass
    return out


def resume(run_dir, target_steps, n=3, timeout=120):
    """``mpirl train --resume`` to ``target_steps``; returns (CompletedProcess, seconds)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "HYDRA_", "HYDI_"))}
    e["MPIEXEC_TIMEOUT"] = str(timeout)
    start = time.monotonic()
    p = subprocess.run([MPIRUN, "-n", str(n), MPIRL, "train", "--resume", "--run-dir", run_dir,
                        "--set", f"total_env_steps={target_steps}", *QUIET],
                       capture_output=True, text=True, env=e, timeout=timeout + 15)
    return p, time.monotonic() - start


# ---------------------------------------------------------------- kill -9 of a random rank

# Most trials use the 1-second tabular job; a few use the torch algorithms (their start-up costs ~5 s).
TORCH_TRIALS = {16: "cartpole_dqn", 17: "cartpole_apex", 18: "cartpole_impala", 19: "cartpole_a3c"}
TORCH_SETS = ["--set", "env.num_envs=4", "--set", "checkpoint.interval_s=0.3", "--set", "log.interval_s=0.1",
              "--set", "stop.episode_return_mean=100000", "--set", f"total_env_steps={FOREVER}"]
KILL_TIMES = {}


@pytest.mark.parametrize("seed", range(20))
def test_kill_9_of_a_random_rank_ends_the_job_and_resume_continues(launch, tmp_path, seed):
    """The seed picks the rank, the phase (start-up with probability 0.15: 5 of the 20 seeds; else training) and the delay."""
    rng = random.Random(seed)
    victim = rng.randrange(3)
    startup = rng.random() < 0.15
    delay = rng.uniform(0.05, 1.0) if startup else rng.uniform(0.0, 1.5)
    run = str(tmp_path / f"run-{seed}")
    ckpt_dir = os.path.join(run, "checkpoints")
    if seed in TORCH_TRIALS:
        args = [os.path.join(ROOT, "jobs", TORCH_TRIALS[seed] + ".toml"), "--run-dir", run, *TORCH_SETS]
        if "apex" in TORCH_TRIALS[seed] or "dqn" in TORCH_TRIALS[seed]:
            args += ["--set", f"{TORCH_TRIALS[seed].split('_')[1]}.learning_starts=300"]
    else:
        job = tmp_path / "job.toml"
        job.write_text(TABULAR_JOB)
        args = [str(job), "--run-dir", run]
    proc = launch(args + QUIET, n=3)
    wait_for("the ranks", lambda: len(rank_pids(proc.pid)) == 3, proc, 30)
    if not startup:
        wait_for("the first checkpoint", lambda: os.path.exists(os.path.join(ckpt_dir, "latest.h5")), proc)
    time.sleep(delay)
    out, err, took = signal_rank(proc, rank_pids(proc.pid)[victim], signal.SIGKILL, 30,
                                 f"seed {seed}: the job still runs 30 s after kill -9 of rank {victim}")
    KILL_TIMES[seed] = took
    detail = f"seed {seed} rank {victim} startup={startup} delay={delay:.2f}s rc={proc.returncode}\n{err[-3000:]}"
    sys.stderr.write(f"\n[faults] seed {seed}: {TORCH_TRIALS.get(seed, 'tabular_q')} rank {victim} "
                     f"{'start-up' if startup else 'training'} +{delay:.2f}s -> exit {proc.returncode} "
                     f"after {took:.2f} s\n")
    assert proc.returncode != 0, detail
    assert took < 30, detail
    assert_nothing_left(run, proc.known_pids)

    # --resume continues from the checkpoint latest.h5 names, which must be complete and the newest one.
    complete = complete_checkpoints(ckpt_dir)
    if not complete:
        assert startup or not os.path.exists(os.path.join(ckpt_dir, "latest.h5")), detail
        p, _ = resume(run, FOREVER)
        assert p.returncode == 2 and "no checkpoint to resume from" in p.stderr, p.stderr
        return
    latest = checkpoint.load_latest(ckpt_dir, warn=lambda m: None)
    steps = int(latest.counters["env_steps"])
    newer = [s for s in complete if s > steps]
    # The one moment a complete file is not yet latest: rank 0 killed between its rename and the link,
    # by the victim's death or by the launcher taking the job down (any victim). At most that one file.
    assert len(newer) <= 1, f"complete checkpoints {newer} newer than latest ({steps})\n{detail}"
    target = steps + (1000 if seed in TORCH_TRIALS else 20000)
    p, _ = resume(run, target)
    assert p.returncode == 0, p.stderr
    assert f"resuming from {latest.path} at env step {steps}" in p.stdout + p.stderr, p.stdout + p.stderr
    assert checkpoint.load_latest(ckpt_dir).counters["env_steps"] >= target
    assert_nothing_left(run)


def test_kill_9_summary():
    """Prints the exit times of the trials above (runs after them in file order)."""
    if len(KILL_TIMES) < 20:
        pytest.skip("needs all 20 kill -9 trials in the same session")
    times = sorted(KILL_TIMES.values())
    sys.stderr.write(f"\n[faults] exit after kill -9 over 20 trials: median {statistics.median(times):.3f} s, "
                     f"max {times[-1]:.3f} s\n")
    assert times[-1] < 30


# ---------------------------------------------------------------- rank 0 killed inside a checkpoint write

@pytest.mark.parametrize("point", ["checkpoint_mid_write", "checkpoint_before_rename", "checkpoint_before_link"])
def test_rank0_killed_while_writing_a_checkpoint_keeps_the_previous_one_latest(run_mpirl, base_job, tmp_path,
                                                                                point):
    """MPIRL_FAULT=<point> makes rank 0 SIGKILL itself at that step of writing ckpt-8000.h5."""
    job = tmp_path / "job.toml"
    job.write_text(base_job)
    run = str(tmp_path / "run")
    ckdir = os.path.join(run, "checkpoints")
    base = ["--set", "log.interval_s=0", "--no-eval"]
    p = run_mpirl(["train", str(job), "--run-dir", run, "--set", "total_env_steps=4000"] + base, n=2)
    assert p.returncode == 0, p.stderr
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", "total_env_steps=8000"] + base, n=2,
                  env={"MPIRL_FAULT": point}, timeout=60)
    assert p.returncode == 9 or "signal 9" in p.stderr.lower() or "killed" in p.stderr.lower(), p.stderr
    assert p.returncode != 0 and p.elapsed < 30, (p.returncode, p.elapsed, p.stderr)
    tmp, final = os.path.join(ckdir, "ckpt-8000.h5.tmp"), os.path.join(ckdir, "ckpt-8000.h5")
    if point == "checkpoint_mid_write":
        assert os.path.exists(tmp) and not os.path.exists(final)
        with pytest.raises(checkpoint.CheckpointError):
            checkpoint.load(tmp)  # really half-written
    elif point == "checkpoint_before_rename":
        assert os.path.exists(tmp) and not os.path.exists(final)
    else:
        assert checkpoint.load(final).counters["env_steps"] == 8000  # complete, but latest did not move yet
    assert os.readlink(os.path.join(ckdir, "latest.h5")) == "ckpt-4000.h5"
    assert checkpoint.load_latest(ckdir).counters["env_steps"] == 4000
    p = run_mpirl(["train", "--resume", "--run-dir", run, "--set", "total_env_steps=8000"] + base, n=2)
    assert p.returncode == 0, p.stderr
    assert "at env step 4000" in p.stdout
    assert os.readlink(os.path.join(ckdir, "latest.h5")) == "ckpt-8000.h5"
    assert checkpoint.load_latest(ckdir).counters["env_steps"] == 8000


# ---------------------------------------------------------------- a silent actor

SILENT_CASES = {
    # algo: (job, ranks, rank to stop, extra sets); impala: the Receiver's clock, tabular_q: an Allreduce roll call
    "impala": ("cartpole_impala", 3, 2, ["--set", "env.num_envs=8", "--set", "checkpoint.interval_s=0.5"]),
    "tabular_q": (None, 3, 1, []),
}


@pytest.mark.parametrize("algo", sorted(SILENT_CASES))
def test_a_stopped_actor_is_named_and_the_job_aborts(launch, tmp_path, algo):
    job, n, victim, extra = SILENT_CASES[algo]
    run = str(tmp_path / "run")
    if job is None:
        (tmp_path / "job.toml").write_text(TABULAR_JOB)
        path = str(tmp_path / "job.toml")
    else:
        path = os.path.join(ROOT, "jobs", job + ".toml")
    proc = launch([path, "--run-dir", run, "--set", "fault.actor_timeout_s=3", "--set", f"total_env_steps={FOREVER}",
                   "--set", "stop.episode_return_mean=100000", "--set", "log.interval_s=0.1", *extra, *QUIET], n=n)

    def victim_delivered():
        row = last_row(run)
        key = f"env_steps_actor{victim}" if f"env_steps_actor{victim}" in row else "env_steps"
        return float(row.get(key) or 0) > 0 and os.path.exists(os.path.join(run, "checkpoints", "latest.h5"))

    wait_for(f"rank {victim} to deliver and a checkpoint", victim_delivered, proc)
    out, err, took = signal_rank(proc, rank_pids(proc.pid)[victim], signal.SIGSTOP, 15,
                                 f"{algo}: the job still runs 15 s after SIGSTOP of rank {victim}")
    sys.stderr.write(f"\n[faults] {algo}: SIGSTOP rank {victim} -> exit {proc.returncode} after {took:.2f} s\n")
    detail = f"rc={proc.returncode} after {took:.1f} s\n{err[-3000:]}"
    assert proc.returncode == 4, detail
    lines = [ln for ln in err.splitlines() if "mpirl: fault:" in ln]
    assert len(lines) == 1, detail
    assert re.match(rf"\[rank 0\] mpirl: fault: rank {victim} went silent: .*fault\.actor_timeout_s = 3\b",
                    lines[0]), detail
    assert "Traceback" not in err, detail
    assert 3 <= took < 15, detail
    assert_nothing_left(run, proc.known_pids)
    assert checkpoint.load_latest(os.path.join(run, "checkpoints")).counters["env_steps"] > 0  # intact


# ---------------------------------------------------------------- non-finite losses

NONFINITE_CASES = {
    # job, ranks, extra sets; the loss turns NaN at each learner's K-th loss computation
    "dqn": ("cartpole_dqn", 2, ["--set", "dqn.learning_starts=300", "--set", "fault.max_nonfinite=40"]),
    "a3c": ("cartpole_a3c", 2, ["--set", "fault.max_nonfinite=10"]),
}
NAN_FROM = 400


@pytest.mark.parametrize("algo", sorted(NONFINITE_CASES))
def test_nonfinite_losses_are_skipped_counted_and_stop_the_run(run_mpirl, tmp_path, algo):
    job, n, extra = NONFINITE_CASES[algo]
    run = str(tmp_path / "run")
    max_nonfinite = int(extra[-1].split("=")[1])
    p = run_mpirl(["train", os.path.join(ROOT, "jobs", job + ".toml"), "--run-dir", run,
                   "--set", "env.num_envs=4", "--set", f"total_env_steps={FOREVER}", "--set", "log.interval_s=0",
                   "--set", "checkpoint.interval_s=0.2", "--set", "stop.episode_return_mean=100000", *extra, *QUIET],
                  n=n, timeout=90, env={"MPIRL_FAULT": f"nan_loss:{NAN_FROM}"})
    detail = f"rc={p.returncode}\n{p.stderr[-3000:]}"
    assert p.returncode == 4, detail
    lines = [ln for ln in p.stderr.splitlines() if "mpirl: fault:" in ln]
    assert lines and all(f"{max_nonfinite} updates in a row had a non-finite loss or gradient "
                         f"(fault.max_nonfinite = {max_nonfinite}" in ln for ln in lines), detail
    with open(os.path.join(run, "metrics.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    skipped = [int(float(r["nonfinite_skipped"])) for r in rows if r.get("nonfinite_skipped")]
    assert skipped and skipped[0] == 0 and 0 < max(skipped) < max_nonfinite, skipped
    # The skipped updates never reached the weights: the newest checkpoint is finite, complete, and
    # holds no update made from a NaN loss.
    latest = checkpoint.load_latest(os.path.join(run, "checkpoints"))
    assert checkpoint.nonfinite_arrays(latest.state) == []
    assert 0 < int(latest.counters["updates"]) < NAN_FROM
