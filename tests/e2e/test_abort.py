"""An exception on one rank aborts the whole MPI job at once, with its traceback printed once.

Rank 1 raises ValueError after 0.5 s while rank 0 (and any other rank) waits
in ``World.barrier()`` or ``Receiver.recv()``: without
``install_abort_on_exception`` the waiting ranks would block forever.
"""
import sys

import pytest

SCRIPT = '''\
import sys
import time

from mpirl.comm import MessageSpec, get_world
from mpirl.comm.p2p import Receiver
from mpirl.comm.world import install_abort_on_exception

world = get_world()
install_abort_on_exception()
mode = sys.argv[1]


def fail_later():
    time.sleep(0.5)
    message = "bo" + "om"  # so that the word appears only in the exception line, not in the source line
    raise ValueError(message)


def step():
    fail_later()


if world.rank == 1:
    step()
elif world.rank == 0 and mode == "recv":
    Receiver(world, MessageSpec({"x": ((4,), "f8")}), 5, world.actor_ranks).recv()
else:
    world.barrier()
print(f"rank {world.rank} got past the wait", flush=True)
'''

DEADLINE_S = 10.0


@pytest.mark.parametrize("n", [2, 3])
@pytest.mark.parametrize("mode", ["barrier", "recv"])
def test_exception_on_one_rank_aborts_the_job(run_mpi, tmp_path, mode, n):
    script = tmp_path / "fail.py"
    script.write_text(SCRIPT)
    cp = run_mpi([sys.executable, str(script), mode], n=n, timeout=30)
    detail = f"rc={cp.returncode} elapsed={cp.elapsed:.1f}s\nstdout:\n{cp.stdout}\nstderr:\n{cp.stderr}"

    assert cp.elapsed < DEADLINE_S, detail
    assert cp.returncode != 0, detail
    assert "got past the wait" not in cp.stdout, detail
    assert cp.stderr.count("Traceback (most recent call last)") == 1, detail
    assert cp.stderr.count("boom") == 1, detail
    assert "[rank 1] ValueError: boom\n" in cp.stderr, detail
    assert "[rank 1] aborting the whole job (MPI_Abort)" in cp.stderr, detail

    # Every line of the traceback, from its header to the exception line, carries the rank prefix.
    lines = cp.stderr.splitlines()
    first = next(i for i, ln in enumerate(lines) if "Traceback (most recent call last)" in ln)
    last = next(i for i, ln in enumerate(lines) if "ValueError: boom" in ln)
    block = lines[first:last + 1]
    assert len(block) >= 6, detail  # header, three frames (module, step, fail_later) with code, exception
    bad = [ln for ln in block if not ln.startswith("[rank 1] ")]
    assert not bad, f"unprefixed traceback lines {bad}\n{detail}"
    for frame in ("<module>", "in step", "in fail_later"):
        assert any(frame in ln for ln in block), f"{frame} missing\n{detail}"
    # No other rank printed a traceback of its own.
    assert not any(ln.startswith("[rank ") and not ln.startswith("[rank 1] ") for ln in lines), detail


HANG_SCRIPT = '''\
import sys

from mpirl import cli
from mpirl.algos import tabular_q
from mpirl.errors import CheckpointError

real_train = tabular_q.train


def train(ctx):
    # A usage error on rank 0 after the verdict broadcast, while rank 1 is already in the Allreduce.
    if ctx.rank == 0:
        raise CheckpointError("checkpoint x.h5 is corrupted: checksum mismatch")
    return real_train(ctx)


tabular_q.train = train
sys.exit(cli.main(sys.argv[1:]))
'''


def test_usage_error_after_start_does_not_hang(run_mpi, run_mpirl, base_job, tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(base_job)
    run_dir = str(tmp_path / "run")
    assert run_mpirl(["train", str(job), "--run-dir", run_dir, "--no-eval"]).returncode == 0
    script = tmp_path / "late_error.py"
    script.write_text(HANG_SCRIPT)
    cp = run_mpi([sys.executable, str(script), "train", str(job), "--resume", "--run-dir", run_dir,
                  "--set", "total_env_steps=4000", "--no-eval"], n=2, timeout=8)
    detail = f"rc={cp.returncode} elapsed={cp.elapsed:.1f}s\nstderr:\n{cp.stderr}"
    assert cp.elapsed < 7, detail
    assert cp.returncode != 0, detail
    assert cp.stderr.count("checksum mismatch") == 1, detail
