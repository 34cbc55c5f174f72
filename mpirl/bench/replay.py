"""`mpirl bench replay`: the frame-deduplicating replay at Atari scale: bytes, sample/add/priority speed, checkpoint.

Fills a prioritized frame replay of ``--capacity`` (default 1,000,000)
transitions between (84, 84, 4) uint8 frame stacks through the real n-step
actor (:class:`mpirl.rollout.NStepActor`, ``--envs`` copies, ``--rollout``
steps, ``--n-step``) stepping synthetic frame-stacked streams of random
frames whose episodes last 1..2x``--episode-steps`` steps, and the real
trajectory messages. Then reports: bytes per transition (allocated and as
filled) against the row layout's (computed from its spec, never allocated);
median seconds of ``sample(512)`` (uniform and prioritized; and uniform up
to the float ``[N, C, H, W]`` tensors a CNN encoder starts from), of ``add``
of one message and of ``update_priorities(512)``, with the row replay's at
``--row-capacity`` (and its sum tree at full capacity) beside them; and the
time and peak-RSS growth of writing the replay into an HDF5 checkpoint (and
of reading it back). Writes ``replay.csv`` / ``replay.json`` into
``--out-dir`` (default a new runs/bench-replay-<timestamp>; ``--out-dir
docs/benchmarks/replay`` updates the recorded figures).
"""
from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time

import numpy as np

from mpirl.bench.output import add_out_dir, bench_parser, median_s, print_written, write_csv_json

SHAPE = (84, 84, 4)
_BLOCK = 10  # calls of one replay in a row before the other's: each timed as a learner would call it


class SyntheticStacks:
    """``num_envs`` frame-stacked streams of random frames under gymnasium's next-step autoreset.

    The reset frame fills the stack (as :class:`mpirl.atari.FrameStack`);
    episodes terminate after 1..2 ``mean_steps`` steps. Enough of a vector env
    for :class:`~mpirl.rollout.NStepActor`.
    """

    def __init__(self, num_envs: int, mean_steps: int, seed: int = 0, shape=SHAPE):
        from gymnasium import spaces

        if shape[-1] != 4:
            raise ValueError("synthetic stacks are 4 frames deep")

        self.num_envs, self.mean = num_envs, mean_steps
        self.rng = np.random.default_rng(seed)
        self.single_observation_space = spaces.Box(0, 255, shape, np.uint8)
        self.single_action_space = spaces.Discrete(4)
        self.pool = self.rng.integers(0, 256, (4096,) + shape[:2], dtype=np.uint8)
        self.stacks = np.zeros((num_envs,) + shape, np.uint8)
        # The 4 channels of a pixel as one little-endian uint32 (byte j = channel j): pushing a frame onto
        # the stack is then a shift and an or, not a strided byte copy (10x faster).
        self.pixels = self.stacks.view("<u4")[..., 0]
        self.t = np.zeros(num_envs, np.int64)
        self.length = np.zeros(num_envs, np.int64)
        self.done = np.zeros(num_envs, bool)

    def _frames(self, n):
        return self.pool[self.rng.integers(len(self.pool), size=n)]

    def _start(self, which):
        self.stacks[which] = self._frames(int(which.sum()))[..., None]
        self.t[which] = 0
        self.length[which] = self.rng.integers(1, 2 * self.mean + 1, size=int(which.sum()))

    def reset(self, seed=None, options=None):
        """Start every copy; returns ``(obs, info)``."""
        self._start(np.ones(self.num_envs, bool))
        return self.stacks.copy(), {}

    def step(self, actions):
        """One step of every copy (a copy whose episode ended last step only resets)."""
        ended = self.done.copy()
        self.pixels >>= 8  # all copies, then the resets overwrite theirs
        self.pixels |= self._frames(self.num_envs).astype(np.uint32) << 24
        self.t += 1
        self._start(ended)
        term = ~ended & (self.t >= self.length)
        self.done = term
        zeros = np.zeros(self.num_envs)
        return self.stacks.copy(), zeros, term, np.zeros(self.num_envs, bool), {}

    def close(self):
        """Nothing to release."""


def message_source(args, seed=0):
    """A function returning the next trajectory message's replay batch (real actor and messages)."""
    import torch

    from mpirl.algos.dqn.messages import fill_trajectory, trajectory_spec, transitions
    from mpirl.rollout import NStepActor
    from mpirl.specs import env_spec

    envs = SyntheticStacks(args.envs, args.episode_steps, seed)
    zeros = torch.zeros(args.envs, 4)
    actor = NStepActor(envs, lambda obs: zeros[:len(obs)], args.rollout, args.n_step, 0.99,
                       np.random.default_rng(seed))
    msg = trajectory_spec(args.rollout * args.envs, env_spec(envs),
                          history=(args.rollout + args.n_step, args.envs)).allocate()

    def next_batch():
        fill_trajectory(msg, actor.collect(epsilon=1.0))
        return transitions(msg, source=1)

    return next_batch


