"""The learner base every torch algorithm uses: network, optimizer, device, non-finite guard, one ``step``.

``step(loss)`` is the whole update: zero the gradients, backward, reduce them
(no reduction, or :class:`AllreduceMean` over a group of learner ranks),
clip, ask the :class:`~mpirl.nonfinite.NonFiniteGuard`, step. The two
halves are public for the parameter-server form (A3C): a worker calls
:meth:`Learner.backward` and ships :attr:`Learner.grad`; the server writes it
back and calls :meth:`Learner.apply`. A learner does not know about ranks:
a reduction hook holds the group it averages over.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from mpirl.nonfinite import NonFiniteGuard, total_grad_norm
from mpirl.optim import make_optimizer
from mpirl.params import FlatParams, flat_gradients
from mpirl.torch_state import load_module_arrays, load_optimizer_arrays, module_arrays, optimizer_arrays


class AllreduceMean:
    """Averages a gradient over ``world``'s ranks with one Allreduce(SUM) of ``[gradient | tail]``.

    ``tail`` (float32 values named by ``tail_fields``) travels in the same
    collective: each rank writes its counters or votes there before the step
    and reads the sums after it (:meth:`sums`). ``on_reduced(tail)`` runs
    after the reduction and before the optimizer step (A2C checks that the
    replicas agree there). ``mpi_s`` accumulates the seconds spent in it.
    """

    def __init__(self, world, num_params: int, tail_fields=(), on_reduced=None):
        self.world, self.fields, self.on_reduced = world, tuple(tail_fields), on_reduced
        self.buffer = np.zeros(num_params + len(self.fields), np.float32)
        self.tail = self.buffer[num_params:]
        self.mpi_s = 0.0

    def __call__(self, grad: np.ndarray) -> None:
        t0 = time.perf_counter()
        self.world.allreduce(self.buffer)
        self.mpi_s += time.perf_counter() - t0
        if self.on_reduced is not None:
            self.on_reduced(self.tail)
        grad *= np.float32(1.0 / self.world.size)

    def sums(self) -> dict:
        """The reduced tail: ``{field: sum over ranks}``."""
        return dict(zip(self.fields, self.tail.tolist()))


class Learner:
    """A network and its optimizer on one device.

    ``grad_reduce``: a callable averaging the flat gradient in place between
    backward and the optimizer step (an :class:`AllreduceMean`, whose buffer
    then holds the gradient); with it, or with ``flat_grads``, the gradients
    live in one float32 vector :attr:`grad` (CPU). ``max_nonfinite``: see
    :class:`~mpirl.nonfinite.NonFiniteGuard`. ``fused``: see
    :func:`~mpirl.optim.make_optimizer`.
    """

    def __init__(self, net: torch.nn.Module, *, optimizer: str, lr: float, device: str = "cpu",
                 max_grad_norm: float = 0.0, max_nonfinite: int = 0, fused: bool = True,
                 rmsprop_alpha: float = 0.99, rmsprop_eps: float = 1e-8, grad_reduce=None,
                 flat_grads: bool = False):
        self.device = torch.device(device)
        self.net = net.to(self.device)
        self.params = FlatParams(self.net)
        self.grad_reduce = grad_reduce
        self.grad = None
        if grad_reduce is not None or flat_grads:
            if self.device.type != "cpu":
                raise ValueError("flat gradients (a reduction hook) need a CPU learner")
            self.grad = flat_gradients(self.net, getattr(grad_reduce, "buffer", None))
        self.opt = make_optimizer(optimizer, self.net.parameters(), lr, fused=fused,
                                  rmsprop_alpha=rmsprop_alpha, rmsprop_eps=rmsprop_eps)
        self.guard = NonFiniteGuard(max_nonfinite)
        self.max_grad_norm = max_grad_norm
        self.updates = 0
        self.lr = lr

    @property
    def flat(self) -> np.ndarray:
        """The parameters as one float32 numpy vector (a live view on CPU)."""
        return self.params.host()

    def set_lr(self, lr: float) -> None:
        """Use learning rate ``lr`` from the next step on."""
        self.lr = lr
        for group in self.opt.param_groups:
            group["lr"] = lr

    def backward(self, loss: torch.Tensor) -> float:
        """Gradients of ``loss`` (NaN under the fault switch); returns the loss value.

        With flat gradients a non-finite loss fills :attr:`grad` with NaN, so
        whichever rank applies it (every replica after a reduction, an A3C
        server) skips it.
        """
        loss = self.guard.loss(loss)
        if self.grad is not None:
            self.grad[...] = 0.0  # backward accumulates into the flat views
        else:
            self.opt.zero_grad(set_to_none=True)
        loss.backward()
        value = float(loss.detach())
        if self.grad is not None and not math.isfinite(value):
            self.grad[...] = np.nan
        return value

    def apply(self, loss_value: float = 0.0) -> dict:
        """Clip, check and apply the current gradients; returns ``grad_norm``, ``lr`` and the guard's count."""
        params = self.net.parameters()
        if self.max_grad_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm))
        else:
            norm = float(total_grad_norm(params))
        if self.guard.allow(loss_value, norm):
            self.opt.step()
            self.updates += 1
        return {"grad_norm": norm, "lr": self.lr, **self.guard.metrics()}

    def step(self, loss: torch.Tensor) -> dict:
        """One whole update: backward, reduction hook, clip, non-finite guard, optimizer step."""
        value = self.backward(loss)
        if self.grad_reduce is not None:
            self.grad_reduce(self.grad)
        return {"loss": value, **self.apply(value)}

    def weights(self) -> np.ndarray:
        """The parameters as one flat float32 host vector (to publish or broadcast)."""
        return self.params.host()

    def state_dict(self, prefix: str = "net") -> dict:
        """Network (under ``prefix/``) and optimizer (``optim/``, with its learning rate) as named arrays."""
        return {**module_arrays(prefix, self.net), **optimizer_arrays("optim", self.opt)}

    def load_state_dict(self, arrays: dict, prefix: str = "net") -> None:
        """Restore what :meth:`state_dict` saved (the flat views stay intact)."""
        load_module_arrays(prefix, self.net, arrays)
        load_optimizer_arrays("optim", self.opt, arrays)


class UsesLearner:
    """Mixin of the algorithms' learners built around a :class:`Learner` (``self.learner``)."""

    learner: Learner

    @property
    def updates(self) -> int:
        """Optimizer steps taken (skipped non-finite ones excluded)."""
        return self.learner.updates

    @updates.setter
    def updates(self, n: int) -> None:
        self.learner.updates = n
