"""Rank 0's side effects: metrics.csv, TensorBoard events, the live progress line.

Algorithms call :meth:`MetricsLogger.log` on every rank; only rank 0's logger
writes (the others get a :class:`NullLogger`), so algorithms never test the rank.
"""
from __future__ import annotations

import csv
import math
import os
import re
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
    """Appends one row per ``interval_s`` to ``metrics.csv`` and TensorBoard; shows progress.

    Progress goes to stdout: a live line redrawn in place on a terminal, and a
    plain line every ``print_every_s`` otherwise (pipes, SLURM output files).
    ``resume_step``: the env step of the checkpoint a resumed run starts from;
    rows logged after it (by the run that was interrupted) are dropped from
    ``metrics.csv``, and TensorBoard is told to drop them too, so env_steps
    only grows.
    """

    def __init__(self, run_dir: str, interval_s: float, tensorboard: bool = True, progress: bool = True,
                 print_every_s: float = 30.0, resume_step: int | None = None):
        self.path = os.path.join(run_dir, "metrics.csv")
        self.interval_s = interval_s
        self.last = -math.inf
        self._last_row = None
        self.columns = None
        if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            with open(self.path, newline="") as f:
                self.columns = next(csv.reader(f), None)
            if resume_step is not None and self.columns and "env_steps" in self.columns:
                self._truncate_after(resume_step)
        self.file = open(self.path, "a", newline="")
        self.writer = csv.writer(self.file)
        self.tb = None
        if tensorboard:
            from mpirl.tbwriter import EventWriter

            self.tb = EventWriter(os.path.join(run_dir, "tb"))
            if resume_step is not None:
                self.tb.session_start(resume_step + 1)
        self.tty = progress and stdout_is_terminal()
        self.print_every_s = print_every_s if progress and not self.tty and print_every_s > 0 else None
        self._last_print = time.monotonic()
        self._progress_width = 0

    def _truncate_after(self, step: int) -> None:
        col = self.columns.index("env_steps")
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))[1:]
        keep = [r for r in rows if len(r) > col and _before_or_at(r[col], step)]
        if len(keep) < len(rows):
            self._rewrite(keep)

    def _rewrite(self, rows) -> None:
        # Atomic: a crash leaves the old file or the new one, never half of one.
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(self.columns)
            w.writerows(rows)
        os.replace(tmp, self.path)

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
            self.columns = BASE_COLUMNS + sorted((k for k in row if k not in BASE_COLUMNS), key=natural_key)
            self.writer.writerow(self.columns)
        elif set(row) - set(self.columns):
            self._widen(sorted(set(row) - set(self.columns), key=natural_key))
        self.writer.writerow([_fmt(row.get(c, "")) for c in self.columns])
        self.file.flush()
        if self.tb is not None:
            scalars = {k: float(v) for k, v in row.items()
                       if k != "env_steps" and isinstance(v, (int, float)) and not isinstance(v, bool)}
            self.tb.add_scalars(scalars, step=int(row["env_steps"]))
            self.tb.flush()
        if self.tty:
            self._progress(row)
        elif self.print_every_s is not None and (force or now - self._last_print >= self.print_every_s):
            self._last_print = now
            print(f"mpirl: {self._progress_text(row)}", flush=True)
        return True

    def _widen(self, new_columns) -> None:
        # Metrics such as the loss appear only once learning starts: rewrite the
        # (small) file with the wider header, earlier rows get empty cells.
        self.file.close()
        with open(self.path, newline="") as f:
            old = list(csv.reader(f))[1:]
        self.columns = self.columns + list(new_columns)
        self._rewrite(r + [""] * (len(self.columns) - len(r)) for r in old)
        self.file = open(self.path, "a", newline="")
        self.writer = csv.writer(self.file)

    @staticmethod
    def _progress_text(row) -> str:
        ret = row.get("episode_return_mean", float("nan"))
        return (f"steps {int(row['env_steps']):>10,}  updates {int(row.get('updates', 0)):>8,}  "
                f"return {ret:8.3f}  episodes {int(row.get('episodes', 0)):>8,}  "
                f"{_num(row.get('env_steps_per_s')):>9,.0f} steps/s  {row.get('wall_time_s', 0):7.1f}s")

    def _progress(self, row):
        line = self._progress_text(row)
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


def natural_key(name: str) -> list:
    """Sort key that orders the numbers in names by value: ``env_steps_actor2`` before ``env_steps_actor10``."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def _before_or_at(cell: str, step: int) -> bool:
    try:
        return float(cell) <= step
    except ValueError:
        return False


def _num(v) -> float:
    return v if isinstance(v, (int, float)) and math.isfinite(v) else 0.0


def _fmt(v):
    if isinstance(v, float):  # numpy floats too: write plain numbers, not np.float64(...)
        v = float(v)
        return repr(round(v, 6)) if math.isfinite(v) else str(v)
    return v
