"""`mpirl bench apex`: Ape-X on CartPole: throughput, time to return 450, replay costs.

Runs ``mpirun -n 3 mpirl train jobs/cartpole_apex.toml`` ``--repeats`` times
and reports medians of: total and per-actor env steps/s, learner updates/s,
launch-to-training-return-450 seconds, final greedy eval. Then measures, in
this process, the prioritized replay at 1,000,000 CartPole transitions:
sample(512), update_priorities(512), add(256), bytes per stored transition.
Writes ``apex.csv``/``apex.json`` under ``--out-dir``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from mpirl.bench.output import write_csv_json
from mpirl.bench.runs import launch, time_to_return


def replay_costs(capacity: int = 1_000_000, batch: int = 512, calls: int = 50) -> dict:
    """Median seconds of the prioritized replay's operations at ``capacity`` transitions."""
    from mpirl.algos.dqn.learner import replay_spec
    from mpirl.replay import PrioritizedReplay

    rng = np.random.default_rng(0)
    mem = PrioritizedReplay(capacity, replay_spec(4))
    chunk = 100_000
    for _ in range(capacity // chunk):
        mem.add({"obs": rng.normal(size=(chunk, 4)).astype(np.float32), "action": rng.integers(2, size=chunk),
                 "reward": np.ones(chunk, np.float32), "discount": np.full(chunk, 0.97, np.float32),
                 "next_obs": rng.normal(size=(chunk, 4)).astype(np.float32)}, rng.random(chunk))

    def median_time(fn):
        times = []
        for _ in range(calls):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    idx, _, _ = mem.sample(batch, 0.4, rng)
    small = {k: v[:256] for k, v in mem.buffer.get(np.arange(256)).items()}
    return {"replay_capacity": capacity,
            "sample_512_ms": 1e3 * median_time(lambda: mem.sample(batch, 0.4, rng)),
            "update_priorities_512_ms": 1e3 * median_time(lambda: mem.update_priorities(idx, rng.random(batch))),
            "add_256_ms": 1e3 * median_time(lambda: mem.add(small, rng.random(256))),
            "bytes_per_transition": mem.bytes_per_transition}


def main(argv) -> int:
    """Run the Ape-X benchmark; prints a table and writes CSV/JSON."""
    p = argparse.ArgumentParser(prog="mpirl bench apex")
    p.add_argument("--job", default="jobs/cartpole_apex.toml")
    p.add_argument("--ranks", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threshold", type=float, default=450.0)
    p.add_argument("--out-dir", default="docs/benchmarks")
    p.add_argument("--set", action="append", default=[], help="extra overrides for the runs")
    args = p.parse_args(argv)
    runs = []
    for rep in range(args.repeats):
        run = launch(args.job, args.ranks, [f"seed={rep}", *args.set])
        last = run["rows"][-1]
        wall = last["wall_time_s"]
        runs.append({"seed": rep, "env_steps": last["env_steps"], "updates": last["updates"],
                     "env_steps_per_s": last["env_steps"] / wall,
                     "env_steps_per_s_per_actor": last["env_steps"] / wall / (args.ranks - 1),
                     # Each actor's own rate (steps it delivered / wall): shows whether one actor lags.
                     "actor_env_steps_per_s_min": min(last[f"env_steps_actor{r}"] for r in range(1, args.ranks)) / wall,
                     "actor_env_steps_per_s_max": max(last[f"env_steps_actor{r}"] for r in range(1, args.ranks)) / wall,
                     "updates_per_s": last["updates"] / wall,
                     "launch_to_return_s": time_to_return(run, args.threshold),
                     "eval_return": run["eval"].get("episode_return_mean", float("nan")), "total_s": run["total_s"]})
        print(json.dumps(runs[-1]))
    keys = [k for k in runs[0] if k != "seed"]
    summary = {k: statistics.median(r[k] for r in runs) for k in keys}
    summary.update(replay_costs())
    print(f"\nApe-X, {args.job}, mpirun -n {args.ranks}, median of {args.repeats}:")
    for k, v in summary.items():
        print(f"  {k:>28}: {v:,.3f}")
    write_csv_json(args.out_dir, "apex", runs, ["seed"] + keys,
                   {"summary": summary, "runs": runs, "job": args.job, "ranks": args.ranks,
                    "date": time.strftime("%Y-%m-%d")})
    return 0
