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

import copy
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
    are one float32 host vector :attr:`grad`. ``max_nonfinite``: see
    :class:`~mpirl.nonfinite.NonFiniteGuard`. ``fused``: see
    :func:`~mpirl.optim.make_optimizer`.

    On a CPU the learner trains ``net`` itself, and :attr:`grad` and
    :meth:`weights` are live views of its tensors. On a device (or
    ``staged``, see :mod:`mpirl.device`) it trains a copy there; ``net``
    stays on the CPU as :attr:`acting_net`, :meth:`weights` copies the
    device's parameters into it once per call (a publication), :meth:`assign`
    writes host values back, and :attr:`grad` is filled from the device after
    backward and copied back before the step.
    """

    def __init__(self, net: torch.nn.Module, *, optimizer: str, lr: float, device: str = "cpu",
                 max_grad_norm: float = 0.0, max_nonfinite: int = 0, fused: bool = True,
                 rmsprop_alpha: float = 0.99, rmsprop_eps: float = 1e-8, grad_reduce=None,
                 flat_grads: bool = False, staged: bool | None = None):
        from mpirl.device import staged as staged_by_env

        self.device = torch.device(device)
        self.staged = self.device.type != "cpu" or (staged_by_env() if staged is None else staged)
        self.acting_net = net
        self._acting = FlatParams(net) if self.staged else None
        self.net = copy.deepcopy(net).to(self.device) if self.staged else net
        self.params = FlatParams(self.net)
        self.grad_reduce = grad_reduce
        self.grad = self._dgrad = self._grad_t = None
        if grad_reduce is not None or flat_grads:
            host = getattr(grad_reduce, "buffer", None)
            if self.staged:
                self._dgrad = _device_gradients(self.net, self.device)
                n = self._dgrad.numel()
                self.grad = host[:n] if host is not None else np.zeros(n, np.float32)
                self._grad_t = torch.from_numpy(self.grad)
            else:
                self.grad = flat_gradients(self.net, host)
        self.opt = make_optimizer(optimizer, self.net.parameters(), lr, fused=fused,
                                  rmsprop_alpha=rmsprop_alpha, rmsprop_eps=rmsprop_eps)
        self.guard = NonFiniteGuard(max_nonfinite)
        self.max_grad_norm = max_grad_norm
        self.updates = 0
        self.lr = lr
        self._staging: dict = {}

    @property
    def flat(self) -> np.ndarray:
        """The parameters as one float32 numpy vector (:meth:`weights`)."""
        return self.weights()

    def set_lr(self, lr: float) -> None:
        """Use learning rate ``lr`` from the next step on."""
        self.lr = lr
        for group in self.opt.param_groups:
            group["lr"] = lr

    def tensors(self, arrays: dict) -> dict:
        """Numpy arrays as tensors on the learner's device (CPU: shared memory; device: pinned, non-blocking)."""
        if not self.staged:
            return {k: torch.from_numpy(v) for k, v in arrays.items()}
        out = {}
        for k, v in arrays.items():
            v = np.asarray(v)
            buf = self._staging.get(k)
            if buf is None or tuple(buf.shape) != v.shape or buf.numpy().dtype != v.dtype:
                # Reused each update: the copy out of it has finished before the next fill, because every
                # update reads its loss back to the host (a synchronisation) before the next one starts.
                buf = torch.from_numpy(np.empty(v.shape, v.dtype))
                if self.device.type == "cuda":
                    buf = buf.pin_memory()
                self._staging[k] = buf
            buf.numpy()[...] = v
            out[k] = buf.to(self.device, non_blocking=True)
        return out

    def backward(self, loss: torch.Tensor) -> float:
        """Gradients of ``loss`` (NaN under the fault switch); returns the loss value.

        With flat gradients a non-finite loss fills :attr:`grad` with NaN, so
        whichever rank applies it (every replica after a reduction, an A3C
        server) skips it.
        """
        loss = self.guard.loss(loss)
        if self.grad is not None:
            if self.staged:
                self._dgrad.zero_()
            else:
                self.grad[...] = 0.0  # backward accumulates into the flat views
        else:
            self.opt.zero_grad(set_to_none=True)
        loss.backward()
        value = float(loss.detach())
        if self.staged and self.grad is not None:
            self._grad_t.copy_(self._dgrad)
        if self.grad is not None and not math.isfinite(value):
            self.grad[...] = np.nan
        return value

    def apply(self, loss_value: float = 0.0) -> dict:
        """Clip, check and apply the current gradients; returns ``grad_norm``, ``lr`` and the guard's count."""
        if self.staged and self.grad is not None:
            self._dgrad.copy_(self._grad_t)  # the (reduced, or received) host gradient is the one applied
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
        """The parameters as one flat float32 host vector (to publish or broadcast).

        On a CPU a live view; on a device the acting network's vector, refreshed from the device now (one copy).
        """
        if not self.staged:
            return self.params.host()
        self._acting.vector.copy_(self.params.vector)
        return self._acting.host()

    def assign(self, values: np.ndarray) -> None:
        """Write host ``values`` (a flat vector, e.g. a broadcast) into the learner's parameters."""
        if not self.staged:
            if values is not self.params.host():
                self.params.assign(values)
            return
        if values is not self._acting.host():
            self._acting.assign(values)
        self.params.vector.copy_(self._acting.vector)

    def state_dict(self, prefix: str = "net") -> dict:
        """Network (under ``prefix/``) and optimizer (``optim/``, with its learning rate) as named arrays."""
        return {**module_arrays(prefix, self.net), **optimizer_arrays("optim", self.opt)}

    def load_state_dict(self, arrays: dict, prefix: str = "net") -> None:
        """Restore what :meth:`state_dict` saved (the flat views stay intact)."""
        load_module_arrays(prefix, self.net, arrays)
        load_optimizer_arrays("optim", self.opt, arrays)
        self.weights()  # the acting copy follows


def _device_gradients(module: torch.nn.Module, device) -> torch.Tensor:
    """Every parameter's ``.grad`` as a view into one float32 vector on ``device`` (returned)."""
    params = list(module.parameters())
    flat = torch.zeros(sum(p.numel() for p in params), dtype=torch.float32, device=device)
    offset = 0
    for p in params:
        p.grad = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    return flat


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
