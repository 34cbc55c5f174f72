"""SIGUSR1/SIGTERM to plain `mpirun` (Hydra forwards them to every rank): all ranks agree to stop,
rank 0 writes a checkpoint, the run exits 3 (mpirl.signals.EXIT_STOPPED) and `--resume` continues
from that checkpoint's env-step counter."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import MPIRL, MPIRUN

FOREVER = 50_000_000


def _start(cwd, args, n=2):
    return subprocess.Popen([MPIRUN, "-n", str(n), MPIRL, "train", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, MPIEXEC_TIMEOUT="120"))


def _last_env_steps(metrics):
    try:
        lines = open(metrics).read().splitlines()
        col = lines[0].split(",").index("env_steps")
        return int(float(lines[-1].split(",")[col])) if len(lines) > 2 else 0
    except (OSError, IndexError, ValueError):
        return 0


def _stop_with(proc, run_dir, sig):
    metrics = os.path.join(run_dir, "metrics.csv")
    deadline = time.monotonic() + 60
    while _last_env_steps(metrics) <= 0:  # signal once training runs (asynchronous learners log 0 at first)
        if time.monotonic() > deadline or proc.poll() is not None:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no progress: {proc.communicate()}")
        time.sleep(0.2)
    proc.send_signal(sig)  # to mpirun only, as SLURM's srun/batch shell would
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"run did not stop within 60 s of {sig.name}: {proc.communicate()}")
    return proc.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGTERM], ids=lambda s: s.name)
def test_tabular_signal_checkpoint_and_resume(tmp_path, write_job, base_job, run_mpirl, sig):
    job = write_job(base_job.replace("total_env_steps = 2000", f"total_env_steps = {FOREVER}")
                    .replace("interval_s = 0.0\ntensorboard", "interval_s = 0.2\ntensorboard"))
    run = str(tmp_path / "run")
    rc, out, err = _stop_with(_start(str(tmp_path), [job, "--run-dir", run]), run, sig)
    assert rc == 3, (out, err)
    stopped = json.load(open(os.path.join(run, "stopped.json")))
    assert stopped["signal"] == sig.name and stopped["exit_status"] == 3
    steps = stopped["env_steps"]
    assert 0 < steps < FOREVER
    assert os.path.exists(os.path.join(run, "checkpoints", f"ckpt-{steps}.h5")), os.listdir(run + "/checkpoints")
    assert not os.path.exists(os.path.join(run, "eval.json"))
    # Resume: continues from the checkpoint's counter, up to a new target, then exits 0.
    r = run_mpirl(["train", "--resume", "--run-dir", run, "--set", f"total_env_steps={steps + 5000}"], n=2,
                  timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"at env step {steps}" in r.stdout + r.stderr
    assert os.path.exists(os.path.join(run, "checkpoints", f"ckpt-{steps + 5000}.h5"))


@pytest.mark.parametrize("job,n", [("cartpole_dqn", 2), ("cartpole_apex", 3), ("cartpole_impala", 3),
                                   ("cartpole_a2c", 2), ("cartpole_a3c", 2), ("cartpole_gossip_a2c", 2)])
def test_algorithms_stop_on_signal(tmp_path, job, n):
    """Every algorithm's stop path honours the vote: synchronous ones reduce/broadcast it, asynchronous
    ones (A3C, Ape-X, IMPALA) send shutdown from rank 0; all checkpoint and exit 3."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    run = str(tmp_path / "run")
    proc = _start(str(tmp_path), [os.path.join(repo, "jobs", f"{job}.toml"), "--run-dir", run,
                                  "--set", f"total_env_steps={FOREVER}", "--set", "log.interval_s=0.2",
                                  "--set", "stop.episode_return_mean=100000",
                                  "--set", "log.tensorboard=false", "--set", "log.progress=false"], n=n)
    rc, out, err = _stop_with(proc, run, signal.SIGUSR1)
    assert rc == 3, (out, err)
    steps = json.load(open(os.path.join(run, "stopped.json")))["env_steps"]
    assert 0 < steps < FOREVER
    assert os.path.exists(os.path.join(run, "checkpoints", f"ckpt-{steps}.h5")), os.listdir(run + "/checkpoints")
