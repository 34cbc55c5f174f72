"""``mpirl bench tabular``: env steps per rank until tabular Q-learning is within 3% of optimal, vs ranks.

For each rank count R (``--ranks``, default 1,2,4; also ``1 2 4`` or
``1-4``) and seed (``--seeds N``: seeds 0..N-1), the job (default
``jobs/frozenlake_q.toml``) is launched as ``mpirun -n R mpirl train`` with a
sequence of budgets ``--set total_env_steps=R*b`` (``b`` steps per rank), and
the final checkpoint's greedy policy is scored exactly with
:func:`mpirl.mdp.policy_return` against :func:`mpirl.mdp.optimal_policy`.

Why budgets rather than intermediate checkpoints: a run is deterministic given
seed, ranks and budget, and with ``b`` a multiple of ``sync_every`` the run
with budget ``b`` is exactly the first ``b`` steps per rank of any longer run,
so each point is reproducible; checkpoints are time-based and would land on
different steps in every repeat. Budgets follow a geometric grid (ratio
``--grid-ratio``, 2^(1/4) by default) from ``--min-steps`` up. Early on the
greedy policy flips in and out of the 3% band (on FrozenLake 4x4 a run can
pass at 19k steps and fail at 16k and 17.4k), so the reported
``steps_per_rank`` is the first budget from which ``1 + --confirm``
consecutive grid budgets all pass: when the policy is there and stays there.
Wall seconds are those of that passing run: ``wall_s`` from launch to exit
(start-up included) and ``train_s`` the run's own training time.

Writes ``tabular_scaling.csv`` (one row per rank count and seed),
``tabular_scaling.json`` (rows, summary, settings) and ``tabular_scaling.png``
(``--name`` changes the stem; skipped with a note without matplotlib, which
``pip install "mpirl[bench]"`` brings) into ``--out-dir``, by default a new
runs/bench-tabular-<timestamp> (``--out-dir docs/benchmarks`` updates the
recorded figures); ``--set KEY=VALUE`` overrides job keys in every
launch, e.g. ``--set tabular_q.combine=pooled``.
Run it without mpirun: it launches mpirun itself.
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from mpirl.bench.output import (add_int_list, add_out_dir, bench_parser, flat_ints, plural, print_written,
                                pyplot_or_skip, warn_if_no_matplotlib, write_csv_json)
from mpirl.errors import UsageError

TOLERANCE = 0.03
COLUMNS = ("ranks", "seed", "steps_per_rank", "total_env_steps", "reached", "exact_return", "optimum",
           "wall_s", "train_s", "launches")


def parser() -> argparse.ArgumentParser:
    """The ``mpirl bench tabular`` option parser."""
    p = bench_parser("tabular", __doc__)
    p.add_argument("--job", default="jobs/frozenlake_q.toml", help="tabular_q job file (default %(default)s)")
    add_int_list(p, "--ranks", [1, 2, 4], "rank counts (run in ascending order; speedups are against the smallest)")
    p.add_argument("--seeds", type=int, default=3, metavar="N",
                   help="number of seeds: seeds 0..N-1 per rank count (default %(default)s)")
    p.add_argument("--min-steps", type=int, default=2000, help="first budget, steps per rank (default %(default)s)")
    p.add_argument("--max-steps", type=int, default=200_000,
                   help="give up above this many steps per rank (default %(default)s)")
    p.add_argument("--grid-ratio", type=float, default=2 ** 0.25,
                   help="ratio between successive budgets (default 2^(1/4))")
    p.add_argument("--confirm", type=int, default=2,
                   help="further consecutive budgets that must pass too (default %(default)s)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per launch (default %(default)s)")
    p.add_argument("--name", default="tabular_scaling",
                   help="stem of the output files, e.g. to keep a variant apart (default %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a job key in every launch, e.g. --set tabular_q.combine=pooled "
                        "(repeatable; default none)")
    add_out_dir(p, "tabular")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse and check the ``mpirl bench tabular`` options."""
    p = parser()
    args = p.parse_args(argv)
    args.ranks = sorted(set(flat_ints(args.ranks)))
    if min(args.ranks) < 1:
        p.error("--ranks: rank counts must be >= 1")
    if args.seeds < 1 or args.min_steps < 1 or args.max_steps < args.min_steps or args.confirm < 0:
        p.error("need --seeds >= 1, 1 <= --min-steps <= --max-steps, --confirm >= 0")
    if args.grid_ratio <= 1.0:
        p.error("--grid-ratio must be > 1")
    if not os.path.exists(args.job):
        p.error(f"--job: file not found: {args.job}")
    return args


