"""`mpirl bench actor_critic`: a2c, a3c and gossip_a2c on CartPole at N = 2 and 4 ranks.

For each algorithm, rank count and seed it runs ``mpirun -n N mpirl train
jobs/cartpole_<algo>.toml`` and reports, from the run's metrics: env steps/s
and updates/s (between the first and the last metrics row), the fraction of
wall time the ranks spent in MPI calls (``mpi_time_frac``, measured around
every communication call), mean gradient staleness (a3c), mean and final
consensus distance (gossip_a2c), launch-to-training-return-450 and -475 seconds
(the issue's speed target and the jobs' stop; ``--threshold`` changes the second), env
steps at the stop and the final greedy eval. Writes ``actor_critic.csv`` /
``.json`` into ``--out-dir`` (default a new runs/bench-actor_critic-<timestamp>;
``--out-dir docs/benchmarks`` updates the recorded figures). ``--ranks`` and
``--seeds`` take ``4 2``, ``4,2`` or ranges such as ``0-2``.

Updates are not the same unit across the three: one a2c update uses every
rank's unroll, an a3c update one worker's, and a gossip_a2c update is each
rank's own (counted once, as every rank makes one).
"""
from __future__ import annotations

import json
import math
import statistics
import time

from mpirl.bench.output import add_int_list, add_out_dir, bench_parser, flat_ints, print_written, write_csv_json
from mpirl.bench.runs import launch, time_to_return

ALGOS = ("a2c", "a3c", "gossip_a2c")
COLUMNS = ["algo", "ranks", "seed", "launch_to_450_s", "launch_to_475_s", "env_steps", "env_steps_per_s", "updates_per_s",
           "mpi_time_frac", "staleness", "consensus_distance_mean", "consensus_distance_last", "eval_return",
           "total_s"]


def _mean(rows, key):
    vals = [r[key] for r in rows if isinstance(r.get(key), float) and math.isfinite(r[key])]
    return statistics.fmean(vals) if vals else float("nan")


def summarise(run: dict, algo: str, ranks: int, seed: int, threshold: float) -> dict:
    """One benchmark row from a finished run (see the module docstring)."""
    rows = run["rows"]
    first, last = rows[0], rows[-1]
    span = max(last["wall_time_s"] - first["wall_time_s"], 1e-9)
    return {"algo": algo, "ranks": ranks, "seed": seed, "launch_to_450_s": time_to_return(run, 450.0),
            "launch_to_475_s": time_to_return(run, threshold),
            "env_steps": last["env_steps"], "env_steps_per_s": (last["env_steps"] - first["env_steps"]) / span,
            "updates_per_s": (last["updates"] - first["updates"]) / span,
            "mpi_time_frac": last.get("mpi_time_frac", float("nan")),
            "staleness": _mean(rows, "staleness"), "consensus_distance_mean": _mean(rows, "consensus_distance"),
            "consensus_distance_last": last.get("consensus_distance", float("nan")),
            "eval_return": run["eval"].get("episode_return_mean", float("nan")), "total_s": run["total_s"]}


def parser():
    """The ``mpirl bench actor_critic`` option parser."""
    p = bench_parser("actor_critic", __doc__)
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS, metavar="ALGO",
                   help=f"algorithms, each run from jobs/cartpole_<algo>.toml (default {' '.join(ALGOS)})")
    add_int_list(p, "--ranks", [2, 4], "rank counts, each >= 2 (the same for every algorithm)")
    add_int_list(p, "--seeds", [0], "seeds")
    p.add_argument("--threshold", type=float, default=475.0,
                   help="second time-to-return threshold, column launch_to_475_s (default %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for every run (repeatable; default none)")
    add_out_dir(p, "actor_critic")
    return p


def main(argv) -> int:
    """Run the comparison; prints one JSON line per run and a median table, writes CSV/JSON."""
    p = parser()
    args = p.parse_args(argv)
    args.ranks, args.seeds = flat_ints(args.ranks), flat_ints(args.seeds)
    if any(n < 2 for n in args.ranks):
        p.error("--ranks: a3c needs at least 2 ranks, and the comparison uses the same N for all three")
    runs = []
    for n in args.ranks:
        for algo in args.algos:
            for seed in args.seeds:
                run = launch(f"jobs/cartpole_{algo}.toml", n, [f"seed={seed}", "log.tensorboard=false", *args.set])
                runs.append(summarise(run, algo, n, seed, args.threshold))
                print(json.dumps(runs[-1]), flush=True)
    summary = []
    for n in args.ranks:
        for algo in args.algos:
            mine = [r for r in runs if r["algo"] == algo and r["ranks"] == n]
            summary.append({"algo": algo, "ranks": n, **{k: statistics.median(r[k] for r in mine)
                                                         for k in COLUMNS[3:]}})
    print(f"\nCartPole-v1, median of seeds {args.seeds}:")
    print(" ".join(f"{c:>14}" for c in ["algo", "ranks"] + COLUMNS[3:]))
    for s in summary:
        print(" ".join(f"{s[c]:>14}" if isinstance(s[c], str) else f"{s[c]:>14.4g}" for c in ["algo", "ranks"]
                       + COLUMNS[3:]))
    print_written(write_csv_json(args.out_dir, "actor_critic", runs, COLUMNS,
                                 {"summary": summary, "runs": runs, "seeds": args.seeds, "threshold": args.threshold,
                                  "date": time.strftime("%Y-%m-%d")}))
    return 0
