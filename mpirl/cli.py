"""The ``mpirl`` command: train, eval, inspect, plot, bench.

``train`` runs under ``mpirun``/``srun``; ``eval`` and ``inspect`` run on one
process without MPI. Bad input exits with code 2 and one clear line, on every
rank; a fault (a silent rank, non-finite updates) prints one line and aborts
the job with code 4; any other exception on any rank aborts the whole MPI job.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from mpirl.errors import FaultError, UsageError

#: Seed of the first episode of every greedy evaluation (episode i uses EVAL_SEED + i).
EVAL_SEED = 12345


def _launch_rank() -> int:
    # The rank as the launcher tells it, known before MPI starts.
    for var in ("PMI_RANK", "PMIX_RANK", "OMPI_COMM_WORLD_RANK", "SLURM_PROCID"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line once per job, not once per rank."""

    def error(self, message):
        if _launch_rank() == 0:
            self.print_usage(sys.stderr)
            print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _parser() -> argparse.ArgumentParser:
    from mpirl.algos import algo_names

    from mpirl import __version__

    p = _Parser(prog="mpirl", description="MPI-native distributed reinforcement learning.")
    p.add_argument("--version", action="version", version=f"mpirl {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a job (launch under mpirun -n N or srun)",
                       description=f"Train a job file. Algorithms: {', '.join(algo_names())}.")
    t.add_argument("job", nargs="?", help="job file (TOML); optional with --resume")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set env.id=Taxi-v4 (repeatable)")
    t.add_argument("--run-dir", help="run directory (default runs/<name>-<timestamp>)")
    t.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its latest checkpoint")
    t.add_argument("--no-eval", action="store_true", help="skip the final greedy evaluation")

    e = sub.add_parser("eval", help="evaluate a checkpoint's greedy policy (one process)")
    e.add_argument("checkpoint", help="a checkpoint file, or a run directory (its checkpoints/latest.h5)")
    e.add_argument("--episodes", type=int, default=None, help="episodes (default: the job's eval.episodes)")
    e.add_argument("--seed", type=int, default=EVAL_SEED,
                   help="seed of the first episode; episode i uses seed+i (default %(default)s, the seed of "
                        "the evaluation at the end of mpirl train)")

    i = sub.add_parser("inspect", help="print a checkpoint's metadata as JSON")
    i.add_argument("checkpoint", help="a checkpoint file, or a run directory (its checkpoints/latest.h5)")

    pl = sub.add_parser("plot", help="learning curves of run directories (metrics.csv) into a PNG")
    pl.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories, one line each")
    pl.add_argument("--x", default="env_steps", choices=["env_steps", "wall_time_s"], help="x axis (default %(default)s)")
    pl.add_argument("--metric", default="episode_return_mean", help="metrics.csv column (default %(default)s)")
    pl.add_argument("--out", default="curves.png", help="PNG file to write (default %(default)s)")
    pl.add_argument("--title", default="", help="figure title (default none)")

    b = sub.add_parser("bench", help="benchmarks (see docs/benchmarks.md)")
    b.add_argument("what", choices=["comm", "tabular", "startup", "apex", "impala", "actor_critic", "learning",
                                    "replay", "peers", "frames", "ppo", "learner"])
    b.add_argument("args", nargs=argparse.REMAINDER)
    return p