def within_tolerance(value: float, optimum: float) -> bool:
    """At most 3% of |optimum| below the optimum (so -13 allows -13.39 and 0.74 allows 0.718)."""
    return value >= optimum - TOLERANCE * abs(optimum) - 1e-9


class Problem:
    """The job's environment model, horizon and optimum, computed once."""

    def __init__(self, job: str, overrides=()):
        from mpirl import mdp
        from mpirl.config import load_job
        from mpirl.envs import episode_limit, make_env

        self.cfg = load_job(job, list(overrides))
        if self.cfg.algo != "tabular_q":
            raise SystemExit(f"mpirl bench tabular: {job} has algo {self.cfg.algo!r}, need 'tabular_q'")
        env = make_env(self.cfg.env, max_episode_steps=self.cfg.eval.max_episode_steps)
        self.horizon = episode_limit(env)
        self.model = mdp.tabular_model(env)
        env.close()
        self.optimum = mdp.optimal_policy(self.model, self.horizon)[1]
        self.sync_every = self.cfg.agent.sync_every

    def exact_return(self, q) -> float:
        """Exact time-limited return of the greedy policy of ``q``."""
        from mpirl import mdp

        return mdp.policy_return(self.model, q.argmax(axis=1), self.horizon)


def _bin(name: str) -> str:
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else name


def launch(job: str, ranks: int, seed: int, total: int, timeout: float, overrides=()) -> dict:
    """One ``mpirun -n ranks mpirl train`` with budget ``total`` (and ``overrides``, KEY=VALUE strings);
    returns its final Q-table and timings."""
    import numpy as np

    from mpirl import checkpoint

    run_dir = tempfile.mkdtemp(prefix="mpirl-bench-tabular-")
    cmd = [_bin("mpirun"), "-n", str(ranks), _bin("mpirl"), "train", job, "--run-dir", run_dir, "--no-eval",
           "--set", f"seed={seed}", "--set", f"total_env_steps={total}", "--set", "checkpoint.interval_s=0",
           "--set", "log.tensorboard=false", "--set", "log.progress=false"]
    for kv in overrides:
        cmd += ["--set", kv]
    # A launcher's variables left in the environment would make mpirun join the wrong job.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "HYDRA_", "HYDI_", "OMPI_"))}
    env["MPIEXEC_TIMEOUT"] = str(int(timeout))
    try:
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout + 30)
        wall = time.monotonic() - start
        latest = os.path.join(run_dir, "checkpoints", "latest.h5")
        # mpiexec has been seen to exit 0 after a rank failed, so the checkpoint is checked too.
        if proc.returncode != 0 or not os.path.exists(latest):
            raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        ck = checkpoint.load(latest)
        return {"q": np.asarray(ck.state["q"]), "wall_s": wall, "train_s": float(ck.counters["wall_time_s"]),
                "env_steps": int(ck.counters["env_steps"])}
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def budget_grid(min_steps: int, max_steps: int, ratio: float, sync_every: int) -> list[int]:
    """Geometric budgets (steps per rank) from ``min_steps`` to ``max_steps``, multiples of ``sync_every``.

    Multiples of ``sync_every``: a run then ends on a sync of every longer run,
    so it is exactly the first ``b`` steps per rank of them.
    """
    out, b = [], float(min_steps)
    while b <= max_steps * (1 + 1e-9):
        v = max(sync_every, int(round(b / sync_every)) * sync_every)
        if not out or v > out[-1]:
            out.append(v)
        b *= ratio
    return out


