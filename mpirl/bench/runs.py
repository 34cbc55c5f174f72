"""Helpers for benchmarks that launch whole training runs as subprocesses and read their run directory."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def launch(job: str, ranks: int, overrides=(), timeout: float = 900, env=None, inspect=None) -> dict:
    """Run ``mpirun -n ranks mpirl train job`` to completion; returns launch time, rows and eval.

    ``rows`` are metrics.csv rows as floats; ``offset_s`` is the time from
    launch to the run's ``wall_time_s`` zero, so ``row["wall_time_s"]`` plus
    it gives launch-to-event times. ``env`` adds environment variables to the
    launch; ``inspect(run_dir)``, when given, runs before the run directory
    is removed and its result is returned as ``inspected``.
    """
    bindir = os.path.dirname(sys.executable)
    run_dir = tempfile.mkdtemp(prefix="mpirl-bench-")
    try:
        cmd = [os.path.join(bindir, "mpirun"), "-n", str(ranks), os.path.join(bindir, "mpirl"), "train", job,
               "--run-dir", run_dir, "--set", "log.interval_s=0.25"]
        for o in overrides:
            cmd += ["--set", o]
        t0 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, MPIEXEC_TIMEOUT=str(int(timeout)), **(env or {})))
        total = time.time() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
        with open(os.path.join(run_dir, "metrics.csv"), newline="") as f:
            rows = [{k: _float(v) for k, v in r.items()} for r in csv.DictReader(f)]
        with open(os.path.join(run_dir, "timings.json")) as f:
            timings = json.load(f)
        result = {}
        if os.path.exists(os.path.join(run_dir, "eval.json")):
            with open(os.path.join(run_dir, "eval.json")) as f:
                result = json.load(f)
        # wall_time_s counts from rank 0's run context, created after imports and set-up: shift it to launch time.
        offset = timings["wall_time_zero_unix"] - t0
        return {"rows": rows, "total_s": total, "offset_s": offset, "eval": result,
                "inspected": inspect(run_dir) if inspect else None}
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def time_to_return(run: dict, threshold: float) -> float:
    """Seconds from launch until the training return mean first reached ``threshold`` (inf if never)."""
    for r in run["rows"]:
        if r.get("episode_return_mean", float("nan")) >= threshold:
            return r["wall_time_s"] + run["offset_s"]
    return float("inf")


def mean_policy_lag(rows) -> float:
    """Mean ``policy_lag`` over the metrics rows that have one (NaN when none do)."""
    lags = [r["policy_lag"] for r in rows if isinstance(r.get("policy_lag"), float) and r["policy_lag"] == r["policy_lag"]]
    return sum(lags) / len(lags) if lags else float("nan")


def _float(v: str):
    try:
        return float(v)
    except ValueError:
        return v
