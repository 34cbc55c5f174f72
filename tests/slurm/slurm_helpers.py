"""Helpers of the SLURM tests: start/stop a test cluster, submit templates, wait for job states.

The clusters come from tests/slurm/start-cluster.sh (root only; installs slurm-wlm and munge with apt-get
if missing); when one cannot start, the tests that need it skip with the script's reason (`pytest -rs`
prints it; `make test` passes -rs).
"""
import csv
import os
import re
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
QUIET = ["--set", "log.tensorboard=false", "--set", "log.progress=false", "--set", "log.interval_s=0.2"]
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_env(tmp_path_factory, nodes=1):
    """Generator for a module fixture: start a cluster of ``nodes`` (emulated when > 1), yield the env
    (SLURM_CONF, PATH with this venv, STATE dir in MPIRL_TEST_SLURM_STATE), stop it afterwards."""
    state = str(tmp_path_factory.mktemp("slurm") / "cluster")
    env = dict(os.environ, MPIRL_SLURMCTLD_PORT=str(_free_port()), MPIRL_SLURMD_PORT=str(_free_port()))
    argv = ["bash", os.path.join(HERE, "start-cluster.sh"), *(["--nodes", str(nodes)] if nodes > 1 else []), state]
    stop = ["bash", os.path.join(HERE, "stop-cluster.sh"), state]
    try:
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        subprocess.run(stop, timeout=120)
        pytest.skip("SLURM tests skipped: start-cluster.sh took over 15 minutes")
    if r.returncode != 0:
        subprocess.run(stop, timeout=120)
        reason = (r.stderr.strip().splitlines() or [f"start-cluster.sh exited {r.returncode}"])[-1]
        print(f"\nSLURM tests skipped: {reason}", file=sys.stderr)
        pytest.skip(f"SLURM tests skipped: {reason}")
    env = dict(os.environ, SLURM_CONF=os.path.join(state, "slurm.conf"), MPIRL_TEST_SLURM_STATE=state,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("MPIRL_LAUNCHER", None)
    try:
        yield env
    finally:
        subprocess.run(stop, timeout=120)


def sbatch(env, out_dir, script, *args, options=(), extra_env=None):
    """Submit slurm/<script> with 2 tasks (``options`` may override), return the job id."""
    e = dict(env, MPIRL_RUNS=os.path.join(out_dir, "runs"), **(extra_env or {}))
    cmd = ["sbatch", "--parsable", f"--chdir={REPO}", "--ntasks=2", "--time=5",
           f"--output={out_dir}/slurm-%j.out", *options, os.path.join("slurm", script), *args]
    r = subprocess.run(cmd, env=e, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


def job_info(env, job_id):
    """`scontrol show job` as a dict."""
    r = subprocess.run(["scontrol", "-o", "show", "job", job_id], env=env, capture_output=True, text=True, timeout=30)
    return dict(re.findall(r"(\w+)=(\S*)", r.stdout))


def wait_state(env, job_id, states=ENDED, timeout=120):
    """Poll until the job is in one of ``states``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    info = {}
    while time.monotonic() < deadline:
        info = job_info(env, job_id)
        if info.get("JobState") in states:
            return info
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} not in {states} within {timeout} s: {info.get('JobState')} "
                         f"{info.get('Reason')}")


def read(path):
    """The text of a file."""
    with open(path) as f:
        return f.read()


def metrics_rows(metrics):
    """A metrics.csv as a list of dicts."""
    with open(metrics, newline="") as f:
        return list(csv.DictReader(f))


def env_steps_column(metrics):
    """The env_steps column of a metrics.csv as ints."""
    return [int(float(row["env_steps"])) for row in metrics_rows(metrics)]


def wait_for_rows(metrics, rows, timeout=60):
    """Wait until metrics.csv has more than ``rows`` data rows (the job is making progress)."""
    deadline = time.monotonic() + timeout
    while not (os.path.exists(metrics) and len(read(metrics).splitlines()) > rows + 1):
        assert time.monotonic() < deadline, f"no progress in {metrics}"
        time.sleep(0.3)


def job_stepds(env, job_id):
    """Pids of the slurmstepd processes of job ``job_id`` of this test cluster (its nodes' processes all run
    on this host; a stepd keeps its node's log, in the cluster's state dir, open)."""
    state = env["MPIRL_TEST_SLURM_STATE"] + os.sep
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if not f.read().startswith(f"slurmstepd: [{job_id}.".encode()):
                    continue
            links = [os.readlink(f"/proc/{pid}/cwd")]
            links += [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:  # the process ended while we looked
            continue
        if any(link.startswith(state) for link in links):
            found.append(int(pid))
    return found


def preempt_and_restart(env, job_id, out_dir):
    """Send USR1 to the batch shell (as --signal=B:USR1 would), wait for the requeue, start it now."""
    subprocess.run(["scancel", "--signal=USR1", "--batch", job_id], env=env, check=True, timeout=30)
    # The job checkpoints, exits 3, requeues itself and waits on its begin time: start it now.
    # Wait for the requeued job itself (pending again), not just the restart count: right after the
    # requeue the old run's end state can still show, and waiting for an end state would then return at once.
    deadline = time.monotonic() + 60
    info = job_info(env, job_id)
    while not (int(info.get("Restarts", "0")) >= 1 and info.get("JobState") in ("PENDING", "RUNNING")):
        assert time.monotonic() < deadline, (info.get("JobState"), read(f"{out_dir}/slurm-{job_id}.out"))
        time.sleep(0.5)
        info = job_info(env, job_id)
    # SLURM holds a requeued job for cred_expire + 1 s (120 s) before it may start again; StartTime=now
    # skips that, so do here what the delay ensures, or the restart can end FAILED:
    # - the old run's slurmstepds must be gone from every node. PENDING (no longer COMPLETING) comes
    #   sooner: on a loaded machine an old `[N.0]` stepd was seen exiting 0.8 s after the new `[N.0]` had
    #   started, and its exit unlinked the step's PMI-2 socket (SlurmdSpoolDir/sock.pmi2.N.0, the same
    #   path for the new step), so srun --mpi=pmi2 failed ("mpi/pmi2: failed to send temp kvs to compute
    #   nodes") and the step was killed (status 137);
    # - not within the second of the requeue: each node revoked the old run's job credential at a time in
    #   whole seconds and slurmd refuses a credential created in that second or earlier ("Killing
    #   non-startable batch JobId=N: Job credential revoked" in slurmctld.log, exit 1:0).
    if info["JobState"] == "RUNNING":  # started already (its begin time passed): nothing to hurry
        return
    deadline = time.monotonic() + 60
    while job_stepds(env, job_id):
        assert time.monotonic() < deadline, f"job {job_id}: the old run's slurmstepds still run after 60 s"
        time.sleep(0.2)
    time.sleep(1.05 - time.time() % 1)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], env=env, timeout=30)


def preempted_run(env, out_dir, script, total=400_000, options=(), extra_env=None):
    """A FrozenLake job of ``total`` steps preempted with USR1 once it makes progress; check that it
    requeued, resumed from its checkpoint's env step and completed; return its output."""
    jid = sbatch(env, out_dir, script, "jobs/frozenlake_q.toml", "--set", f"total_env_steps={total}",
                 "--set", "checkpoint.interval_s=1", "--no-eval", *QUIET, options=options, extra_env=extra_env)
    run = f"{out_dir}/runs/frozenlake_q-{jid}"
    wait_for_rows(f"{run}/metrics.csv", 2)
    preempt_and_restart(env, jid, out_dir)
    info = wait_state(env, jid, timeout=150)
    log = read(f"{out_dir}/slurm-{jid}.out")
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", (info.get("JobState"), log)
    check_resumed(log, run, total)
    return log


def check_resumed(log, run, total):
    """Assert a preempted job stopped, requeued, resumed from its checkpoint's env step and finished."""
    assert "mpirl exited with status 3" in log and "requeueing job" in log, log
    stopped = int(re.search(r"stopped by SIGUSR1 at env step (\d+)", log).group(1))
    resumed = int(re.search(r"resuming from \S+ckpt-(\d+)\.h5 at env step (\d+)", log).group(2))
    assert 0 < stopped == resumed < total, log
    assert "SLURM_RESTART_COUNT=1" in log and "restart 1" in log, log
    steps = env_steps_column(f"{run}/metrics.csv")
    assert steps[-1] == total
    # After the resume the counter continues from the checkpoint, never from zero.
    after = steps[steps.index(max(s for s in steps if s <= stopped)) + 1:]
    assert after and min(after) > stopped, steps
    assert os.path.exists(f"{run}/checkpoints/ckpt-{total}.h5")
    assert len(read(f"{run}/slurm-restarts.log").splitlines()) == 2
