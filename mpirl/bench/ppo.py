"""`mpirl bench ppo`: PPO's launch-to-return times at several rank counts, and its scaling at a fixed batch.

``--mode return`` (the default) runs ``mpirun -n N mpirl train --job`` for
each rank count and seed and reports launch-to-training-return-mean
``--threshold`` seconds (start-up included), env steps/s, the fraction of
wall time in MPI calls and the final greedy eval.

``--mode scaling`` keeps the total batch fixed: with N ranks each rank
collects ``--batch-steps / (N x env.num_envs)`` steps per copy per
iteration, and the minibatch count per rank stays the job's, so every rank
count takes the same optimizer steps on the same global minibatch size (the
DD-PPO setting). Every run stops at ``--steps`` env steps; the table gives
wall time, env steps/s, speed-up over the smallest rank count, and the
seconds each rank spent in MPI calls (the gradient Allreduces dominate).

Writes ``ppo_<mode>.csv`` / ``.json`` (and ``ppo_scaling.png``) into
``--out-dir``; ``--ranks`` and ``--seeds`` take ``4 2``, ``4,2`` or ranges.
"""
from __future__ import annotations

import json
import os
import statistics
import time

from mpirl.bench.output import (add_int_list, add_out_dir, bench_parser, flat_ints, print_written, pyplot_or_skip,
                                write_csv_json)
from mpirl.bench.runs import launch, time_to_return

COLUMNS = {
    "return": ["ranks", "seed", "launch_to_return_s", "env_steps", "env_steps_per_s", "mpi_time_frac", "eval_return",
               "total_s"],
    "scaling": ["ranks", "seed", "num_steps", "wall_s", "env_steps", "env_steps_per_s", "speedup", "mpi_s_per_rank",
                "mpi_time_frac", "total_s"],
}


def parser():
    """The ``mpirl bench ppo`` option parser."""
    p = bench_parser("ppo", __doc__)
    p.add_argument("--mode", choices=["return", "scaling"], default="return",
                   help="launch-to-return times, or scaling at a fixed total batch (default %(default)s)")
    p.add_argument("--job", default="jobs/cartpole_ppo.toml", help="ppo job file (default %(default)s)")
    add_int_list(p, "--ranks", [2, 4], "rank counts (default 2 4; scaling: e.g. 1 2 4)")
    add_int_list(p, "--seeds", [0, 1, 2], "seeds (default 0-2)")
    p.add_argument("--threshold", type=float, default=450.0,
                   help="return mode: training return mean to reach (default %(default)s)")
    p.add_argument("--batch-steps", type=int, default=2048,
                   help="scaling mode: env steps per iteration over all ranks (default %(default)s)")
    p.add_argument("--num-envs", type=int, default=4, help="scaling mode: env.num_envs per rank (default %(default)s)")
    p.add_argument("--steps", type=int, default=200_000,
                   help="scaling mode: env steps of every run (default %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for every run (repeatable; default none)")
    add_out_dir(p, "ppo")
    return p


def _return_row(run: dict, n: int, seed: int, threshold: float) -> dict:
    rows = run["rows"]
    first, last = rows[0], rows[-1]
    span = max(last["wall_time_s"] - first["wall_time_s"], 1e-9)
    return {"ranks": n, "seed": seed, "launch_to_return_s": time_to_return(run, threshold),
            "env_steps": last["env_steps"], "env_steps_per_s": (last["env_steps"] - first["env_steps"]) / span,
            "mpi_time_frac": last.get("mpi_time_frac", float("nan")),
            "eval_return": run["eval"].get("episode_return_mean", float("nan")), "total_s": run["total_s"]}


def _scaling_row(run: dict, n: int, seed: int, num_steps: int) -> dict:
    last = run["rows"][-1]
    wall = last["wall_time_s"]
    frac = last.get("mpi_time_frac", float("nan"))
    return {"ranks": n, "seed": seed, "num_steps": num_steps, "wall_s": wall, "env_steps": last["env_steps"],
            "env_steps_per_s": last["env_steps"] / max(wall, 1e-9), "mpi_s_per_rank": frac * wall,
            "mpi_time_frac": frac, "total_s": run["total_s"]}


def _plot(path: str, summary: list) -> bool:
    plt = pyplot_or_skip("ppo", path)
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ranks = [s["ranks"] for s in summary]
    ax.bar([str(r) for r in ranks], [s["wall_s"] - s["mpi_s_per_rank"] for s in summary], label="compute")
    ax.bar([str(r) for r in ranks], [s["mpi_s_per_rank"] for s in summary],
           bottom=[s["wall_s"] - s["mpi_s_per_rank"] for s in summary], label="in MPI calls")
    ax.set_xlabel("ranks")
    ax.set_ylabel("wall time (s, median)")
    ax.set_title("PPO at a fixed total batch")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv) -> int:
    """Run the benchmark; prints one JSON line per run and a median table, writes CSV/JSON (and a PNG)."""
    p = parser()
    args = p.parse_args(argv)
    args.ranks, args.seeds = flat_ints(args.ranks), flat_ints(args.seeds)
    if any(n < 1 for n in args.ranks):
        p.error("--ranks: rank counts must be >= 1")
    runs = []
    for n in args.ranks:
        for seed in args.seeds:
            overrides = [f"seed={seed}", "log.tensorboard=false", *args.set]
            if args.mode == "scaling":
                per_copy, rest = divmod(args.batch_steps, n * args.num_envs)
                if rest or per_copy < 1:
                    p.error(f"--batch-steps {args.batch_steps} is not a multiple of {n} ranks x {args.num_envs} envs")
                overrides += [f"env.num_envs={args.num_envs}", f"ppo.num_steps={per_copy}",
                              f"total_env_steps={args.steps}", "stop.episode_return_mean=1e9", "eval.episodes=1"]
                runs.append(_scaling_row(launch(args.job, n, overrides), n, seed, per_copy))
            else:
                runs.append(_return_row(launch(args.job, n, overrides), n, seed, args.threshold))
            print(json.dumps(runs[-1]), flush=True)
    cols = COLUMNS[args.mode]
    summary = [{"ranks": n, **{k: statistics.median(r[k] for r in runs if r["ranks"] == n) for k in cols[2:]
                               if k != "speedup"}} for n in args.ranks]
    if args.mode == "scaling":
        base = summary[0]["wall_s"]
        for s in summary + runs:
            s["speedup"] = base / s["wall_s"]
    print(f"\n{args.job}, {args.mode}, median of seeds {args.seeds}:")
    shown = [c for c in cols if c != "seed"]
    print(" ".join(f"{c:>16}" for c in shown))
    for s in summary:
        print(" ".join(f"{s.get(c, float('nan')):>16.4g}" for c in shown))
    stem = f"ppo_{args.mode}"
    paths = write_csv_json(args.out_dir, stem, runs, cols,
                           {"summary": summary, "runs": runs, "job": args.job, "mode": args.mode, "seeds": args.seeds,
                            "threshold": args.threshold, "batch_steps": args.batch_steps, "set": args.set,
                            "date": time.strftime("%Y-%m-%d")})
    if args.mode == "scaling":
        png = os.path.join(args.out_dir, f"{stem}.png")
        if _plot(png, summary):
            paths.append(png)
    print_written(paths)
    return 0
