"""`mpirl bench learning`: every shipped job's learning claim over seeds and CPU kernel sets.

A fixed seed is deterministic on one machine only: torch picks AVX-512, AVX2 or
plain kernels at run time, and the same seed follows another trajectory on
another CPU. This bench runs each job for every seed under each kernel set
(``native``: what torch picks here; ``default``, ``avx2``: forced with
``ATEN_CPU_CAPABILITY``) and checks the job's claim on every run:

- CartPole and Acrobot jobs: the greedy evaluation (the job's ``eval.episodes``
  episodes) reaches the claim (475 and -100, the gymnasium thresholds);
- MinAtar Breakout jobs: the greedy evaluation reaches 15 (``--claim`` sets
  another figure, e.g. for a shortened job);
- Pendulum jobs: the greedy evaluation reaches -200 (PPO's target; the
  actor-critic family's is ``--claim -250``);
- MuJoCo jobs: HalfCheetah-v5 1,700 and Hopper-v5 2,000 (issue 14's targets);
- tabular jobs: the learned greedy policy's exact return is within 3% of the
  optimum (:mod:`mpirl.mdp`, as ``tests/e2e/test_tabular_optimal.py``).

``--judge training`` judges the training return mean (the last 100 episodes)
of the run's last metrics row instead of the greedy evaluation: with
``--set stop.episode_return_mean=X`` every run stops when it reaches X, and
its ``env_steps`` and ``wall_s`` say how long that took.

Each job runs at the rank count of its documented command (``mpirun -n N`` in
the job file's header) unless ``--ranks`` is given. Writes ``<name>.csv`` and
``<name>.json`` (every run, and per job and kernel set: passes, min, median).
"""
from __future__ import annotations

import json
import os
import re
import statistics
import time

from mpirl.bench.output import add_out_dir, bench_parser, flat_ints, int_list, print_written, write_csv_json
from mpirl.bench.runs import launch

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))
#: The claim each environment's jobs make (gymnasium's reward thresholds).
CLAIMS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0, "MinAtar/Breakout-v1": 15.0, "Pendulum-v1": -200.0,
          "HalfCheetah-v5": 1700.0, "Hopper-v5": 2000.0}
TABULAR_TOLERANCE = 0.03


def job_path(name: str) -> str:
    """``cartpole_dqn`` or a path -> the job file's path."""
    if os.path.exists(name):
        return name
    path = os.path.join(ROOT, "jobs", name if name.endswith(".toml") else f"{name}.toml")
    if not os.path.exists(path):
        raise SystemExit(f"mpirl bench learning: no job {name!r} (looked for {path})")
    return path


def documented_ranks(path: str) -> int:
    """The N of the ``mpirun -n N`` command in the job file's header comment."""
    with open(path) as f:
        m = re.search(r"mpirun -n (\d+)", f.read())
    if not m:
        raise SystemExit(f"mpirl bench learning: {path} names no 'mpirun -n N'; pass --ranks")
    return int(m.group(1))


def tabular_verdict(run_dir: str) -> dict:
    """Exact return of the greedy policy in ``run_dir``'s last checkpoint and the optimum's."""
    import numpy as np

    from mpirl import checkpoint, mdp
    from mpirl.config import from_dict
    from mpirl.envs import episode_limit, make_env

    ck = checkpoint.load(os.path.join(run_dir, "checkpoints", "latest.h5"))
    cfg = from_dict(ck.config)
    env = make_env(cfg.env, max_episode_steps=cfg.eval.max_episode_steps)
    model, horizon = mdp.tabular_model(env), episode_limit(env)
    env.close()
    _, best = mdp.optimal_policy(model, horizon)
    exact = mdp.policy_return(model, np.asarray(ck.state["q"]).argmax(axis=1), horizon)
    return {"exact_return": exact, "optimum": best,
            "passed": bool(exact >= best - TABULAR_TOLERANCE * abs(best) - 1e-9)}


