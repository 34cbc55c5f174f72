"""``mpirl plot``: learning curves from run directories' ``metrics.csv``, one line per run, into a PNG.

Each run is labelled by its directory name and the ``algo`` and ``env.id`` of
its ``config.toml``. Rows whose metric is empty (no episode finished yet) are
skipped. matplotlib comes with the ``bench`` extra.
"""
from __future__ import annotations

import csv
import os
import tomllib

from mpirl.errors import UsageError

X_AXES = ("env_steps", "wall_time_s")


def read_curve(run_dir: str, x: str, metric: str) -> tuple[list, list, str]:
    """``(xs, ys, label)`` of ``metric`` against ``x`` in ``run_dir``'s metrics.csv."""
    path = os.path.join(run_dir, "metrics.csv")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file (is {run_dir!r} an mpirl run directory?)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and metric not in rows[0]:
        raise UsageError(f"{path} has no column {metric!r}; columns: {', '.join(rows[0])}")
    xs, ys = [], []
    for r in rows:
        try:
            xv, yv = float(r[x]), float(r[metric])
        except (TypeError, ValueError):
            continue
        if yv == yv:
            xs.append(xv)
            ys.append(yv)
    label = os.path.basename(os.path.normpath(run_dir))
    cfg_path = os.path.join(run_dir, "config.toml")
    if os.path.isfile(cfg_path):
        with open(cfg_path, "rb") as f:
            cfg = tomllib.load(f)
        label += f" ({cfg.get('algo', '?')}, {cfg.get('env', {}).get('id', '?')})"
    return xs, ys, label


def plot(run_dirs, out: str, x: str = "env_steps", metric: str = "episode_return_mean", title: str = "") -> str:
    """Draw ``metric`` against ``x`` for every run into ``out`` (PNG); returns ``out``."""
    if x not in X_AXES:
        raise UsageError(f"--x must be one of {', '.join(X_AXES)}, got {x!r}")
    curves = [read_curve(d, x, metric) for d in run_dirs]
    try:
        from mpirl.bench.output import pyplot

        plt = pyplot()
    except ImportError:
        raise UsageError('mpirl plot needs matplotlib: pip install "mpirl[bench]"') from None
    fig, ax = plt.subplots(figsize=(7, 4))
    for xs, ys, label in curves:
        ax.plot(xs, ys, label=label)
    ax.set_xlabel({"env_steps": "env steps", "wall_time_s": "wall time (s)"}[x])
    ax.set_ylabel(metric)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