def steps_to_optimum(problem: Problem, args, ranks: int, seed: int, log=print) -> dict:
    """First budget (steps per rank) of the grid from which ``1 + confirm`` consecutive budgets pass."""
    grid = budget_grid(args.min_steps, args.max_steps, args.grid_ratio, problem.sync_every)
    tried, streak = [], 0
    for b in grid:
        r = launch(args.job, ranks, seed, b * ranks, args.timeout, args.set)
        r.update(budget=b, exact_return=problem.exact_return(r["q"]))
        r["ok"] = within_tolerance(r["exact_return"], problem.optimum)
        tried.append(r)
        streak = streak + 1 if r["ok"] else 0
        log(f"  ranks={ranks} seed={seed} steps/rank={b:>8} return={r['exact_return']:.4f} "
            f"{'ok' if r['ok'] else '--'} ({r['wall_s']:.1f} s)")
        if streak > args.confirm:
            break
    reached = streak > args.confirm
    best = tried[-1 - args.confirm] if reached else tried[-1]
    return {"ranks": ranks, "seed": seed, "steps_per_rank": best["budget"] if reached else None,
            "total_env_steps": best["env_steps"], "reached": reached,
            "exact_return": round(best["exact_return"], 6), "optimum": round(problem.optimum, 6),
            "wall_s": round(best["wall_s"], 3), "train_s": round(best["train_s"], 3), "launches": len(tried)}


def summarise(rows: list[dict], ranks: list[int]) -> list[dict]:
    """Per rank count: medians over seeds and speedups against the smallest rank count."""
    out = []
    for r in ranks:
        everyone = [x for x in rows if x["ranks"] == r]
        mine = [x for x in everyone if x["reached"]]
        # A seed that never got there counts as infinitely many steps, not as a missing value.
        steps = statistics.median(x["steps_per_rank"] if x["reached"] else math.inf for x in everyone)
        out.append({"ranks": r, "seeds_reached": len(mine), "seeds": len(everyone),
                    "steps_per_rank_median": steps if math.isfinite(steps) else None,
                    "wall_s_median": statistics.median(x["wall_s"] for x in mine) if mine else None,
                    "train_s_median": statistics.median(x["train_s"] for x in mine) if mine else None})
    base = out[0]
    for s in out:
        for key, name in (("steps_per_rank_median", "speedup_steps"), ("wall_s_median", "speedup_wall"),
                          ("train_s_median", "speedup_train")):
            s[name] = round(base[key] / s[key], 3) if base[key] and s[key] else None
    return out


def format_table(summary: list[dict]) -> str:
    """The summary as a fixed-width text table."""
    def f(v, fmt):
        width = int("".join(c for c in fmt.split(",")[0].split(".")[0] if c.isdigit()))
        return format(v, fmt) if v is not None else "-".rjust(width)

    lines = [f"{'ranks':>5} {'reached':>7} {'steps/rank (median)':>19} {'speedup':>7} "
             f"{'wall s':>7} {'speedup':>7} {'train s':>7} {'speedup':>7}"]
    for s in summary:
        lines.append(" ".join([
            f"{s['ranks']:>5} {s['seeds_reached']:>3}/{s['seeds']:<3}", f(s["steps_per_rank_median"], ">19,.0f"),
            f(s["speedup_steps"], ">7.2f"), f(s["wall_s_median"], ">7.2f"), f(s["speedup_wall"], ">7.2f"),
            f(s["train_s_median"], ">7.2f"), f(s["speedup_train"], ">7.2f")]))
    return "\n".join(lines)


