"""Rank 0's side effects: metrics.csv, TensorBoard events, the live progress line.

Algorithms call :meth:`MetricsLogger.log` on every rank; only rank 0's logger
writes (the others get a :class:`NullLogger`), so algorithms never test the rank.
"""
from __future__ import annotations

import csv
import math
import os
import sys
import time

BASE_COLUMNS = ["env_steps", "updates", "wall_time_s", "episode_return_mean", "episodes"]


class NullLogger:
    """The logger of ranks other than 0: accepts everything, writes nothing."""

    def log(self, row: dict, force: bool = False) -> bool:
        """Do nothing."""
        return False

    def message(self, text: str) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


class MetricsLogger(NullLogger):
    """Appends one row per ``interval_s`` to ``metrics.csv`` and TensorBoard; draws the progress line."""

    def __init__(self, run_dir: str, interval_s: float, tensorboard: bool = True, progress: bool = True):
        self.path = os.path.join(run_dir, "metrics.csv")
        self.interval_s = interval_s
        self.last = -math.inf
        self._last_row = None
        self.columns = None
        if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            with open(self.path, newline="") as f:
                self.columns = next(csv.reader(f), None)
        self.file = open(self.path, "a", newline="")
        self.writer = csv.writer(self.file)
        self.tb = None
        if tensorboard:
            from mpirl.tbwriter import EventWriter

            self.tb = EventWriter(os.path.join(run_dir, "tb"))
        self.tty = progress and stdout_is_terminal()
        self._progress_width = 0

    def log(self, row: dict, force: bool = False) -> bool:
        """Write ``row`` if ``interval_s`` has passed since the last one (or ``force``)."""
        now = time.monotonic()
        if not force and now - self.last < self.interval_s:
            return False
        self.last = now
        if "env_steps_per_s" not in row:
            rate = float("nan")
            if self._last_row is not None:
                t0, steps0 = self._last_row
                rate = (row["env_steps"] - steps0) / max(now - t0, 1e-9)
            row = dict(row, env_steps_per_s=rate)
        self._last_row = (now, row["env_steps"])
        if self.columns is None:
            self.columns = BASE_COLUMNS + sorted(k for k in row if k not in BASE_COLUMNS)
            self.writer.writerow(self.columns)
        elif set(row) - set(self.columns):
            self._widen(sorted(set(row) - set(self.columns)))
        self.writer.writerow([_fmt(row.get(c, "")) for c in self.columns])
        self.file.flush()
        if self.tb is not None:
            scalars = {k: float(v) for k, v in row.items()
                       if k != "env_steps" and isinstance(v, (int, float)) and not isinstance(v, bool)}
            self.tb.add_scalars(scalars, step=int(row["env_steps"]))
            self.tb.flush()
        if self.tty:
            self._progress(row)
        return True

    def _widen(self, new_columns) -> None:
        # Metrics such as the loss appear only once learning starts: rewrite the
        # (small) file with the wider header, earlier rows get empty cells.
        self.file.close()
        with open(self.path, newline="") as f:
            old = list(csv.reader(f))[1:]
        self.columns = self.columns + list(new_columns)
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(self.columns)
            w.writerows(r + [""] * (len(self.columns) - len(r)) for r in old)
        os.replace(tmp, self.path)
        self.file = open(self.path, "a", newline="")
        self.writer = csv.writer(self.file)

    def _progress(self, row):
        ret = row.get("episode_return_mean", float("nan"))
        line = (f"steps {int(row['env_steps']):>10,}  updates {int(row.get('updates', 0)):>8,}  "
                f"return {ret:8.3f}  episodes {int(row.get('episodes', 0)):>8,}  "
                f"{_num(row.get('env_steps_per_s')):>9,.0f} steps/s  {row.get('wall_time_s', 0):7.1f}s")
        sys.stdout.write("\r" + line.ljust(self._progress_width))
        sys.stdout.flush()
        self._progress_width = len(line)

    def message(self, text: str) -> None:
        """Print a line (ending the progress line first)."""
        if self.tty and self._progress_width:
            sys.stdout.write("\n")
            self._progress_width = 0
        print(text, flush=True)

    def close(self) -> None:
        """Flush and close the files; end the progress line."""
        if self.tty and self._progress_width:
            sys.stdout.write("\n")
            sys.stdout.flush()
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def stdout_is_terminal() -> bool:
    """True when what rank 0 prints reaches a terminal, also through ``mpirun``.

    Hydra (MPICH's mpiexec) detaches ranks from the terminal and pipes their
    output, so ``isatty`` is False in every rank; the launcher's own stdout
    tells whether a person is watching. ``MPIRL_PROGRESS=0/1`` overrides.
    """
    forced = os.environ.get("MPIRL_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1"
    if sys.stdout.isatty():
        return True
    pid = os.getppid()
    for _ in range(4):  # rank -> hydra_pmi_proxy -> mpiexec
        try:
            with open(f"/proc/{pid}/comm") as f:
                name = f.read().strip()
            if name.startswith(("mpiexec", "mpirun")):
                return os.readlink(f"/proc/{pid}/fd/1").startswith(("/dev/pts/", "/dev/tty"))
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
    return False


def _num(v) -> float:
    return v if isinstance(v, (int, float)) and math.isfinite(v) else 0.0


def _fmt(v):
    if isinstance(v, float):  # numpy floats too: write plain numbers, not np.float64(...)
        v = float(v)
        return repr(round(v, 6)) if math.isfinite(v) else str(v)
    return v
