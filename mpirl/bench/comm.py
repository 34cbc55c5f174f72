"""``mpirl bench comm``: the mpirl comm layer against raw mpi4py, OSU style.

For each message size and op (bcast, gather, allreduce, p2p ping-pong) three
implementations run side by side, interleaved per size so that machine noise
hits them alike: ``mpirl`` (World collectives and Isend/Irecv completed with
:func:`mpirl.comm.wait.wait`), ``raw`` (mpi4py uppercase buffer calls, which
block inside MPI) and ``pickle`` (mpi4py lowercase calls on a numpy array).
Modelled on mpi4py's demo/osu_latency.py: warm-up iterations, a barrier, then
MPI.Wtime around a timed loop. Rank 0 prints a table and writes comm.csv,
comm.json and comm.png into ``--out-dir`` (default a new
runs/bench-comm-<timestamp>; ``--out-dir docs/benchmarks`` updates the
recorded figures). Without matplotlib (``pip install "mpirl[bench]"``) the
PNG is skipped with a note.

This module imports mpi4py directly (lazily): comparing against raw MPI is its
whole point, so it is the one exception to "only mpirl.comm imports mpi4py".
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys

import numpy as np

from mpirl.bench.output import (add_out_dir, bench_parser, plural, print_written, pyplot_or_skip,
                                warn_if_no_matplotlib, write_csv_json)

OPS = ("bcast", "gather", "allreduce", "p2p")
IMPLS = ("mpirl", "raw", "pickle")
GOAL_FROM_BYTES = 1 << 20
GOAL_RATIO = 1.10
NEED_2_RANKS = "mpirl bench comm: needs at least 2 MPI ranks (run it as: mpirun -n 2 mpirl bench comm)"
COLUMNS = ("op", "impl", "bytes", "latency_us", "bandwidth_MBps", "ranks", "repeats")


def parser() -> argparse.ArgumentParser:
    """The ``mpirl bench comm`` option parser."""
    p = bench_parser("comm", __doc__)
    p.add_argument("--min-bytes", type=int, default=8, help="smallest message in bytes (default %(default)s)")
    p.add_argument("--max-bytes", type=int, default=None,
                   help="largest message in bytes (default 64 MiB, 1 MiB with --quick)")
    p.add_argument("--factor", type=int, default=4, help="ratio between successive sizes (default %(default)s)")
    p.add_argument("--iters", type=int, default=None,
                   help="timed iterations per size (default: ~256 MiB moved, 1000 shrinking to 10 at 64 MiB; "
                        "5 with --quick)")
    p.add_argument("--repeats", type=int, default=3, help="sweeps to take the median over (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="few iterations, up to 1 MiB (for tests; default off)")
    p.add_argument("--ops", default=",".join(OPS), help="comma-separated subset of the ops (default %(default)s)")
    add_out_dir(p, "comm")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse and check the ``mpirl bench comm`` options."""
    p = parser()
    args = p.parse_args(argv)
    args.ops = [o.strip() for o in args.ops.split(",") if o.strip()]
    bad = [o for o in args.ops if o not in OPS]
    if bad or not args.ops:
        p.error(f"--ops: unknown op(s) {bad}; choose from {','.join(OPS)}")
    if args.max_bytes is None:
        args.max_bytes = (1 << 20) if args.quick else (64 << 20)
    if not 1 <= args.min_bytes <= args.max_bytes or args.factor < 2 or args.repeats < 1:
        p.error("need 1 <= --min-bytes <= --max-bytes, --factor >= 2, --repeats >= 1")
    return args


def message_sizes(min_bytes: int, max_bytes: int, factor: int = 4) -> list[int]:
    """Sizes from ``max_bytes`` down by ``factor``, plus ``min_bytes``, ascending.

    Anchored at the top so that 1 MiB and 64 MiB (the goal range) are measured.
    """
    sizes, s = {min_bytes}, max_bytes
    while s >= min_bytes:
        sizes.add(s)
        s //= factor
    return sorted(sizes)


