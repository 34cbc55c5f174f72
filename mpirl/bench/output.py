"""What the benchmarks share: their parser, ``--out-dir`` and ``--ranks`` options, output files and plots.

Every bench writes ``<stem>.csv`` and ``<stem>.json`` (and ``<stem>.png``
where a plot helps) into ``--out-dir``, by default a fresh
``runs/bench-<what>-<timestamp>``; the recorded figures in docs/benchmarks
change only when asked for with ``--out-dir docs/benchmarks``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import time

from mpirl.logger import natural_key  # noqa: F401 - one sort order for metrics.csv and bench CSVs


def write_csv_json(out_dir: str, stem: str, rows: list, columns: list, doc: dict) -> list:
    """Write ``rows`` to ``<stem>.csv`` and ``doc`` to ``<stem>.json``; returns both paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"{stem}.{ext}") for ext in ("csv", "json")]
    with open(paths[0], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    with open(paths[1], "w") as f:
        json.dump(doc, f, indent=1)
    return paths


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MATPLOTLIB_EXTRA = 'pip install "mpirl[bench]"'


def have_matplotlib() -> bool:
    """Whether matplotlib can be imported (it comes with the ``bench`` extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def warn_if_no_matplotlib(what: str, png: str) -> None:
    """At a bench's start: one line saying the figure will be skipped, so one can stop and install it."""
    if not have_matplotlib():
        print(f"mpirl bench {what}: note: matplotlib is not installed: {png} will be skipped "
              f"(the CSV/JSON are written; for the figure: {MATPLOTLIB_EXTRA})", flush=True)


def pyplot_or_skip(what: str, png_path: str):
    """:func:`pyplot`, or None after one line saying the PNG is skipped and which extra brings matplotlib."""
    try:
        return pyplot()
    except ImportError:
        print(f"mpirl bench {what}: skipped {png_path}: matplotlib is not installed "
              f"(the figure is the point of it: {MATPLOTLIB_EXTRA})", flush=True)
        return None


def median_s(fn, calls: int) -> float:
    """Median wall seconds of ``calls`` calls of ``fn``."""
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def print_written(paths) -> None:
    """The last line of every bench: where its files are."""
    print("wrote " + ", ".join(paths), flush=True)


def description(doc: str) -> str:
    """A parser description from a bench module's docstring: its first paragraph, without RST backticks."""
    return " ".join(doc.split("\n\n")[0].split()).replace("`", "")


def bench_parser(what: str, doc: str) -> argparse.ArgumentParser:
    """The ``mpirl bench <what>`` parser, described by the first paragraph of the module docstring."""
    return argparse.ArgumentParser(prog=f"mpirl bench {what}", description=description(doc))


def plural(n, word: str) -> str:
    """``1 rank``, ``2 ranks``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def ordered_columns(rows, first=()) -> list:
    """CSV columns: ``first``, then every other key of ``rows`` in :func:`natural_key` order."""
    rest = {k for r in rows for k in r if k not in first}
    return list(first) + sorted(rest, key=natural_key)


def default_out_dir(what: str) -> str:
    """``runs/bench-<what>-<timestamp>``: benches write into a run folder unless told ``--out-dir``."""
    return os.path.join("runs", f"bench-{what}-{time.strftime('%Y%m%d-%H%M%S')}")


def add_out_dir(parser: argparse.ArgumentParser, what: str) -> None:
    """The ``--out-dir`` option every bench shares (docs/benchmarks only when asked for)."""
    parser.add_argument("--out-dir", default=default_out_dir(what),
                        help="where the output files go (default runs/bench-%s-<timestamp>; "
                             "pass docs/benchmarks to update the recorded figures)" % what)


def int_list(text: str) -> list:
    """argparse type for rank counts and seeds: ``4``, ``2,3,5``, ``0-9`` or a mix (``1,4-6``)."""
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise argparse.ArgumentTypeError(f"{text!r} is not a list of integers (like 4, 2,3,5 or 0-9)")
        lo = int(m.group(1))
        out.extend(range(lo, int(m.group(2) or lo) + 1))
    return out


def format_ints(values) -> str:
    """``[0, 1, 2, 3, 5]`` -> ``0-3,5``: the :func:`int_list` spelling of a default."""
    parts, i = [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(f"{values[i]}-{values[j]}" if j - i >= 2 else ",".join(map(str, values[i:j + 1])))
        i = j + 1
    return ",".join(parts)


def add_int_list(parser: argparse.ArgumentParser, flag: str, default: list, help: str) -> None:
    """An option taking integers as ``4``, ``2,3,5``, ``0-9``, ``1,4-6`` or several of those
    separated by spaces; read it with :func:`flat_ints`."""
    parser.add_argument(flag, type=int_list, nargs="+", default=list(default), metavar="N",
                        help=f"{help}; given as 4, 2,3,5, 2-5 or 4 2 (default {format_ints(list(default))})")


def flat_ints(groups) -> list:
    """Flatten ``nargs='+'`` values of :func:`int_list` (``--ranks 2,3 5`` -> [2, 3, 5])."""
    return [v for g in groups for v in (g if isinstance(g, list) else [g])]


def job_bench_parser(what: str, doc: str, job: str, ranks: list, algo: str) -> argparse.ArgumentParser:
    """The parser of a bench that launches one job at several rank counts (apex, impala)."""
    p = bench_parser(what, doc)
    p.add_argument("--job", default=job, help=f"{algo} job file (default %(default)s)")
    add_int_list(p, "--ranks", ranks, "rank counts, each >= 2 (one learner, the rest actors)")
    p.add_argument("--repeats", type=int, default=3, metavar="R",
                   help="runs per rank count, seeds 0..R-1 (default %(default)s)")
    p.add_argument("--threshold", type=float, default=450.0,
                   help="training return mean for launch_to_return_s (default %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra override for every run (repeatable; default none)")
    add_out_dir(p, what)
    return p
