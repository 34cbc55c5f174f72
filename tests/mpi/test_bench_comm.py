"""``mpirl bench comm`` end to end: run it with --quick and check what rank 0 writes.

Run with: mpirun -n 2 python -m pytest --with-mpi -q tests/mpi/test_bench_comm.py
"""
import csv
import math
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from mpirl.bench.comm import IMPLS, NEED_2_RANKS, OPS


@pytest.mark.mpi(min_size=2)
def test_quick_bench_writes_csv_json_png():
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    # main() writes on rank 0 only, but every rank must agree on the path it is given.
    out = comm.bcast(tempfile.mkdtemp(prefix="mpirl_bench_") if comm.rank == 0 else None, root=0)
    try:
        from mpirl.bench.comm import main

        assert main(["--quick", "--repeats", "2", "--out-dir", out]) == 0
        if comm.rank == 0:
            with open(os.path.join(out, "comm.csv")) as f:
                rows = list(csv.DictReader(f))
            assert {(r["op"], r["impl"]) for r in rows} == {(o, i) for o in OPS for i in IMPLS}
            assert {int(r["bytes"]) for r in rows} >= {8, 1 << 20}
            for r in rows:
                lat, bw = float(r["latency_us"]), float(r["bandwidth_MBps"])
                assert math.isfinite(lat) and lat > 0, r
                assert math.isfinite(bw) and bw > 0, r
                assert int(r["ranks"]) == comm.size and int(r["repeats"]) == 2
            assert os.path.getsize(os.path.join(out, "comm.png")) > 0
            assert os.path.getsize(os.path.join(out, "comm.json")) > 0
    finally:
        comm.Barrier()
        if comm.rank == 0:
            shutil.rmtree(out, ignore_errors=True)


def test_one_rank_is_a_clear_error():
    # A fresh singleton process: drop the launcher's variables so it does not join this job.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "MPIR_", "HYDRA", "OMPI_"))}
    code = "import sys; from mpirl.bench.comm import main; sys.exit(main(['--quick']))"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert NEED_2_RANKS in proc.stderr
