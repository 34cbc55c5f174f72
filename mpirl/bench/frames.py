"""`mpirl bench frames`: env frames/s of pixel jobs at ``-n`` ranks against the raw preprocessed environment.

The question for Atari: how much of the emulator's speed does a distributed
run keep? Each repeat first measures the raw speed, in this process: the
job's own vectorised environment (the same wrappers and preprocessing, the
same number of copies) stepped with uniformly random actions for
``--raw-seconds``, no network, no MPI. Then it runs each job (``--jobs``,
default the Pong IMPALA and Ape-X jobs) under ``mpirun -n --ranks`` for
``--steps`` agent steps, alternating, so raw and distributed see the same
machine load. Env frames are agent steps times the frame skip
(``env.atari.frame_skip`` for ``wrappers = "atari"``, else 1). Reports per
run: frames/s over the whole run and over its second half (past start-up and
a replay's ``learning_starts``), per actor, the ratio to raw, learner
updates/s and policy lag. Writes ``frames.csv``, ``frames.json`` and ``frames.png``
into ``--out-dir``.
"""
from __future__ import annotations

import json
import os
import statistics
import time

import numpy as np

from mpirl.bench.output import (add_out_dir, bench_parser, ordered_columns, print_written, pyplot_or_skip,
                                warn_if_no_matplotlib, write_csv_json)
from mpirl.bench.runs import launch, mean_policy_lag

JOBS = ["jobs/pong_impala.toml", "jobs/pong_apex.toml"]


def parser():
    """The ``mpirl bench frames`` option parser."""
    p = bench_parser("frames", __doc__)
    p.add_argument("--jobs", nargs="+", default=JOBS, help="pixel job files (default %(default)s)")
    p.add_argument("--ranks", type=int, default=3, help="mpirun -n of every job (default %(default)s)")
    p.add_argument("--steps", type=int, default=100_000, help="agent steps per run (default %(default)s)")
    p.add_argument("--repeats", type=int, default=2, help="rounds of raw + every job, seeds 0..R-1 (default 2)")
    p.add_argument("--raw-seconds", type=float, default=20.0, help="seconds of each raw measurement (default 20)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every job (repeatable; default none)")
    add_out_dir(p, "frames")
    return p


def frame_skip(env_cfg) -> int:
    """Emulator frames per agent step of ``env_cfg``."""
    return int(env_cfg.atari.frame_skip) if env_cfg.wrappers == "atari" else 1


def raw_frames_per_s(job: str, seconds: float, seed: int = 0, overrides=()) -> float:
    """Env frames/s of ``job``'s vectorised environment (with ``overrides``) alone in this process, random actions."""
    from mpirl.config import load_job
    from mpirl.rollout import make_vec_env

    cfg = load_job(job, overrides)
    envs = make_vec_env(cfg.env, seed)
    envs.reset(seed=seed)
    space, n = envs.single_action_space, cfg.env.num_envs
    rng = np.random.default_rng(seed)
    envs.step(rng.integers(0, space.n, n))
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        envs.step(rng.integers(0, space.n, n))
        steps += n
    rate = steps / (time.perf_counter() - t0)
    envs.close()
    return rate * frame_skip(cfg.env)


def job_row(job: str, run: dict, ranks: int, skip: int, raw: float) -> dict:
    """One result row of a finished run of ``job``."""
    rows = run["rows"]
    last, wall = rows[-1], rows[-1]["wall_time_s"]
    per_actor = [last[f"env_steps_actor{r}"] * skip / wall for r in range(1, ranks) if f"env_steps_actor{r}" in last]
    fps = last["env_steps"] * skip / wall
    # The second half of the run: past start-up and past a replay's learning_starts, when the learner paces it.
    mid = next(r for r in rows if r["env_steps"] >= last["env_steps"] / 2)
    late = (last["env_steps"] - mid["env_steps"]) * skip / max(wall - mid["wall_time_s"], 1e-9)
    return {"who": os.path.splitext(os.path.basename(job))[0], "ranks": ranks, "env_steps": int(last["env_steps"]),
            "frames_per_s": fps, "frames_per_s_second_half": late if last is not mid else fps, "frames_per_s_per_actor": statistics.median(per_actor) if per_actor else float("nan"),
            "fraction_of_raw": fps / raw, "updates_per_s": last["updates"] / wall,
            "policy_lag": mean_policy_lag(rows), "wall_s": wall}


def main(argv) -> int:
    """Run the raw-vs-distributed comparison; prints a table and writes CSV/JSON/PNG."""
    args = parser().parse_args(argv)
    from mpirl.config import load_job

    warn_if_no_matplotlib("frames", os.path.join(args.out_dir, "frames.png"))
    skips = {job: frame_skip(load_job(job, args.set).env) for job in args.jobs}
    runs = []
    for seed in range(args.repeats):
        for job in args.jobs:
            raw = raw_frames_per_s(job, args.raw_seconds, seed, args.set)
            runs.append({"who": "raw " + os.path.splitext(os.path.basename(job))[0], "ranks": 1, "seed": seed,
                         "frames_per_s": raw, "fraction_of_raw": 1.0})
            print(json.dumps(runs[-1]), flush=True)
            run = launch(job, args.ranks, [f"seed={seed}", f"total_env_steps={args.steps}", "log.tensorboard=false",
                                           "eval.episodes=1", *args.set], timeout=3600)
            runs.append({**job_row(job, run, args.ranks, skips[job], raw), "seed": seed})
            print(json.dumps(runs[-1]), flush=True)
    keys = ["frames_per_s", "frames_per_s_second_half", "frames_per_s_per_actor", "fraction_of_raw", "updates_per_s", "policy_lag"]
    summary = {}
    print(f"\nenv frames/s, median of {args.repeats} (jobs at -n {args.ranks}, raw in one process)")
    for who in dict.fromkeys(r["who"] for r in runs):
        mine = [r for r in runs if r["who"] == who]
        summary[who] = {k: statistics.median(r[k] for r in mine) for k in keys if k in mine[0]}
        print(f"{who:>24} " + " ".join(f"{k} {v:,.2f}" for k, v in summary[who].items()))
    meta = {"summary": summary, "runs": runs, "jobs": args.jobs, "ranks": args.ranks, "steps": args.steps,
            "date": time.strftime("%Y-%m-%d")}
    written = write_csv_json(args.out_dir, "frames", runs, ordered_columns(runs, ["who", "seed", "ranks"]), meta)
    plt = pyplot_or_skip("frames", os.path.join(args.out_dir, "frames.png"))
    if plt is not None:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        names = list(summary)
        ax.barh(names, [summary[w]["frames_per_s"] for w in names], color="tab:blue")
        for i, w in enumerate(names):
            ax.text(summary[w]["frames_per_s"], i, f" {summary[w]['frames_per_s']:,.0f}", va="center")
        ax.set_xlabel(f"env frames/s (median of {args.repeats})")
        ax.set_title(f"raw env in one process vs jobs at mpirun -n {args.ranks}")
        fig.tight_layout()
        path = os.path.join(args.out_dir, "frames.png")
        fig.savefig(path, dpi=110)
        written.append(path)
    print_written(written)
    return 0
