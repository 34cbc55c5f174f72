"""Skipping updates with a non-finite loss or gradient, shared by every torch learner.

One NaN step turns every weight into NaN, and a checkpoint written after it
would carry that into ``--resume``. So each learner asks its
:class:`NonFiniteGuard` before ``optimizer.step()``: a non-finite loss or
gradient norm skips the step (the weights and the optimizer state stay the
last finite ones) and is counted (``nonfinite_skipped`` in the metrics);
``fault.max_nonfinite`` skips in a row raise :class:`~mpirl.errors.NonFiniteError`,
which stops the run (exit 4) without writing another checkpoint.

Fault injection for tests: ``MPIRL_FAULT=nan_loss:K`` makes the loss NaN from
this process's K-th loss computation on (1-based).
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch

from mpirl.errors import NonFiniteError

KEY = "fault.max_nonfinite"


def nan_loss_from(environ=None) -> int | None:
    """The loss computation from which ``MPIRL_FAULT=nan_loss:K`` makes the loss NaN, or None."""
    value = (os.environ if environ is None else environ).get("MPIRL_FAULT", "")
    name, _, k = value.partition(":")
    if name != "nan_loss":
        return None
    if not k.isdigit() or int(k) < 1:
        raise ValueError(f"MPIRL_FAULT=nan_loss:K needs an integer K >= 1, got {value!r}")
    return int(k)


def total_grad_norm(parameters) -> torch.Tensor:
    """The L2 norm of all gradients together (NaN or inf if any gradient is)."""
    grads = [p.grad.detach().reshape(-1) for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.cat(grads))


def is_finite(value) -> bool:
    """True if a number, numpy array or torch tensor holds no NaN or inf."""
    if isinstance(value, torch.Tensor):
        return bool(torch.isfinite(value).all())
    if isinstance(value, np.ndarray):
        return bool(np.isfinite(value).all())
    return math.isfinite(float(value))


class NonFiniteGuard:
    """Decides whether an update may be applied; counts the skipped ones.

    ``max_in_a_row`` (``fault.max_nonfinite``): skips in a row after which
    :meth:`allow` raises :class:`~mpirl.errors.NonFiniteError`; 0 never raises.
    """

    def __init__(self, max_in_a_row: int = 0, environ=None):
        self.max_in_a_row = max_in_a_row
        self.skipped = 0
        self.in_a_row = 0
        self.losses = 0
        self._nan_from = nan_loss_from(environ)

    def loss(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` itself, or NaN under the ``MPIRL_FAULT=nan_loss:K`` switch; call once per loss computed."""
        self.losses += 1
        if self._nan_from is not None and self.losses >= self._nan_from:
            return loss * float("nan")
        return loss

    def allow(self, *values) -> bool:
        """True if every value (loss, gradient norm or gradient) is finite: apply the update.

        Otherwise count a skip and return False; raise after
        ``max_in_a_row`` skips in a row.
        """
        if all(is_finite(v) for v in values):
            self.in_a_row = 0
            return True
        self.skipped += 1
        self.in_a_row += 1
        if self.max_in_a_row and self.in_a_row >= self.max_in_a_row:
            raise NonFiniteError(f"{self.in_a_row} updates in a row had a non-finite loss or gradient "
                                 f"({KEY} = {self.max_in_a_row}; {self.skipped} skipped in all); every one was "
                                 f"skipped, so the weights and the checkpoints on disk are the last finite ones")
        return False

    def metrics(self) -> dict:
        """``{"nonfinite_skipped": total}`` for the metrics row."""
        return {"nonfinite_skipped": self.skipped}