def network_ready(batch: dict) -> tuple:
    """What a CNN encoder makes of a sampled batch first: ``[N, C, H, W]`` float in [0, 1], obs and next_obs."""
    import torch

    return tuple(torch.from_numpy(batch[k]).permute(0, 3, 1, 2).float() / 255.0 for k in ("obs", "next_obs"))


def peak_rss_growth(fn) -> tuple:
    """``(seconds, bytes)``: wall time of ``fn()`` and how far the resident set peaked above its start."""
    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak (VmHWM) to the current resident set
    start = status("VmRSS:")
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t, status("VmHWM:") - start


def row_layout_bytes(capacity: int) -> float:
    """Bytes per transition of the row replay (obs and next_obs in full) with its sum tree, from the spec alone."""
    from mpirl.replay import SumTree

    stacks = 2 * int(np.prod(SHAPE))
    return stacks + 8 + 4 + 4 + SumTree(capacity).nbytes / capacity


def as_rows(batch: dict) -> dict:
    """A history batch as the row replay's transitions (full obs and next_obs stacks)."""
    h, c = batch["history"], batch["column"]
    return {"obs": h[batch["row"], c], "next_obs": h[batch["boot"], c],
            **{k: batch[k] for k in ("action", "reward", "discount")}}


def row_replay(args, batches):
    """The row replay at ``--row-capacity``, one lap filled (every page touched, as in use), and a
    ``--capacity`` sum tree for its priority updates."""
    from mpirl.algos.dqn.messages import replay_spec
    from mpirl.replay import PrioritizedReplay
    from mpirl.specs import DiscreteSpec, EnvSpec

    mem = PrioritizedReplay(args.row_capacity, replay_spec(EnvSpec(SHAPE, np.dtype(np.uint8), DiscreteSpec(4))))
    rows = [as_rows(b) for b in batches]
    inserted = 0
    while inserted < args.row_capacity:
        inserted += len(mem.add(rows[inserted % len(rows)]))
    tree = PrioritizedReplay(args.capacity, {"action": ((), np.int64)})
    tree.add({"action": np.zeros(args.capacity, np.int64)}, np.random.default_rng(0).random(args.capacity))
    return mem, rows, tree


def fill(args, next_batch) -> tuple:
    """The prioritized frame replay, filled until both rings went round (every page touched, as in use,
    as the row replay); returns ``(replay, figures)``."""
    from mpirl.algos.dqn.messages import make_replay
    from mpirl.specs import DiscreteSpec, EnvSpec

    mem = make_replay(args.capacity, EnvSpec(SHAPE, np.dtype(np.uint8), DiscreteSpec(4)), prioritized=True)
    inserted, add_s, t0 = 0, 0.0, time.perf_counter()
    while inserted < args.capacity or mem.frames_per_transition * inserted < mem.buffer.frame_capacity:
        batch = next_batch()
        t = time.perf_counter()
        mem.add(batch)
        add_s += time.perf_counter() - t
        inserted += len(batch["row"])
    return mem, {"fill_s": time.perf_counter() - t0, "add_rate_first_fill_per_s": inserted / add_s}


