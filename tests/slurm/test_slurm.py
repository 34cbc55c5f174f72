"""The sbatch templates on a real one-node SLURM cluster (Debian slurm-wlm + munge) started here.

The session fixture runs tests/slurm/start-cluster.sh (root only; installs slurm-wlm and munge with
apt-get if missing) and tests/slurm/stop-cluster.sh afterwards. When the cluster cannot start, the
whole module is skipped with the script's reason (`pytest -rs` prints it; `make test` passes -rs).
Jobs are tiny tabular FrozenLake runs of 2 ranks launched by the bundled MPICH `mpiexec`.
"""
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
JOB = "jobs/frozenlake_q.toml"
QUIET = ["--set", "log.tensorboard=false", "--set", "log.progress=false", "--set", "log.interval_s=0.2"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    state = str(tmp_path_factory.mktemp("slurm") / "cluster")
    env = dict(os.environ, MPIRL_SLURMCTLD_PORT=str(_free_port()), MPIRL_SLURMD_PORT=str(_free_port()))
    try:
        r = subprocess.run(["bash", os.path.join(HERE, "start-cluster.sh"), state], env=env,
                           capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        subprocess.run(["bash", os.path.join(HERE, "stop-cluster.sh"), state], timeout=120)
        pytest.skip("SLURM tests skipped: start-cluster.sh took over 15 minutes")
    if r.returncode != 0:
        subprocess.run(["bash", os.path.join(HERE, "stop-cluster.sh"), state], timeout=120)
        reason = (r.stderr.strip().splitlines() or [f"start-cluster.sh exited {r.returncode}"])[-1]
        print(f"\nSLURM tests skipped: {reason}", file=sys.stderr)
        pytest.skip(f"SLURM tests skipped: {reason}")
    env = dict(os.environ, SLURM_CONF=os.path.join(state, "slurm.conf"),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("MPIRL_LAUNCHER", None)
    try:
        yield env
    finally:
        subprocess.run(["bash", os.path.join(HERE, "stop-cluster.sh"), state], timeout=120)


def sbatch(env, out_dir, script, *args, options=(), extra_env=None):
    e = dict(env, MPIRL_RUNS=os.path.join(out_dir, "runs"), **(extra_env or {}))
    cmd = ["sbatch", "--parsable", f"--chdir={REPO}", "--ntasks=2", "--time=5",
           f"--output={out_dir}/slurm-%j.out", *options, os.path.join("slurm", script), *args]
    r = subprocess.run(cmd, env=e, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().split(";")[0]


def job_info(env, job_id):
    r = subprocess.run(["scontrol", "-o", "show", "job", job_id], env=env, capture_output=True, text=True, timeout=30)
    return dict(re.findall(r"(\w+)=(\S*)", r.stdout))


def wait_state(env, job_id, states, timeout):
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
    with open(path) as f:
        return f.read()


def env_steps_column(metrics):
    lines = read(metrics).splitlines()
    col = lines[0].split(",").index("env_steps")
    return [int(float(line.split(",")[col])) for line in lines[1:]]


def test_train_completes(cluster, tmp_path):
    out = str(tmp_path)
    jid = sbatch(cluster, out, "train.sbatch", JOB, "--set", "total_env_steps=20000", "--set", "eval.episodes=50",
                 *QUIET)
    info = wait_state(cluster, jid, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, 120)
    log = read(f"{out}/slurm-{jid}.out")
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log
    assert "mpirl exited with status 0" in log and "launcher mpiexec" in log, log
    run = f"{out}/runs/frozenlake_q-{jid}"
    assert env_steps_column(f"{run}/metrics.csv")[-1] == 20000
    assert glob.glob(f"{run}/checkpoints/ckpt-*.h5"), os.listdir(run)
    assert os.path.exists(f"{run}/eval.json")


def test_array_two_seeds(cluster, tmp_path):
    out = str(tmp_path)
    jid = sbatch(cluster, out, "sweep-array.sbatch", JOB, "--", "--set", "total_env_steps=10000", "--no-eval",
                 *QUIET, options=["--array=0-1", f"--output={out}/slurm-%A_%a.out"], extra_env={"SEEDS": "0 1"})
    for task in (0, 1):
        info = wait_state(cluster, f"{jid}_{task}", {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, 120)
        assert info["JobState"] == "COMPLETED", read(f"{out}/slurm-{jid}_{task}.out")
    runs = sorted(os.listdir(f"{out}/runs"))
    assert runs == [f"frozenlake_q-s0-{jid}_0", f"frozenlake_q-s1-{jid}_1"], runs
    for seed, run in enumerate(runs):
        assert re.search(rf"^seed = {seed}$", read(f"{out}/runs/{run}/config.toml"), re.M)
        assert glob.glob(f"{out}/runs/{run}/checkpoints/ckpt-10000.h5")
    # Different seeds give different learning curves.
    assert read(f"{out}/runs/{runs[0]}/metrics.csv") != read(f"{out}/runs/{runs[1]}/metrics.csv")


def test_preempt_requeue_resume(cluster, tmp_path):
    out, total = str(tmp_path), 400_000
    jid = sbatch(cluster, out, "train.sbatch", JOB, "--set", f"total_env_steps={total}",
                 "--set", "checkpoint.interval_s=1", "--no-eval", *QUIET)
    run = f"{out}/runs/frozenlake_q-{jid}"
    deadline = time.monotonic() + 60
    while not (os.path.exists(f"{run}/metrics.csv") and len(read(f"{run}/metrics.csv").splitlines()) > 3):
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.5)
    subprocess.run(["scancel", "--signal=USR1", "--batch", jid], env=cluster, check=True, timeout=30)
    # The job checkpoints, exits 3, requeues itself and waits on its begin time: start it now.
    deadline = time.monotonic() + 60
    while int(job_info(cluster, jid).get("Restarts", "0")) < 1:
        assert time.monotonic() < deadline, read(f"{out}/slurm-{jid}.out")
        time.sleep(0.5)
    subprocess.run(["scontrol", "update", f"JobId={jid}", "StartTime=now"], env=cluster, timeout=30)
    info = wait_state(cluster, jid, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, 150)
    log = read(f"{out}/slurm-{jid}.out")
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log
    assert "mpirl exited with status 3" in log and "requeueing job" in log, log
    stopped = int(re.search(r"stopped by a signal at env step (\d+)", log).group(1))
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


def test_multinode_template_through_srun(cluster, tmp_path):
    # One node here: the template's own 2-node default is overridden, and srun (PMI-2) launches the
    # ranks as it would with a site MPI, instead of the bundled mpiexec.
    out = str(tmp_path)
    jid = sbatch(cluster, out, "train-multinode.sbatch", JOB, "--set", "total_env_steps=10000", "--no-eval",
                 *QUIET, options=["--nodes=1", "--ntasks-per-node=2"], extra_env={"MPIRL_LAUNCHER": "srun"})
    info = wait_state(cluster, jid, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, 120)
    log = read(f"{out}/slurm-{jid}.out")
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log
    assert "launcher srun" in log, log
    run = f"{out}/runs/frozenlake_q-{jid}"
    assert env_steps_column(f"{run}/metrics.csv")[-1] == 10000
    assert glob.glob(f"{run}/checkpoints/ckpt-10000.h5"), os.listdir(run)
