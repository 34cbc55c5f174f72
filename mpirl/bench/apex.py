"""`mpirl bench apex`: Ape-X on CartPole: throughput, time to return 450, replay costs.

For each rank count N (``--ranks``, default 3: one learner, two actors; also
``3,5``, ``3-5`` or ``3 5``) runs ``mpirun -n N mpirl train
jobs/cartpole_apex.toml`` ``--repeats R`` times (seeds 0..R-1) and reports
medians of: total and per-actor env steps/s, learner updates/s,
launch-to-training-return-450 seconds, final greedy eval. Then measures, in
this process, the prioritized replay at 1,000,000 CartPole transitions:
sample(512), update_priorities(512), add(256), bytes per stored transition.
Writes ``apex.csv`` (one row per run, each actor's own rate in
``env_steps_per_s_actor<r>``) and ``apex.json`` (``summary``: the medians per
rank count; ``replay``: the replay costs) into ``--out-dir`` (default a new
runs/bench-apex-<timestamp>; ``--out-dir docs/benchmarks`` updates the
recorded figures).
"""
from __future__ import annotations

import json
import statistics
import time

import numpy as np

from mpirl.bench.output import (flat_ints, job_bench_parser, median_s, ordered_columns, plural, print_written,
                                write_csv_json)
from mpirl.bench.runs import launch, time_to_return


def replay_costs(capacity: int = 1_000_000, batch: int = 512, calls: int = 50) -> dict:
    """Median seconds of the prioritized replay's operations at ``capacity`` transitions."""
    from mpirl.algos.dqn.messages import replay_spec
    from mpirl.specs import DiscreteSpec, EnvSpec
    from mpirl.replay import PrioritizedReplay

    rng = np.random.default_rng(0)
    mem = PrioritizedReplay(capacity, replay_spec(EnvSpec((4,), np.dtype(np.float32), DiscreteSpec(2))))
    chunk = 100_000
    for _ in range(capacity // chunk):
        mem.add({"obs": rng.normal(size=(chunk, 4)).astype(np.float32), "action": rng.integers(2, size=chunk),
                 "reward": np.ones(chunk, np.float32), "discount": np.full(chunk, 0.97, np.float32),
                 "next_obs": rng.normal(size=(chunk, 4)).astype(np.float32)}, rng.random(chunk))

    idx, _, _ = mem.sample(batch, 0.4, rng)
    small = {k: v[:256] for k, v in mem.buffer.get(np.arange(256)).items()}
    return {"replay_capacity": capacity,
            "sample_512_ms": 1e3 * median_s(lambda: mem.sample(batch, 0.4, rng), calls),
            "update_priorities_512_ms": 1e3 * median_s(lambda: mem.update_priorities(idx, rng.random(batch)), calls),
            "add_256_ms": 1e3 * median_s(lambda: mem.add(small, rng.random(256)), calls),
            "bytes_per_transition": mem.bytes_per_transition}


def run_row(run: dict, ranks: int, seed: int, threshold: float) -> dict:
    """One benchmark row from a finished run (see the module docstring)."""
    last = run["rows"][-1]
    wall = last["wall_time_s"]
    # Each actor's own rate (steps it delivered / wall): shows whether one actor lags.
    per_actor = {r: last[f"env_steps_actor{r}"] / wall for r in range(1, ranks)}
    return {"ranks": ranks, "seed": seed, "env_steps": last["env_steps"], "updates": last["updates"],
            "env_steps_per_s": last["env_steps"] / wall,
            "env_steps_per_s_per_actor": last["env_steps"] / wall / (ranks - 1),
            "actor_env_steps_per_s_min": min(per_actor.values()),
            "actor_env_steps_per_s_max": max(per_actor.values()),
            "updates_per_s": last["updates"] / wall,
            "launch_to_return_s": time_to_return(run, threshold),
            "eval_return": run["eval"].get("episode_return_mean", float("nan")), "total_s": run["total_s"],
            **{f"env_steps_per_s_actor{r}": v for r, v in per_actor.items()}}


def parser():
    """The ``mpirl bench apex`` option parser."""
    return job_bench_parser("apex", __doc__, "jobs/cartpole_apex.toml", [3], "Ape-X")


def main(argv) -> int:
    """Run the Ape-X benchmark; prints a table and writes CSV/JSON."""
    p = parser()
    args = p.parse_args(argv)
    args.ranks = flat_ints(args.ranks)
    if min(args.ranks) < 2 or args.repeats < 1:
        p.error("need --ranks >= 2 (one learner and at least one actor) and --repeats >= 1")
    runs = []
    for n in args.ranks:
        for rep in range(args.repeats):
            run = launch(args.job, n, [f"seed={rep}", *args.set])
            runs.append(run_row(run, n, rep, args.threshold))
            print(json.dumps(runs[-1]), flush=True)
    keys = [k for k in runs[0] if k not in ("ranks", "seed") and not k.startswith("env_steps_per_s_actor")]
    replay = replay_costs()
    summary = {}
    for n in args.ranks:
        summary[str(n)] = med = {k: statistics.median(r[k] for r in runs if r["ranks"] == n) for k in keys}
        print(f"\nApe-X, {args.job}, mpirun -n {n}, median of {plural(args.repeats, 'seed')}:")
        for k, v in med.items():
            print(f"  {k:>28}: {v:,.3f}")
    print("\nprioritized replay, in this process:")
    for k, v in replay.items():
        print(f"  {k:>28}: {v:,.3f}")
    print_written(write_csv_json(args.out_dir, "apex", runs, ordered_columns(runs, ["ranks", "seed"] + keys),
                                 {"summary": summary, "replay": replay, "runs": runs, "job": args.job,
                                  "ranks": args.ranks, "date": time.strftime("%Y-%m-%d")}))
    return 0