def main(argv=None) -> int:
    """Entry point of the ``mpirl`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "train":
            return train(args)
        if args.cmd == "eval":
            return eval_cmd(args)
        if args.cmd == "inspect":
            return inspect_cmd(args)
        if args.cmd == "plot":
            from mpirl.plot import plot

            print(f"wrote {plot(args.run_dirs, args.out, args.x, args.metric, args.title)}")
            return 0
        if args.cmd == "bench":
            return bench_cmd(args)
    except UsageError as e:
        print(f"mpirl: error: {e}", file=sys.stderr)
        return 2
    return 0


def train(args) -> int:
    """``mpirl train``: validate on rank 0, broadcast the verdict, train, evaluate."""
    from mpirl.comm import get_world
    from mpirl.comm.world import install_abort_on_exception

    from mpirl import signals

    signals.install()  # SIGUSR1/SIGTERM/SIGINT: checkpoint and stop (see mpirl/signals.py), before MPI starts
    world = get_world()
    install_abort_on_exception()
    from mpirl.run import prepare

    verdict, resume_ckpt = None, None
    if world.is_learner:
        try:
            plan, resume_ckpt = prepare(args, world.size)
            verdict = {"ok": True, "plan": plan}
        except UsageError as e:
            verdict = {"ok": False, "error": str(e)}
    verdict = world.bcast_json(verdict)
    if not verdict["ok"]:
        if world.is_learner:
            print(f"mpirl: error: {verdict['error']}", file=sys.stderr, flush=True)
        return 2
    try:
        return _train_validated(world, verdict["plan"], resume_ckpt, args)
    except UsageError as e:
        # The other ranks are inside collectives by now: only an abort ends them all.
        print(f"[rank {world.rank}] mpirl: error: {e}", file=sys.stderr, flush=True)
        world.abort(2)
    except FaultError as e:
        # A silent rank or non-finite updates: one line, no traceback; the checkpoints on disk stay as they are.
        print(f"[rank {world.rank}] mpirl: fault: {e}", file=sys.stderr, flush=True)
        world.abort(e.exit_code)


def _train_validated(world, plan, resume_ckpt, args) -> int:
    from mpirl.algos import get_algo
    from mpirl.run import RunContext

    ctx = RunContext(world, plan, resume_ckpt)
    algo = get_algo(ctx.cfg.algo)
    state = algo.train(ctx)
    # Did the run stop on a signal? Rank 0's view (it decided the stop) is the agreed one.
    stopped = world.bcast_json(ctx.stop_requested())
    ctx.finish()
    if stopped:
        import signal

        from mpirl import signals

        # The checkpoint is written: a further USR1/TERM has nothing left to stop. Ignore them, since Python
        # resets its handlers to the default (die) while exiting, and `srun --kill-on-bad-exit` TERMs the
        # ranks still exiting once one has exited 3, which turned the run's status 3 into 143 (no requeue).
        for sig in (signal.SIGUSR1, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        if world.is_learner:
            ctx.logger.message(f"mpirl: stopped by {signals.received()} at env step "
                               f"{ctx.last_counters.get('env_steps')}; checkpoint written; resume with: "
                               f"{resume_command(world.size, ctx.run_dir)}")
            with open(os.path.join(ctx.run_dir, "stopped.json"), "w") as f:
                json.dump({"signal": signals.received(), "env_steps": ctx.last_counters.get("env_steps"),
                           "exit_status": signals.EXIT_STOPPED,
                           "slurm_restart_count": os.environ.get("SLURM_RESTART_COUNT")}, f)
        world.barrier()
        return signals.EXIT_STOPPED
    if world.is_learner:
        ctx.logger.message(f"mpirl: run directory {ctx.run_dir}")
        if not args.no_eval:
            from mpirl.evaluate import evaluate

            result = evaluate(algo.greedy_policy(state, ctx.cfg), ctx.cfg.env, ctx.cfg.eval.episodes,
                              seed=EVAL_SEED, max_episode_steps=ctx.cfg.eval.max_episode_steps)
            result.update(algo=ctx.cfg.algo, run_dir=ctx.run_dir)
            with open(os.path.join(ctx.run_dir, "eval.json"), "w") as f:
                json.dump(result, f, indent=1)
            print(json.dumps(result), flush=True)
    world.barrier()  # the other ranks wait here without spinning while rank 0 evaluates
    return 0


def resume_command(size: int, run_dir: str) -> str:
    """The command that resumes ``run_dir`` at the same rank count (quoted for a shell)."""
    import shlex

    return f"mpirun -n {size} mpirl train --resume --run-dir {shlex.quote(run_dir)}"


def checkpoint_path(path: str) -> str:
    """A checkpoint file as given, or a run directory's ``checkpoints/latest.h5``; UsageError otherwise."""
    if os.path.isdir(path):
        for candidate in (os.path.join(path, "checkpoints", "latest.h5"), os.path.join(path, "latest.h5")):
            if os.path.exists(candidate):
                return candidate
        raise UsageError(f"{path} is a directory without checkpoints/latest.h5 (not a run directory, "
                         f"or no checkpoint written yet)")
    return path


def _load_for_eval(path):
    from mpirl import checkpoint
    from mpirl.algos import get_algo
    from mpirl.config import from_dict

    ck = checkpoint.load(path)
    cfg = from_dict(ck.config, f"{path} (stored config)")
    return ck, cfg, get_algo(cfg.algo)


def eval_cmd(args) -> int:
    """``mpirl eval``: greedy episodes of a checkpoint's policy, one JSON line."""
    from mpirl.evaluate import evaluate

    if args.episodes is not None and args.episodes < 1:
        raise UsageError(f"--episodes must be >= 1, got {args.episodes}")
    path = checkpoint_path(args.checkpoint)
    ck, cfg, algo = _load_for_eval(path)
    result = evaluate(algo.greedy_policy(ck.state, cfg), cfg.env, args.episodes or cfg.eval.episodes,
                      seed=args.seed, max_episode_steps=cfg.eval.max_episode_steps)
    result.update(algo=cfg.algo, checkpoint=path, env_steps=int(ck.counters.get("env_steps", 0)))
    print(json.dumps(result))
    return 0


def inspect_cmd(args) -> int:
    """``mpirl inspect``: a checkpoint's metadata as JSON."""
    from mpirl import checkpoint

    print(json.dumps(checkpoint.load(checkpoint_path(args.checkpoint)).metadata(), indent=1, default=str))
    return 0


def bench_cmd(args) -> int:
    """``mpirl bench <what>``: run a benchmark module's ``main``."""
    import importlib

    return importlib.import_module(f"mpirl.bench.{args.what}").main(args.args)


if __name__ == "__main__":
    sys.exit(main())
