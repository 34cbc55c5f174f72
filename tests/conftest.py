"""Shared test helpers: run ``mpirl``/scripts under ``mpirun`` with a hard deadline; tiny job files.

Nothing here imports mpi4py at import time, so plain (non-MPI) test runs
never initialise MPI in the pytest process.
"""
import os
import signal
import subprocess
import sys
import time

import pytest

BIN = os.path.dirname(sys.executable)
MPIRUN = os.path.join(BIN, "mpirun")
MPIRL = os.path.join(BIN, "mpirl")

# A tiny, quiet, valid job: FrozenLake 4x4, a few thousand steps, no TensorBoard.
BASE_JOB = """\
algo = "tabular_q"
seed = 0
total_env_steps = 2000

[env]
id = "FrozenLake-v1"

[log]
interval_s = 0.0
tensorboard = false
progress = false

[checkpoint]
interval_s = 0.0

[eval]
episodes = 10

[tabular_q]
gamma = 0.99
sync_every = 50
"""


def run_command(argv, timeout=30.0, env=None, cwd=None) -> subprocess.CompletedProcess:
    """Run ``argv`` with MPIEXEC_TIMEOUT=timeout and a hard kill of its process group a bit later.

    Returns a CompletedProcess with text stdout/stderr and an extra ``elapsed``
    attribute (seconds); a process still alive after the deadline fails the test.
    """
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("PMI_", "PMIX_", "HYDRA_", "HYDI_", "MPI_LOCAL", "OMPI_"))}
    e["MPIEXEC_TIMEOUT"] = str(int(timeout))
    e.update(env or {})
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=e, cwd=cwd, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout + 15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # mpirun and the ranks it started
        out, err = proc.communicate()
        pytest.fail(f"{argv} still running after {timeout + 15:.0f} s\nstdout:\n{out}\nstderr:\n{err}")
    cp = subprocess.CompletedProcess(argv, proc.returncode, out, err)
    cp.elapsed = time.monotonic() - start
    return cp


def mpirun_argv(n, argv):
    """``mpirun -n N argv...`` (``n`` None: ``argv`` alone, without MPI)."""
    return list(argv) if n is None else [MPIRUN, "-n", str(n), *argv]


@pytest.fixture(scope="session")
def run_mpi(tmp_path_factory):
    """``run_mpi(argv, n=2, timeout=30, env=None, cwd=None)``: ``mpirun -n n argv...`` (n=None: no mpirun).

    ``cwd`` defaults to a fresh temporary folder so a default ``runs/`` never
    lands in the repo.
    """
    default_cwd = str(tmp_path_factory.mktemp("cwd"))

    def run(argv, n=2, timeout=30.0, env=None, cwd=None):
        return run_command(mpirun_argv(n, argv), timeout, env, cwd or default_cwd)

    return run


@pytest.fixture(scope="session")
def run_mpirl(run_mpi):
    """``run_mpirl(args, n=2, timeout=30, env=None, cwd=None)``: ``mpirun -n n mpirl args...``.

    ``n=None`` runs ``mpirl`` directly (eval, inspect).
    """
    def run(args, n=2, timeout=30.0, env=None, cwd=None):
        return run_mpi([MPIRL, *args], n, timeout, env, cwd)

    return run


@pytest.fixture(scope="session")
def base_job():
    """The text of a tiny valid job (FrozenLake 4x4, 2000 steps, quiet)."""
    return BASE_JOB


@pytest.fixture
def write_job(tmp_path):
    """``write_job(text=BASE_JOB, name="job.toml")``: write a job file into tmp_path, return its path."""
    def write(text=BASE_JOB, name="job.toml"):
        path = tmp_path / name
        path.write_text(text)
        return str(path)

    return write


@pytest.fixture
def world():
    """A :class:`mpirl.comm.world.World` on a private duplicate of COMM_WORLD (MPI tests only)."""
    from mpi4py import MPI

    from mpirl.comm.world import World

    comm = MPI.COMM_WORLD.Dup()
    yield World(comm)
    comm.Free()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``mpirun -n N`` (N > 1), a failing MPI test aborts the whole job.

    Otherwise a test failing on one rank leaves the other ranks blocked in the
    next collective until the launcher's timeout. The failure is printed first.
    """
    outcome = yield
    rep = outcome.get_result()
    if not (rep.failed and item.get_closest_marker("mpi") and item.config.getoption("--with-mpi", False)):
        return
    from mpi4py import MPI

    if MPI.COMM_WORLD.Get_size() > 1:
        rank = MPI.COMM_WORLD.Get_rank()
        text = f"{item.nodeid} FAILED ({rep.when})\n{rep.longreprtext}"
        sys.stderr.write("".join(f"[rank {rank}] {ln}\n" for ln in text.splitlines()))
        sys.stderr.write(f"[rank {rank}] aborting the MPI job so the other ranks do not hang\n")
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)
