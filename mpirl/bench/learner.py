"""`mpirl bench learner`: IMPALA learner samples/s on each device, for the pixel encoders on Atari-sized batches.

One process, no MPI: the learner of ``--job`` (default jobs/pong_impala.toml:
84x84x4 uint8 frames, 6 actions) updates on synthetic batches of
``--batch-size`` unrolls of the job's ``unroll_length`` x ``env.num_envs``
steps, as its rank 0 would receive them (uint8 frames copied to the device
and divided by 255 there). For each encoder (``--encoders``) and device
(``--devices``; `cuda` is skipped with a line where torch sees no GPU) it
times ``--updates`` updates after ``--warmup`` untimed ones, ``--repeats``
times, and reports the median samples/s (env steps learned from per second)
and the ratio to the CPU's. Writes ``learner.csv`` / ``learner.json`` and
``learner.png`` into ``--out-dir``.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

from mpirl.bench.output import (add_out_dir, bench_parser, print_written, pyplot_or_skip, warn_if_no_matplotlib,
                                write_csv_json)

COLUMNS = ["encoder", "device", "device_name", "batch_samples", "updates", "repeat", "seconds", "updates_per_s",
           "samples_per_s", "torch_threads"]


def batch(spec, T: int, n: int, num_actions: int, rng) -> dict:
    """A synthetic ``[T+1, n]`` unroll batch of ``spec``'s observations (random frames, actions and rewards)."""
    obs_shape, obs_dtype = spec.obs_field(T + 1, n)
    logits = rng.standard_normal((T, n, num_actions)).astype(np.float32)
    return {"obs": rng.integers(0, 256, obs_shape).astype(obs_dtype) if np.dtype(obs_dtype) == np.uint8
            else rng.standard_normal(obs_shape).astype(obs_dtype),
            "action": rng.integers(0, num_actions, (T, n)).astype(np.int64),
            "reward": rng.choice(np.array([-1, 0, 0, 0, 1], np.float32), (T, n)),
            "terminated": (rng.random((T, n)) < 0.001).astype(np.uint8), "reset": np.zeros((T, n), np.uint8),
            "policy_params": logits}


def measure(job: str, encoder: str, device: str, batch_size: int, updates: int, warmup: int, threads: int,
            rng) -> tuple[float, int]:
    """Seconds for ``updates`` learner updates (after ``warmup``) and the samples per update."""
    import torch

    from mpirl.algos.impala.config import network_config
    from mpirl.algos.impala.learner import ImpalaLearner
    from mpirl.config import load_job
    from mpirl.envs import make_env
    from mpirl.networks import make_networks
    from mpirl.specs import env_spec

    cfg = load_job(job, [f"impala.encoder={encoder}", f"impala.batch_size={batch_size}"])
    a = cfg.agent
    torch.set_num_threads(threads)
    env = make_env(cfg.env)
    spec = env_spec(env)
    env.close()
    torch.manual_seed(0)
    learner = ImpalaLearner(a, make_networks(spec, network_config(a)), cfg.total_env_steps, device=device)
    n = a.batch_size * cfg.env.num_envs
    data = batch(spec, a.unroll_length, n, learner.dist.num_params, rng)
    for _ in range(warmup):
        learner.update(data, 0)
    t0 = time.perf_counter()
    for _ in range(updates):
        learner.update(data, 0)  # each update reads its loss back: the device has finished it
    learner.weights()  # a publication: the weights back on the host
    return time.perf_counter() - t0, a.unroll_length * n


def main(argv) -> int:
    """Run the learner benchmark; prints a table and writes CSV/JSON/PNG."""
    p = bench_parser("learner", __doc__)
    p.add_argument("--job", default="jobs/pong_impala.toml", help="IMPALA job file (default %(default)s)")
    p.add_argument("--encoders", default="nature_cnn,impala_resnet",
                   help="comma-separated encoders (default %(default)s)")
    p.add_argument("--devices", default="cpu,cuda", help="comma-separated devices (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="unrolls per update (default %(default)s, IMPALA's)")
    p.add_argument("--updates", type=int, default=10, help="timed updates per repeat (default %(default)s)")
    p.add_argument("--warmup", type=int, default=2, help="untimed updates first (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="repeats per encoder and device (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the learner (default %(default)s)")
    add_out_dir(p, "learner")
    args = p.parse_args(argv)
    if min(args.batch_size, args.updates, args.repeats, args.threads) < 1 or args.warmup < 0:
        p.error("--batch-size, --updates, --repeats and --threads must be >= 1, --warmup >= 0")
    import torch

    devices = []
    for d in args.devices.split(","):
        if d.startswith("cuda") and not torch.cuda.is_available():
            print(f"mpirl bench learner: skipping {d}: torch sees no CUDA device (torch {torch.__version__})")
            continue
        devices.append(d)
    warn_if_no_matplotlib("learner", "learner.png")
    rng = np.random.default_rng(0)
    rows = []
    for enc in args.encoders.split(","):
        for dev in devices:
            name = torch.cuda.get_device_name(torch.device(dev)) if dev.startswith("cuda") else "cpu"
            for r in range(args.repeats):
                s, per = measure(args.job, enc, dev, args.batch_size, args.updates, args.warmup, args.threads, rng)
                rows.append({"encoder": enc, "device": dev, "device_name": name, "batch_samples": per,
                             "updates": args.updates, "repeat": r, "seconds": round(s, 4),
                             "updates_per_s": args.updates / s, "samples_per_s": args.updates * per / s,
                             "torch_threads": args.threads})
                print(f"{enc:14s} {dev:7s} repeat {r}: {args.updates * per / s:12,.0f} samples/s", flush=True)
    summary = []
    for enc in args.encoders.split(","):
        med = {d: statistics.median(x["samples_per_s"] for x in rows if x["encoder"] == enc and x["device"] == d)
               for d in devices}
        for d in devices:
            summary.append({"encoder": enc, "device": d, "samples_per_s_median": med[d],
                            "vs_cpu": med[d] / med["cpu"] if "cpu" in med else None})
    for s in summary:
        ratio = f"{s['vs_cpu']:.1f}x cpu" if s["vs_cpu"] is not None else ""
        print(f"{s['encoder']:14s} {s['device']:7s} median {s['samples_per_s_median']:12,.0f} samples/s {ratio}")
    paths = write_csv_json(args.out_dir, "learner", rows, COLUMNS,
                           {"summary": summary, "runs": rows, "job": args.job, "batch_size": args.batch_size,
                            "torch": torch.__version__, "date": time.strftime("%Y-%m-%d %H:%M")})
    plt = pyplot_or_skip("learner", "learner.png")
    if plt is not None and summary:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        encs = args.encoders.split(",")
        width = 0.8 / max(len(devices), 1)
        for i, d in enumerate(devices):
            vals = [next(s["samples_per_s_median"] for s in summary if s["encoder"] == e and s["device"] == d)
                    for e in encs]
            ax.bar(np.arange(len(encs)) + i * width, vals, width, label=d)
        ax.set_xticks(np.arange(len(encs)) + width * (len(devices) - 1) / 2, encs)
        ax.set_yscale("log")
        ax.set_ylabel("learner samples/s (median)")
        ax.set_title(f"IMPALA learner, batches of {args.batch_size} unrolls")
        ax.legend()
        fig.tight_layout()
        png = f"{args.out_dir}/learner.png"
        fig.savefig(png, dpi=100)
        plt.close(fig)
        paths.append(png)
    print_written(paths)
    return 0