def iterations(nbytes: int, args, impl: str = "raw") -> tuple[int, int]:
    """(timed, warm-up) iterations for one size: ~256 MiB moved, clamped to 10..1000.

    From 1 MiB up pickle runs a quarter of them (at least 5): it is ~10x slower
    there and only a reference, and otherwise takes most of the run, which
    should stay short enough to fit between bursts of load on a shared host.
    """
    if args.iters is not None:
        n = args.iters
    elif args.quick:
        n = 5
    else:
        n = int(min(1000, max(10, (256 << 20) // nbytes)))
        if impl == "pickle" and nbytes >= 1 << 20:
            n = max(5, n // 4)
    return n, max(1, n // 10)


def _steps(op, comm, pair, world, buf, recv):
    """The one-iteration callables of ``op`` for each impl, on preallocated buffers."""
    from mpi4py import MPI

    from mpirl.comm.wait import wait

    if op == "bcast":
        return {"mpirl": lambda: world.bcast(buf),
                "raw": lambda: comm.Bcast(buf, root=0),
                "pickle": lambda: comm.bcast(buf, root=0)}
    if op == "gather":
        return {"mpirl": lambda: world.gather(buf, recv),
                "raw": lambda: comm.Gather(buf, recv, root=0),
                "pickle": lambda: comm.gather(buf, root=0)}
    if op == "allreduce":
        # In place for raw too, so mpirl and raw differ only in how they wait.
        return {"mpirl": lambda: world.allreduce(buf),
                "raw": lambda: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM),
                "pickle": lambda: comm.allreduce(buf, op=MPI.SUM)}
    if pair is None:
        return None
    # p2p: the layer's path is Isend/Irecv completed with the backoff wait.
    peer, c = 1 - pair.rank, pair
    if pair.rank == 0:
        return {"mpirl": lambda: (wait(c.Isend(buf, peer)), wait(c.Irecv(buf, peer))),
                "raw": lambda: (pair.Send(buf, peer), pair.Recv(buf, peer)),
                "pickle": lambda: (pair.send(buf, peer), pair.recv(source=peer))}
    return {"mpirl": lambda: (wait(c.Irecv(buf, peer)), wait(c.Isend(buf, peer))),
            "raw": lambda: (pair.Recv(buf, peer), pair.Send(buf, peer)),
            "pickle": lambda: (pair.recv(source=peer), pair.send(buf, peer))}


def _time(sync, step, n, warmup) -> float:
    """Mean seconds per ``step()`` on this rank, after warm-up and a barrier."""
    from mpi4py import MPI

    for _ in range(warmup):
        step()
    sync.Barrier()  # raw barrier: exact start alignment matters more than idle cost here
    t0 = MPI.Wtime()
    for _ in range(n):
        step()
    return (MPI.Wtime() - t0) / n


def run_sweeps(args, comm) -> dict:
    """Run every sweep; returns {(op, impl, bytes): [seconds per repeat]} on rank 0, None elsewhere."""
    from mpi4py import MPI

    from mpirl.comm.world import World

    world = World(comm)
    # p2p runs on ranks 0 and 1 only; the others must not busy-poll meanwhile
    pair = comm.Split(0 if comm.rank < 2 else MPI.UNDEFINED, comm.rank)
    pair = None if pair == MPI.COMM_NULL else pair
    local = {}
    for rep in range(args.repeats):
        # Rotating the order keeps any first-runs-warmer effect from favouring one impl.
        impls = IMPLS[rep % 3:] + IMPLS[:rep % 3]
        for nbytes in message_sizes(args.min_bytes, args.max_bytes, args.factor):
            buf = np.ones(nbytes, dtype=np.uint8)
            recv = np.empty((comm.size, nbytes), dtype=np.uint8) if comm.rank == 0 else None
            for op in args.ops:
                steps = _steps(op, comm, pair, world, buf, recv)
                for impl in impls:
                    n, warmup = iterations(nbytes, args, impl)
                    if steps is None:
                        t = float("nan")
                    elif op == "p2p":
                        t = _time(pair, steps[impl], n, warmup) / 2  # half the round trip
                    else:
                        t = _time(comm, steps[impl], n, warmup)
                    local.setdefault((op, impl, nbytes), []).append(t)
                    world.barrier()  # backoff barrier: idle p2p ranks sleep here
            del buf, recv
    if pair is not None:
        pair.Free()
    everyone = comm.gather(local, root=0)
    if comm.rank != 0:
        return None
    # A collective is done when its slowest rank is, so take the max over ranks.
    return {k: [float(np.nanmax([r[k][i] for r in everyone])) for i in range(args.repeats)] for k in local}


def summarise(times: dict, ranks: int, repeats: int) -> list[dict]:
    """One row per (op, impl, bytes): median latency over repeats and bandwidth."""
    rows = []
    for (op, impl, nbytes), ts in sorted(times.items(), key=lambda kv: (OPS.index(kv[0][0]), kv[0][2], IMPLS.index(kv[0][1]))):
        lat = statistics.median(ts)
        rows.append({"op": op, "impl": impl, "bytes": nbytes, "latency_us": lat * 1e6,
                     "bandwidth_MBps": nbytes / lat / 1e6, "ranks": ranks, "repeats": repeats})
    return rows


def paired_ratios(times: dict) -> dict:
    """{(op, bytes): median over sweeps of mpirl/raw within each sweep}.

    mpirl and raw run back to back in every sweep, so pairing them cancels
    load that drifts between sweeps better than a ratio of medians would.
    """
    return {(op, b): statistics.median(m / r for m, r in zip(ts, times[(op, "raw", b)]))
            for (op, impl, b), ts in times.items() if impl == "mpirl" and (op, "raw", b) in times}


def _human(n: int) -> str:
    for unit, k in (("MiB", 20), ("KiB", 10)):
        if n >= 1 << k and n % (1 << k) == 0:
            return f"{n >> k} {unit}"
    return f"{n} B"


def format_table(rows: list[dict], ratios: dict) -> str:
    """An aligned table: latency and bandwidth of each impl per (op, bytes), and paired mpirl/raw."""
    by = {(r["op"], r["bytes"], r["impl"]): r for r in rows}
    keys = sorted({(r["op"], r["bytes"]) for r in rows}, key=lambda k: (OPS.index(k[0]), k[1]))
    head = f"{'op':<10}{'bytes':>9}" + "".join(f"{i + ' us':>13}" for i in IMPLS) \
        + "".join(f"{i + ' MB/s':>13}" for i in IMPLS) + f"{'mpirl/raw':>11}"
    lines = [head, "-" * len(head)]
    for op, nbytes in keys:
        cells = [by.get((op, nbytes, i)) for i in IMPLS]
        lat = "".join(f"{c['latency_us']:13.2f}" if c else f"{'-':>13}" for c in cells)
        bw = "".join(f"{c['bandwidth_MBps']:13.1f}" if c else f"{'-':>13}" for c in cells)
        ratio = f"{ratios[(op, nbytes)]:11.3f}" if (op, nbytes) in ratios else f"{'-':>11}"
        lines.append(f"{op:<10}{_human(nbytes):>9}{lat}{bw}{ratio}")
    return "\n".join(lines)


def goal_report(ratios: dict) -> tuple[str, bool]:
    """Per op, the paired mpirl/raw latency ratio for sizes >= 1 MiB and whether it is within 10%."""
    lines, all_ok = [f"mpirl/raw latency from {_human(GOAL_FROM_BYTES)} up, median of per-sweep ratios"
                     f" (goal: <= {GOAL_RATIO:.2f})"], True
    for op in OPS:
        sizes = sorted(b for (o, b) in ratios if o == op and b >= GOAL_FROM_BYTES)
        if not sizes:
            continue
        ratios_op = [ratios[(op, b)] for b in sizes]
        ok = max(ratios_op) <= GOAL_RATIO
        all_ok &= ok
        cells = "  ".join(f"{_human(b)}: {r:.3f}" for b, r in zip(sizes, ratios_op))
        lines.append(f"  {op:<10} {cells}  -> {'within 10%' if ok else 'MISSES the 10% goal'}")
    return "\n".join(lines), all_ok


def write_outputs(rows: list[dict], out_dir: str, meta: dict) -> list[str]:
    """Write comm.csv, comm.json and (with matplotlib) comm.png into ``out_dir``; returns the paths written."""
    paths = write_csv_json(out_dir, "comm", rows, COLUMNS, {"metadata": meta, "rows": rows})
    png = os.path.join(out_dir, "comm.png")
    plt = pyplot_or_skip("comm", png)
    if plt is None:
        return paths
    ops = [op for op in OPS if any(r["op"] == op for r in rows)]
    fig, axes = plt.subplots(1, len(ops), figsize=(4.2 * len(ops), 3.8), squeeze=False)
    for ax, op in zip(axes[0], ops):
        for impl in IMPLS:
            pts = [(r["bytes"], r["latency_us"]) for r in rows if r["op"] == op and r["impl"] == impl]
            if pts:
                ax.loglog(*zip(*pts), marker="o", ms=3, label=impl)
        ax.set_title(op + (" (half round trip)" if op == "p2p" else ""))
        ax.set_xlabel("message bytes")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("latency (us)")
    axes[0][0].legend()
    fig.suptitle(f"mpirl bench comm, {plural(meta['ranks'], 'rank')}, median of {plural(meta['repeats'], 'sweep')}")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return paths + [png]


def _load():
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def main(argv: list[str]) -> int:
    """Run the benchmark on every rank of ``mpirun``; rank 0 reports. Returns an exit code."""
    args = parse_args(argv)
    from mpi4py import MPI
    import mpi4py

    comm = MPI.COMM_WORLD
    if comm.size < 2:
        print(NEED_2_RANKS, file=sys.stderr)
        return 2
    if comm.rank == 0:
        warn_if_no_matplotlib("comm", os.path.join(args.out_dir, "comm.png"))
    load_before = _load()
    times = run_sweeps(args, comm)
    if comm.rank != 0:
        return 0
    rows = summarise(times, comm.size, args.repeats)
    ratios = paired_ratios(times)
    meta = {"ranks": comm.size, "repeats": args.repeats,
            "mpi_library_version": " ".join(MPI.Get_library_version().splitlines()[0].split()),
            "mpi4py_version": mpi4py.__version__,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "argv": list(argv),
            # The host is shared: the load says how much to trust a run, the samples how noisy it was.
            "load_average_before_after": [load_before, _load()],
            "latency_us_per_repeat": {f"{op}/{impl}/{b}": [t * 1e6 for t in ts] for (op, impl, b), ts in times.items()},
            "mpirl_over_raw_paired": {f"{op}/{b}": r for (op, b), r in ratios.items()}}
    report, _ = goal_report(ratios)
    print(f"# mpirl bench comm: {plural(comm.size, 'rank')}, median of {plural(args.repeats, 'sweep')}, "
          f"{meta['mpi_library_version']}"
          f"; p2p latency is half the round trip; MB/s = message bytes / latency")
    print(format_table(rows, ratios))
    print()
    print(report)
    print_written(write_outputs(rows, args.out_dir, meta))
    sys.stdout.flush()
    return 0
