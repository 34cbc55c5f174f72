"""`mpirl bench impala`: IMPALA on CartPole at several rank counts, against the single-process ceiling.

For each rank count N (``--ranks``, default 2,3,5; also ``2-5`` or ``2 3 5``)
runs ``mpirun -n N mpirl train jobs/cartpole_impala.toml`` ``--repeats R``
times (seeds 0..R-1) and reports
medians of: total env steps/s, per-actor env steps/s (each actor's delivered
steps over the wall time), learner updates/s, mean policy lag, launch to a
training return mean of 450, greedy eval. The ceiling is measured first, in
this process: one actor of the same job (same environments, same network and
action sampling) stepping alone on one core with nothing to send. Writes
``impala.csv`` (one row per run, each actor's own rate in
``env_steps_per_s_actor<r>``) and ``impala.json`` into ``--out-dir`` (default
a new runs/bench-impala-<timestamp>; ``--out-dir docs/benchmarks`` updates
the recorded figures).
"""
from __future__ import annotations

import json
import statistics
import time

import numpy as np

from mpirl.bench.output import flat_ints, job_bench_parser, ordered_columns, plural, print_written, write_csv_json
from mpirl.bench.runs import launch, mean_policy_lag, time_to_return


def ceiling(job: str, seconds: float = 3.0) -> float:
    """Env steps/s of one actor of ``job`` alone in this process: the same unrolls, no MPI."""
    import torch

    from mpirl.algos.impala.config import network_config
    from mpirl.config import load_job
    from mpirl.networks import make_networks
    from mpirl.rollout import UnrollActor, make_vec_env
    from mpirl.specs import env_spec

    cfg = load_job(job)
    a = cfg.agent
    torch.set_num_threads(a.torch_threads)
    envs = make_vec_env(cfg.env, 0)
    net = make_networks(env_spec(envs), network_config(a))
    actor = UnrollActor(envs, net.policy, a.unroll_length, np.random.default_rng(0), net.dist)
    actor.unroll()  # warm-up
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        steps += actor.unroll()["steps"]
    rate = steps / (time.perf_counter() - t0)
    envs.close()
    return rate


def parser():
    """The ``mpirl bench impala`` option parser."""
    return job_bench_parser("impala", __doc__, "jobs/cartpole_impala.toml", [2, 3, 5], "IMPALA")


def main(argv) -> int:
    """Run the IMPALA benchmark; prints a table and writes CSV/JSON."""
    p = parser()
    args = p.parse_args(argv)
    args.ranks = flat_ints(args.ranks)
    if min(args.ranks) < 2 or args.repeats < 1:
        p.error("need --ranks >= 2 (one learner and at least one actor) and --repeats >= 1")
    ceil = ceiling(args.job)
    from mpirl.config import load_job

    job_cfg = load_job(args.job, args.set)
    per_update = job_cfg.agent.batch_size * job_cfg.agent.unroll_length * job_cfg.env.num_envs
    print(f"ceiling: one actor alone, no MPI: {ceil:,.0f} env steps/s")
    runs = []
    for n in args.ranks:
        for rep in range(args.repeats):
            run = launch(args.job, n, [f"seed={rep}", *args.set])
            rows = run["rows"]
            last = rows[-1]
            wall = last["wall_time_s"]
            per_actor = [last[f"env_steps_actor{r}"] / wall for r in range(1, n)]  # actors are ranks 1..n-1
            runs.append({"ranks": n, "seed": rep, "env_steps": last["env_steps"], "updates": last["updates"],
                         "env_steps_per_s": last["env_steps"] / wall,
                         "actor_env_steps_per_s": statistics.median(per_actor),
                         "actor_fraction_of_ceiling": statistics.median(per_actor) / ceil,
                         "updates_per_s": last["updates"] / wall,
                         "learner_samples_per_s": last["updates"] * per_update / wall,
                         "policy_lag": mean_policy_lag(rows),
                         "launch_to_return_s": time_to_return(run, args.threshold),
                         "eval_return": run["eval"].get("episode_return_mean", float("nan")),
                         "total_s": run["total_s"],
                         **{f"env_steps_per_s_actor{r}": v for r, v in enumerate(per_actor, start=1)}})
            print(json.dumps(runs[-1]), flush=True)
    keys = [k for k in runs[0] if k not in ("ranks", "seed") and not k.startswith("env_steps_per_s_actor")]
    summary = {}
    print(f"\nIMPALA, {args.job}, median of {plural(args.repeats, 'seed')}; ceiling {ceil:,.0f} env steps/s per actor")
    print(f"{'ranks':>6} " + " ".join(f"{k:>22}" for k in keys))
    for n in args.ranks:
        med = {k: statistics.median(r[k] for r in runs if r["ranks"] == n) for k in keys}
        summary[str(n)] = med
        print(f"{n:>6} " + " ".join(f"{v:>22,.2f}" for v in med.values()))
    print_written(write_csv_json(args.out_dir, "impala", runs, ordered_columns(runs, ["ranks", "seed"] + keys),
                                 {"summary": summary, "ceiling_env_steps_per_s": ceil, "runs": runs,
                                  "job": args.job, "date": time.strftime("%Y-%m-%d")}))
    return 0