def run_one(path: str, ranks: int, seed: int, kernel: str, overrides, timeout: float, claim=None,
            judge: str = "greedy") -> dict:
    """One launch of ``path``; the row of the results table (``judge``: ``greedy`` or ``training``)."""
    env = {} if kernel == "native" else {"ATEN_CPU_CAPABILITY": kernel}
    with open(path) as f:
        tabular = re.search(r'^algo\s*=\s*"tabular_q"', f.read(), re.M) is not None
    run = launch(path, ranks, [f"seed={seed}", "log.tensorboard=false", *overrides], timeout=timeout,
                 env=env, inspect=tabular_verdict if tabular else None)
    last = run["rows"][-1]
    row = {"job": os.path.basename(path)[:-5], "ranks": ranks, "seed": seed, "kernel": kernel,
           "env_steps": int(last["env_steps"]), "wall_s": round(run["total_s"], 2)}
    if tabular:
        row.update(run["inspected"])
        row["claim"] = f">= {1 - TABULAR_TOLERANCE:.2f} x optimum (exact)"
    else:
        ev = run["eval"]
        claim = CLAIMS.get(ev.get("env_id"), float("nan")) if claim is None else claim
        train = float(last.get("episode_return_mean", float("nan")))
        judged = ev.get("episode_return_mean", float("nan")) if judge == "greedy" else train
        row.update(eval_return=ev.get("episode_return_mean", float("nan")), train_return=train, judged=judge,
                   claim=claim, passed=bool(judged >= claim))
    return row


def summarise(runs: list) -> dict:
    """Per job, rank count and kernel set: runs, passes, min and median of the judged figure."""
    out = {}
    for r in runs:
        key = f"{r['job']}/n{r['ranks']}/{r['kernel']}"
        out.setdefault(key, []).append(r)
    summary = {}
    for key, rs in out.items():
        vals = [r["train_return"] if r.get("judged") == "training" else r.get("eval_return", r.get("exact_return"))
                for r in rs]
        summary[key] = {"runs": len(rs), "passed": sum(r["passed"] for r in rs), "min": min(vals),
                        "median": statistics.median(vals), "ranks": rs[0]["ranks"],
                        "median_env_steps": statistics.median(r["env_steps"] for r in rs)}
    return summary


def main(argv) -> int:
    """Run the learning sweep; prints one JSON line per run and a summary table, writes CSV/JSON."""
    p = bench_parser("learning", __doc__)
    p.add_argument("--jobs", nargs="+", required=True, metavar="JOB",
                   help="job names under jobs/ (cartpole_dqn) or paths")
    p.add_argument("--seeds", type=int_list, nargs="+", default=[list(range(10))],
                   help="seeds: 0-9, 0,3,5 or 0 3 5 (default 0-9)")
    p.add_argument("--kernels", default="native,default",
                   help="comma-separated kernel sets: native, default, avx2, avx512 (default %(default)s)")
    p.add_argument("--ranks", type=int_list, nargs="+", default=None,
                   help="rank counts to run every job at: 4, 2,3,5 or 2-4 (default: the job's own)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per run (default %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    p.add_argument("--claim", type=float, default=None,
                   help="the return every run must reach (default: the environment's, e.g. 475 for CartPole)")
    p.add_argument("--judge", choices=["greedy", "training"], default="greedy",
                   help="what the claim judges: the greedy evaluation, or the training return mean of the last "
                        "metrics row (default %(default)s)")
    p.add_argument("--name", default="learning", help="output file stem (default %(default)s)")
    add_out_dir(p, "learning")
    args = p.parse_args(argv)
    seeds = flat_ints(args.seeds)
    kernels = args.kernels.split(",")
    bad = [k for k in kernels if k not in ("native", "default", "avx2", "avx512")]
    if bad:
        p.error(f"--kernels: unknown kernel set {bad[0]!r}")
    import torch

    native = torch.backends.cpu.get_cpu_capability()
    runs = []
    for name in args.jobs:
        path = job_path(name)
        for ranks in flat_ints(args.ranks) if args.ranks else [documented_ranks(path)]:
            for kernel in kernels:
                for seed in seeds:
                    runs.append(run_one(path, ranks, seed, kernel, args.set, args.timeout, args.claim, args.judge))
                    print(json.dumps(runs[-1]), flush=True)
    summary = summarise(runs)
    print(f"\nnative kernels here: {native}")
    print(f"{'job/ranks/kernel':>38} {'ranks':>5} {'passed':>8} {'min':>10} {'median':>10} {'env steps':>10}")
    for key, s in summary.items():
        print(f"{key:>38} {s['ranks']:>5} {s['passed']:>4}/{s['runs']:<3} {s['min']:>10.2f} {s['median']:>10.2f} "
              f"{s['median_env_steps']:>10,.0f}")
    columns = ["job", "ranks", "seed", "kernel", "passed", "claim", "judged", "eval_return", "train_return",
               "exact_return", "optimum", "env_steps", "wall_s"]
    paths = write_csv_json(args.out_dir, args.name, runs, columns,
                           {"summary": summary, "runs": runs, "native_kernels": native, "seeds": seeds,
                            "date": time.strftime("%Y-%m-%d")})
    print_written(paths)
    return 0 if all(r["passed"] for r in runs) else 1
