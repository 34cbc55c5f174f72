"""`mpirl bench startup`: seconds from `mpirun` launch to every rank's first environment step.

Launches ``mpirun -n N mpirl train JOB`` several times (a short run), reads
the per-rank first-step times the run records in ``timings.json``, and
reports the median over repeats of the slowest rank. Writes
``startup.csv`` / ``startup.json`` into ``--out-dir`` (default a new
runs/bench-startup-<timestamp>; ``--out-dir docs/benchmarks`` updates the
recorded figures).
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from mpirl.bench.output import (add_int_list, add_out_dir, bench_parser, flat_ints, plural, print_written,
                                write_csv_json)


def measure_once(n: int, job: str, extra_args=()) -> dict:
    """One launch: seconds from launch to the first env step of the slowest and fastest rank."""
    bindir = os.path.dirname(sys.executable)
    run_dir = tempfile.mkdtemp(prefix="mpirl-startup-")
    try:
        cmd = [os.path.join(bindir, "mpirun"), "-n", str(n), os.path.join(bindir, "mpirl"), "train", job,
               "--run-dir", run_dir, "--no-eval", "--set", "total_env_steps=2000", *extra_args]
        launch = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, MPIEXEC_TIMEOUT="300"))
        total = time.time() - launch
        if proc.returncode != 0:
            raise RuntimeError(f"startup run failed: {proc.stderr[-2000:]}")
        with open(os.path.join(run_dir, "timings.json")) as f:
            firsts = json.load(f)["first_env_step_unix"]
        return {"ranks": n, "first_step_slowest_s": max(firsts) - launch,
                "first_step_fastest_s": min(firsts) - launch, "whole_run_s": total}
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def parser():
    """The ``mpirl bench startup`` option parser."""
    p = bench_parser("startup", __doc__)
    add_int_list(p, "--ranks", [1, 2, 4], "rank counts to launch with")
    p.add_argument("--repeats", type=int, default=5,
                   help="launches per rank count, interleaved; the median is reported (default %(default)s)")
    p.add_argument("--job", default="jobs/frozenlake_q.toml",
                   help="job file, run for 2000 env steps without eval (default %(default)s)")
    add_out_dir(p, "startup")
    return p


def main(argv) -> int:
    """Run the start-up benchmark; prints a table and writes CSV/JSON."""
    p = parser()
    args = p.parse_args(argv)
    args.ranks = flat_ints(args.ranks)
    if min(args.ranks) < 1 or args.repeats < 1:
        p.error("need --ranks >= 1 and --repeats >= 1")
    rows = []
    for rep in range(args.repeats):
        for n in args.ranks:  # interleaved, so background noise hits every rank count alike
            rows.append(dict(measure_once(n, args.job), repeat=rep))
    summary = []
    print(f"{'ranks':>5} {'first step, slowest rank (s)':>30} {'fastest rank (s)':>17}"
          f"  (median of {plural(args.repeats, 'repeat')})")
    for n in args.ranks:
        mine = [r for r in rows if r["ranks"] == n]
        s = {"ranks": n, "repeats": len(mine),
             "first_step_slowest_s_median": statistics.median(r["first_step_slowest_s"] for r in mine),
             "first_step_fastest_s_median": statistics.median(r["first_step_fastest_s"] for r in mine)}
        summary.append(s)
        print(f"{n:>5} {s['first_step_slowest_s_median']:>30.2f} {s['first_step_fastest_s_median']:>17.2f}")
    print_written(write_csv_json(args.out_dir, "startup", rows, list(rows[0]),
                                 {"summary": summary, "runs": rows, "job": args.job, "cpus": os.cpu_count(),
                                  "date": time.strftime("%Y-%m-%d")}))
    return 0