def write_outputs(rows: list[dict], summary: list[dict], out_dir: str, meta: dict,
                  name: str = "tabular_scaling") -> list[str]:
    """Write ``name``.csv, .json and (with matplotlib) .png into ``out_dir``; returns the paths written."""
    paths = write_csv_json(out_dir, name, rows, COLUMNS, {"metadata": meta, "summary": summary, "rows": rows})
    png = os.path.join(out_dir, f"{name}.png")
    plt = pyplot_or_skip("tabular", png)
    if plt is None:
        return paths
    import matplotlib.ticker

    ranks = [s["ranks"] for s in summary]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for x in rows:
        if x["reached"]:
            a1.plot(x["ranks"], x["steps_per_rank"], "o", color="0.6", ms=4)
    have = [s for s in summary if s["steps_per_rank_median"]]
    if have:
        a1.plot([s["ranks"] for s in have], [s["steps_per_rank_median"] for s in have], "o-", label="median")
        b = have[0]
        a1.plot(ranks, [b["steps_per_rank_median"] * b["ranks"] / r for r in ranks], "k--", lw=1,
                label="ideal (pooled experience)")
    a1.set(xscale="log", yscale="log", xlabel="ranks", ylabel="env steps per rank",
           title="Steps per rank to reach 97% of optimal")
    a1.set_xticks(ranks, [str(r) for r in ranks])
    a1.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    if have:  # nothing to label when no seed reached the band
        a1.legend()
    for key, label in (("speedup_steps", "steps per rank"), ("speedup_wall", "wall (incl. start-up)"),
                       ("speedup_train", "training wall")):
        pts = [(s["ranks"], s[key]) for s in summary if s[key]]
        if pts:
            a2.plot(*zip(*pts), "o-", label=label)
    a2.plot(ranks, [r / ranks[0] for r in ranks], "k--", lw=1, label="ideal")
    variant = f" {' '.join(meta['overrides'])}" if meta.get("overrides") else ""
    a2.set(xlabel="ranks", ylabel=f"speedup vs {plural(ranks[0], 'rank')}",
           title=f"{meta['job']}{variant} ({meta['cpus']} CPUs)")
    a2.set_xticks(ranks, [str(r) for r in ranks])
    a2.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return paths + [png]


def main(argv: list[str]) -> int:
    """Run the scaling benchmark, print the table and write CSV/JSON/PNG."""
    args = parse_args(argv)
    try:
        problem = Problem(args.job, args.set)
    except UsageError as e:
        print(f"mpirl bench tabular: error: {e}", file=sys.stderr)
        return 2
    print(f"mpirl bench tabular: {args.job}: optimum {problem.optimum:.4f} over {problem.horizon} steps; "
          f"target >= {problem.optimum - TOLERANCE * abs(problem.optimum):.4f}", flush=True)
    warn_if_no_matplotlib("tabular", os.path.join(args.out_dir, f"{args.name}.png"))
    rows = []
    start = time.monotonic()
    for seed in range(args.seeds):
        for r in args.ranks:  # interleaved, so background load hits every rank count alike
            rows.append(steps_to_optimum(problem, args, r, seed, log=lambda m: print(m, flush=True)))
    summary = summarise(rows, args.ranks)
    print()
    print(format_table(summary))
    meta = {"job": args.job, "overrides": args.set, "ranks": args.ranks, "seeds": args.seeds,
            "min_steps": args.min_steps, "max_steps": args.max_steps,
            "grid_ratio": args.grid_ratio, "confirm": args.confirm, "tolerance": TOLERANCE,
            "optimum": problem.optimum, "horizon": problem.horizon, "cpus": os.cpu_count(),
            "command": "mpirl bench tabular " + " ".join(argv), "bench_seconds": round(time.monotonic() - start, 1),
            "date": datetime.datetime.now().isoformat(timespec="seconds")}
    print_written(write_outputs(rows, summary, args.out_dir, meta, args.name))
    return 0 if all(x["reached"] for x in rows) else 1
