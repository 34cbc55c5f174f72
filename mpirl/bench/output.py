"""Where benchmarks put their figures: ``<stem>.csv``, ``<stem>.json`` and a matplotlib (Agg) handle."""
from __future__ import annotations

import csv
import json
import os


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
