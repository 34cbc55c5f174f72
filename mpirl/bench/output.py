"""Where benchmarks put their figures: ``<stem>.csv``, ``<stem>.json`` and a matplotlib (Agg) handle."""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import time


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


def flat_ints(groups) -> list:
    """Flatten ``nargs='+'`` values of :func:`int_list` (``--ranks 2,3 5`` -> [2, 3, 5])."""
    return [v for g in groups for v in (g if isinstance(g, list) else [g])]