def timings(args, mem, row, tree, batches, rows, rng) -> tuple:
    """Median milliseconds of each operation, frame and row replay called in turn, blocks of 10 calls
    each (so both see the same load on a shared host); returns ``(frame figures, row figures)``."""
    idx = rng.integers(0, args.capacity, args.batch)
    fb, rb = iter(batches), iter(rows)
    ops = {"add_message_ms": (lambda: mem.add(next(fb)), lambda: row.add(next(rb))),
           "sample_512_prioritized_ms": (lambda: mem.sample(args.batch, 0.4, rng),
                                         lambda: row.sample(args.batch, 0.4, rng)),
           "sample_512_uniform_ms": (lambda: mem.buffer.sample(args.batch, rng),
                                     lambda: row.buffer.sample(args.batch, rng)),
           "sample_512_to_network_ms": (lambda: network_ready(mem.buffer.sample(args.batch, rng)[1]),
                                        lambda: network_ready(row.buffer.sample(args.batch, rng)[1])),
           "update_priorities_512_ms": (lambda: mem.update_priorities(idx, rng.random(args.batch)),
                                        lambda: tree.update_priorities(idx, rng.random(args.batch)))}
    frame, other = {}, {}
    for name, (f, g) in ops.items():
        times = ([], [])
        for _ in range(max(1, (len(batches) if "add" in name else args.calls) // _BLOCK)):
            for fn, out in ((f, times[0]), (g, times[1])):  # blocks of calls in turn
                out.extend(median_s(fn, 1) for _ in range(_BLOCK))
        frame[name], other[name] = (1e3 * statistics.median(t) for t in times)
    frame["add_rate_steady_per_s"] = len(batches[0]["row"]) / (frame["add_message_ms"] / 1e3)
    other["add_rate_steady_per_s"] = len(rows[0]["action"]) / (other["add_message_ms"] / 1e3)
    frame.update(size=len(mem), nbytes=mem.nbytes, bytes_per_transition=mem.bytes_per_transition,
                 bytes_per_transition_filled=mem.nbytes / len(mem), frames_per_transition=mem.frames_per_transition)
    return frame, other


def checkpoint_costs(mem, ckpt_dir) -> dict:
    """Seconds and peak-RSS growth of writing the replay into a checkpoint, and of loading it back."""
    from mpirl import checkpoint

    folder = tempfile.mkdtemp(prefix="mpirl-bench-replay-", dir=ckpt_dir)
    try:
        state = {f"replay/{k}": v for k, v in mem.state_dict().items()}
        path = []
        write_s, write_rss = peak_rss_growth(lambda: path.append(checkpoint.save(
            folder, 1, state, {"env_steps": 1}, {}, "apex", "synthetic", {}, "", keep=1)))
        state.clear()  # views of the replay: nothing to free, but no second reference either
        size = os.path.getsize(path[0])
        loaded = []
        load_s, load_rss = peak_rss_growth(lambda: loaded.append(checkpoint.load(path[0])))
        restore_s = median_s(lambda: mem.load_state_dict(
            {k[len("replay/"):]: v for k, v in loaded[0].state.items()}), 1)
        return {"checkpoint_file_bytes": size, "checkpoint_write_s": write_s, "checkpoint_write_rss_growth_bytes":
                write_rss, "checkpoint_load_s": load_s, "checkpoint_load_rss_growth_bytes": load_rss,
                "replay_restore_s": restore_s}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def parser():
    """The ``mpirl bench replay`` option parser."""
    p = bench_parser("replay", __doc__)
    p.add_argument("--capacity", type=int, default=1_000_000, help="frame replay transitions (default %(default)s; "
                   "about 7.6 GB at the default)")
    p.add_argument("--row-capacity", type=int, default=20_000,
                   help="row replay transitions for its sample/add times (default %(default)s: 1.1 GB)")
    p.add_argument("--batch", type=int, default=512, help="sample and priority-update size (default %(default)s)")
    p.add_argument("--calls", type=int, default=50, help="timed calls per median (default %(default)s)")
    p.add_argument("--envs", type=int, default=8, help="env copies per actor message (default %(default)s)")
    p.add_argument("--rollout", type=int, default=16, help="steps per message (default %(default)s)")
    p.add_argument("--n-step", type=int, default=3, help="n of the n-step return (default %(default)s)")
    p.add_argument("--episode-steps", type=int, default=400,
                   help="mean episode length, lengths uniform in 1..2x (default %(default)s)")
    p.add_argument("--ckpt-dir", default=None, help="where the checkpoint is written and deleted "
                   "(default the system temporary folder)")
    p.add_argument("--no-checkpoint", action="store_true", help="skip the checkpoint (default: write it)")
    add_out_dir(p, "replay")
    return p


def main(argv) -> int:
    """Run the replay benchmark; prints a table and writes CSV/JSON."""
    args = parser().parse_args(argv)
    rng = np.random.default_rng(0)
    next_batch = message_source(args)
    batches = [dict(b, history=b["history"].copy()) for b in (next_batch() for _ in range(args.calls))]
    row, row_rows, tree = row_replay(args, batches)
    mem, frame = fill(args, next_batch)
    load_start = os.getloadavg()
    figures, other = timings(args, mem, row, tree, batches, row_rows, rng)
    frame.update(figures, loadavg_timings=[load_start[0], os.getloadavg()[0]])
    other.update(bytes_per_transition=row_layout_bytes(args.capacity))
    other["nbytes"] = other["bytes_per_transition"] * args.capacity
    del row, row_rows, tree, batches
    if not args.no_checkpoint:
        frame.update(checkpoint_costs(mem, args.ckpt_dir))
    rows = [{"metric": k, "frame_replay": v, "row_replay": other.get(k, "")} for k, v in frame.items()
            if k != "loadavg_timings"]
    print(f"{'':>34} {'frame replay':>16} {'row replay':>16}")
    for r in rows:
        beside = f"{r['row_replay']:>16,.3f}" if r["row_replay"] != "" else ""
        print(f"{r['metric']:>34} {r['frame_replay']:>16,.3f} {beside}")
    doc = {"frame_replay": frame, "row_replay": other, "frame": {"shape": list(SHAPE), "bytes": 84 * 84},
           "limit_bytes_per_transition": 1.1 * 84 * 84,
           "args": {k: v for k, v in vars(args).items() if k != "out_dir"}, "cpus": os.cpu_count(),
           "date": time.strftime("%Y-%m-%d")}
    print_written(write_csv_json(args.out_dir, "replay", rows, ["metric", "frame_replay", "row_replay"], doc))
    return 0
