"""Wiring of one training job to the MPI world: validation, run directory, resume, checkpoints.

Algorithms receive a :class:`RunContext` and never test the rank for side
effects: logging and checkpoint writing happen here, on rank 0 only.
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import sys
import time

import numpy as np

from mpirl import checkpoint as ckpt_io
from mpirl.config import (Config, KeySource, apply_overrides, from_dict, load_job, parse_config, to_dict,
                          to_toml)
from mpirl.errors import CheckpointError, ConfigError, NonFiniteError, UsageError
from mpirl.logger import MetricsLogger, NullLogger
from mpirl.seeding import rank_rng, rank_rng_doc, restore_rng_state, seed_globals


def prepare(args, world_size: int):
    """Rank 0's validation of a ``train`` request; raises UsageError.

    Returns the plan (JSON-able, broadcast to all ranks) and the checkpoint to
    resume from (or None), read once here.

    Checks the job file, every key, the env id, the rank count and (on
    ``--resume``) the checkpoint's compatibility, before any collective.
    """
    from mpirl.algos import get_algo
    from mpirl.envs import make_env

    resume_ckpt = None
    if args.resume:
        if not args.run_dir:
            raise UsageError("--resume needs --run-dir DIR (the run directory to continue)")
        ckpt_dir = os.path.join(args.run_dir, "checkpoints")
        resume_ckpt = ckpt_io.load_latest(ckpt_dir, warn=lambda m: print(m, file=sys.stderr, flush=True))
    if args.job:
        cfg = load_job(args.job, args.set)
        source = KeySource(args.job, args.set)
    elif resume_ckpt is not None:
        data = apply_overrides(json.loads(json.dumps(resume_ckpt.config)), args.set)
        source = KeySource(f"{resume_ckpt.path} (stored config)", args.set)
        cfg = parse_config(data, source)
    else:
        raise UsageError("train needs a job file (mpirl train JOB.toml) or --resume --run-dir DIR")

    algo = get_algo(cfg.algo)
    if world_size < algo.MIN_RANKS:
        raise UsageError(f"algo {cfg.algo!r} needs at least {algo.MIN_RANKS} MPI ranks "
                         f"(rank 0 learner plus actors); got {world_size}: launch with mpirun -n {algo.MIN_RANKS} or more")
    try:
        env = make_env(cfg.env)
        try:
            algo.check_env(cfg, env)
            expected = algo.state_shapes(cfg, env)
        finally:
            env.close()
    except ConfigError as e:  # environment errors name the key; say where that key was given
        raise ConfigError(f"{source(e.key or 'env.id')}: {e}") from None

    if cfg.learner.device != "cpu":
        key = cfg.learner.given_as
        if cfg.algo == "tabular_q":
            raise ConfigError(f"{source(key)}: key '{key}' is not supported by algo "
                              f"'tabular_q' (its tables are numpy arrays, not torch modules)")
        from mpirl.device import check_device

        try:
            check_device(cfg.learner.device, key)
        except ConfigError as e:
            raise ConfigError(f"{source(key)}: {e}") from None
    if cfg.stop.greedy_episodes and not getattr(algo, "GREEDY_STOP", False):
        raise ConfigError(f"{source('stop.greedy_episodes')}: key 'stop.greedy_episodes' is not supported by "
                          f"algo {cfg.algo!r} (it has no greedy policy to check)")
    if resume_ckpt is not None:
        _check_compatible(cfg, resume_ckpt, expected)
        done = int(resume_ckpt.counters.get("env_steps", 0))
        if cfg.total_env_steps < done:
            raise ConfigError(f"{source('total_env_steps')}: key 'total_env_steps' is {cfg.total_env_steps:,}, below "
                              f"the {done:,} env steps of checkpoint {resume_ckpt.path}: a resumed run only goes "
                              f"forward; give a larger target, e.g. --set total_env_steps={2 * done}")
        run_dir = args.run_dir
    elif args.run_dir:
        run_dir = args.run_dir
        if os.path.isdir(run_dir) and os.listdir(run_dir):
            what = "checkpoints" if ckpt_io.list_checkpoints(os.path.join(run_dir, "checkpoints")) else "files"
            raise UsageError(f"run directory {run_dir} is not empty (it holds {what} of another run): "
                             f"add --resume to continue it, or choose another --run-dir")
    else:
        run_dir = new_run_dir(os.path.join("runs", cfg.name))
    try:
        os.makedirs(os.path.join(run_dir, "checkpoints"), exist_ok=True)
        with open(os.path.join(run_dir, "config.toml"), "w") as f:
            f.write(to_toml(cfg))
    except OSError as e:
        raise UsageError(f"cannot write run directory {run_dir}: {e.strerror}") from None
    plan = {"config": to_dict(cfg), "run_dir": run_dir, "resume": resume_ckpt.path if resume_ckpt else None}
    return plan, resume_ckpt


def new_run_dir(stem: str) -> str:
    """Create and return ``<stem>-<timestamp>``, or ``...-2``, ``-3``: two runs never share a directory.

    ``os.mkdir`` is atomic, so runs started in the same second (or on
    several nodes over a shared filesystem) each get their own.
    """
    base = f"{stem}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    os.makedirs(os.path.dirname(base) or ".", exist_ok=True)
    for k in range(1, 10_000):
        path = base if k == 1 else f"{base}-{k}"
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
        except OSError as e:
            raise UsageError(f"cannot create run directory {path}: {e.strerror}") from None
    raise UsageError(f"cannot create a run directory next to {base}: 10,000 taken")


def _check_compatible(cfg: Config, ck, expected: dict) -> None:
    where = f"checkpoint {ck.path}"
    if ck.algo != cfg.algo:
        raise CheckpointError(f"{where} is from algo {ck.algo!r}, but the job says algo = {cfg.algo!r}")
    if ck.env_id != cfg.env.id:
        raise CheckpointError(f"{where} is for env {ck.env_id!r}, but the job says env.id = {cfg.env.id!r}")
    for name, shape in expected.items():
        got = ck.state.get(name)
        if got is None:
            raise CheckpointError(f"{where} lacks the array {name!r} that algo {cfg.algo!r} needs")
        if tuple(got.shape) != tuple(shape):
            raise CheckpointError(f"{where}: array {name!r} has shape {tuple(got.shape)}, "
                                  f"but this job needs {tuple(shape)}")


class RunContext:
    """What an algorithm sees of the job: config, world, seeds, restored state, logging, checkpoints."""

    def __init__(self, world, plan: dict, resume_ckpt=None):
        self.world = world
        self.cfg: Config = from_dict(plan["config"])
        self.agent = self.cfg.agent
        self.run_dir = plan["run_dir"]
        self.rank, self.size = world.rank, world.size
        world.watch_actors(self.cfg.fault.actor_timeout_s)  # rank 0 stops waiting for silent ranks
        seed_globals(self.cfg.seed, self.rank)
        self.rng = rank_rng(self.cfg.seed, self.rank)
        self.start = time.monotonic()
        self.start_unix = time.time()
        self.first_step_time = None
        self._last_ckpt = time.monotonic()
        # A resumed run continues metrics.csv and TensorBoard at the checkpoint: rows logged after it go.
        resume_step = int(resume_ckpt.counters.get("env_steps", 0)) if resume_ckpt is not None else None
        self.logger = (MetricsLogger(self.run_dir, self.cfg.log.interval_s, self.cfg.log.tensorboard,
                                     self.cfg.log.progress, self.cfg.log.print_every_s, resume_step)
                       if world.is_learner else NullLogger())
        self.logger.message(f"mpirl: run directory {self.run_dir}")
        self.restored_extra = {}
        self.restored_rank_arrays = {}
        self.last_counters: dict = {}  # the counters of the newest checkpoint this run wrote
        self._next_greedy_check = 0  # episode count before which stop_confirmed does not evaluate again
        # Where each rank runs, for the log and timings.json: placement is the first question on a cluster.
        self.hosts = world.gather_json(socket.gethostname())
        if self.hosts is not None:
            ranks = f"{self.size} rank{'s' if self.size != 1 else ''}"
            self.logger.message(f"mpirl: {ranks} on {describe_hosts(self.hosts)}")
        if os.environ.get("SLURM_JOB_ID"):
            self.logger.message(f"mpirl: SLURM job {os.environ['SLURM_JOB_ID']}, "
                                f"SLURM_RESTART_COUNT={os.environ.get('SLURM_RESTART_COUNT', '0')}")
        self.learner_device = self._place_learner()
        self.restored_state, self.restored_counters = self._restore(plan.get("resume"), resume_ckpt)
        self.wall_offset = float(self.restored_counters.get("wall_time_s", 0.0))

    def _place_learner(self) -> str:
        """This rank's learner device (`learner.device` resolved here: GPUs differ between nodes)."""
        requested = self.cfg.learner.device
        if requested == "cpu":
            return "cpu"
        from mpirl.device import resolve

        device, note = resolve(requested, self.world.node_rank())
        notes = self.world.gather_json(note)
        if notes is not None:
            for line in sorted(set(notes)):
                self.logger.message(f"mpirl: {line}")
        return device

    def _restore(self, path, ck):
        # Rank 0 has read the checkpoint; the others receive counters, arrays and their own RNG state.
        if path is None:
            return None, {}
        head = None
        if ck is not None:
            head = {"counters": ck.counters, "rng": {str(k): v for k, v in ck.rng.items()},
                    "arrays": {k: [list(v.shape), v.dtype.str] for k, v in ck.state.items()}}
            self.logger.message(f"mpirl: resuming from {path} at env step {ck.counters.get('env_steps')}")
        head = self.world.bcast_json(head)
        state = {}
        from mpirl.algos import get_algo

        if getattr(get_algo(self.cfg.algo), "RESUME_STATE", "every_rank") == "learner":
            # Only rank 0 learns (actors get the weights from its first publication): the arrays, replay
            # memory included, stay there.
            state = dict(ck.state) if ck is not None else {}
            names = ()
        else:
            names = sorted(head["arrays"].items())
        for name, (shape, dtype) in names:
            buf = np.array(ck.state[name], order="C") if ck is not None else np.empty(shape, dtype=dtype)
            state[name] = self.world.bcast(buf)
        prefix = f"rank_{self.rank}/"
        self.restored_rank_arrays = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        mine = head["rng"].get(str(self.rank))
        self.restored_extra = {}
        if mine is not None:
            restore_rng_state(mine, self.rng)
            self.restored_extra = mine.get("extra", {})
        else:
            # Resuming at a larger rank count: the new ranks start from fresh seeds.
            print(f"[rank {self.rank}] mpirl: checkpoint has no RNG state for this rank; seeding it fresh",
                  file=sys.stderr, flush=True)
        return state, head["counters"]

    # ---- timing ---------------------------------------------------------
    def wall_time(self) -> float:
        """Seconds of training so far, across resumes."""
        return self.wall_offset + time.monotonic() - self.start

    def mark_first_step(self) -> None:
        """Record when this rank took its first environment step (start-up benchmark)."""
        if self.first_step_time is None:
            self.first_step_time = time.time()

    # ---- logging --------------------------------------------------------
    def log(self, row: dict, force: bool = False) -> bool:
        """Log a row of globally reduced metrics (written on rank 0 every ``log.interval_s``)."""
        row = dict(row)
        row.setdefault("wall_time_s", self.wall_time())
        return self.logger.log(row, force)

    # ---- stopping -------------------------------------------------------
    def stop_requested(self) -> bool:
        """Rank 0's vote to stop now because SIGUSR1/SIGTERM arrived (False elsewhere).

        Algorithms add it to their stop decision, which they already make agreed
        (reduced, broadcast, or sent as shutdown from rank 0); the run then writes
        its final checkpoint and exits with ``mpirl.signals.EXIT_STOPPED``.
        """
        from mpirl import signals

        return self.world.is_learner and signals.requested()

    def stop_confirmed(self, state_fn, episodes: int, collective: bool = True) -> bool:
        """May the run stop now that its training return reached ``stop.episode_return_mean``?

        With ``stop.greedy_episodes = 0`` (the default): yes. Otherwise rank 0
        evaluates the greedy policy of ``state_fn()`` (called on rank 0 only)
        over that many episodes and the verdict is broadcast: a stochastic
        policy's training return can pass the threshold while its greedy
        policy, the one evaluated and shipped, does not. ``episodes`` is the
        agreed episode counter: after a failed check the next one waits for
        100 more training episodes (a new window of returns).

        Collective by default (synchronous algorithms, where every rank
        computes the stop decision); ``collective=False`` where rank 0 alone
        decides and then tells the others (DQN, Ape-X, IMPALA, A3C).
        """
        n = self.cfg.stop.greedy_episodes
        if n == 0:
            return True
        verdict = None
        if self.world.is_learner:
            verdict = episodes >= self._next_greedy_check and self._greedy_check(state_fn(), n, episodes)
        return bool(self.world.bcast_json(verdict) if collective else verdict)

    def _greedy_check(self, state: dict, n: int, episodes: int) -> bool:
        from mpirl.algos import get_algo
        from mpirl.evaluate import evaluate

        # Seeds apart from the final evaluation's (12345 + i), and new ones at every check.
        seed = 1_000_000 + 1000 * (episodes % 1_000_000)
        got = evaluate(get_algo(self.cfg.algo).greedy_policy(state, self.cfg), self.cfg.env, n, seed=seed,
                       max_episode_steps=self.cfg.eval.max_episode_steps)["episode_return_mean"]
        stop = self.cfg.stop
        need = stop.episode_return_mean if stop.greedy_return_mean is None else stop.greedy_return_mean
        ok = got >= need
        self.logger.message(f"mpirl: training return reached {stop.episode_return_mean}; greedy check over {n} "
                            f"episodes: {got:.1f} (needs {need}) -> {'stop' if ok else 'continue'}")
        if not ok:
            self._next_greedy_check = episodes + 100
        return ok

    # ---- checkpoints ----------------------------------------------------
    def checkpoint_due(self) -> bool:
        """Rank 0's vote for a checkpoint now (False elsewhere); algorithms agree on it in their sync."""
        interval = self.cfg.checkpoint.interval_s
        return self.world.is_learner and interval > 0 and time.monotonic() - self._last_ckpt >= interval

    def save_checkpoint(self, state: dict, counters: dict, rank_extra: dict | None = None,
                        collective: bool = True, rank_arrays: dict | None = None,
                        rank_rng_docs: dict | None = None) -> str | None:
        """Gather every rank's RNG state (and ``rank_extra``), write the checkpoint on rank 0.

        ``state`` and ``counters`` are taken from rank 0; ``rank_extra`` is
        JSON-able per-rank state (environment RNGs, schedules) returned to the
        same rank as ``ctx.restored_extra`` on resume. Collective: call on all
        ranks at the same point. Asynchronous algorithms call it on rank 0 only
        with ``collective=False`` and pass the RNG documents their actors sent
        (``mpirl.comm.control``) as ``rank_rng_docs``.

        ``rank_arrays`` (collective only): every rank's own named arrays, the
        same names and shapes on every rank (e.g. per-rank networks of gossip
        averaging). They are gathered in one buffer and stored as
        ``rank_<k>/<name>``; on resume rank k finds its own in
        ``ctx.restored_rank_arrays``.

        ``rank_rng_docs`` (non-collective only): ``{rank: doc}`` of the other
        ranks, each a ``mpirl.seeding.rank_rng_doc``; stored as their
        ``rng/rank_<k>`` and restored to them on resume like a gathered one.
        """
        doc = rank_rng_doc(self.rng, rank_extra)
        rng = self.world.gather_json(doc) if collective else [doc]
        if rank_arrays is not None:
            if not collective:
                raise ValueError("rank_arrays needs a collective checkpoint")
            state = dict(state, **self._gather_rank_arrays(rank_arrays))
        self._last_ckpt = time.monotonic()
        if not self.world.is_learner:
            return None
        bad = ckpt_io.nonfinite_arrays(state)
        if bad:
            # A checkpoint is what --resume trusts: never let NaN/inf weights replace the last good one.
            raise NonFiniteError(f"refusing to write the checkpoint at env step {counters['env_steps']}: "
                                 f"non-finite values in {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}; "
                                 f"latest.h5 still names the last finite checkpoint")
        counters = dict(counters, wall_time_s=self.wall_time())
        self.last_counters = counters
        rng = dict(enumerate(rng))
        if rank_rng_docs and not collective:  # the asynchronous actors' own documents
            rng.update({int(r): d for r, d in rank_rng_docs.items() if int(r) != self.rank})
        return ckpt_io.save(os.path.join(self.run_dir, "checkpoints"), counters["env_steps"], state, counters,
                            rng, self.cfg.algo, self.cfg.env.id, to_dict(self.cfg),
                            to_toml(self.cfg), keep=self.cfg.checkpoint.keep)

    def _gather_rank_arrays(self, arrays: dict) -> dict:
        # Per-rank layouts: the same names can differ in length between ranks (an optimizer's
        # param-group JSON holds that rank's learning rate), so rank 0's layout cannot read the others.
        everyone = self.world.gather_arrays(arrays)
        if everyone is None:
            return {}
        return {f"rank_{r}/{k}": v for r, got in enumerate(everyone) for k, v in got.items()}

    def finish(self) -> None:
        """Collective: record start-up timings and close the logs."""
        times = self.world.gather_json({"first_env_step_unix": self.first_step_time})
        if self.world.is_learner:
            with open(os.path.join(self.run_dir, "timings.json"), "w") as f:
                json.dump({"ranks": self.size, "hosts": self.hosts,
                           "first_env_step_unix": [t["first_env_step_unix"] for t in times],
                           "process_start_unix": _process_start(),
                           # The unix time at which wall_time_s was 0 (earlier by the restored wall time).
                           "wall_time_zero_unix": self.start_unix - self.wall_offset}, f, indent=1)
        self.logger.close()


def describe_hosts(hosts: list, most: int = 8) -> str:
    """'2 hosts: a (ranks 0-1), b (ranks 2-3)' from one hostname per rank, in rank order.

    Past ``most`` hosts the rest is summarised (a log line, not a node list: that is timings.json).
    """
    groups: dict = {}
    for rank, host in enumerate(hosts):
        groups.setdefault(host, []).append(rank)

    def spans(ranks):
        out, start = [], ranks[0]
        for prev, cur in zip(ranks, ranks[1:] + [None]):
            if cur != prev + 1:
                out.append(f"{start}" if start == prev else f"{start}-{prev}")
                start = cur
        return ",".join(out)

    n = len(groups)
    shown = [f"{h} (rank{'s' if len(r) > 1 else ''} {spans(r)})" for h, r in list(groups.items())[:most]]
    if n > most:
        shown.append(f"... {n - most} more (timings.json lists every rank's host)")
    return f"{n} host{'s' if n > 1 else ''}: " + ", ".join(shown)


def _process_start() -> float:
    # /proc/self/stat field 22 is the start time in clock ticks since boot.
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")
