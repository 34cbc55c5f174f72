"""Flat views of a torch module: its parameters (and float buffers) and its gradients in one vector each.

One contiguous float32 vector per model is what every collective and
point-to-point message moves (as cleanRL and Spinning Up do it): a Bcast or
Allreduce into the vector updates the model in place. On a CUDA device the
vector lives there and :class:`FlatParams` keeps a host copy for MPI.
Move a flattened module with :meth:`FlatParams.to`, which flattens it again on
the new device; a module moved behind its back (``module.to(device)``) no longer
aliases the vector, and :meth:`FlatParams.check` says so instead of publishing
stale weights.
"""
from __future__ import annotations

import numpy as np
import torch


def _tensors(module: torch.nn.Module, buffers: bool) -> list:
    out = list(module.parameters())
    if buffers:  # float buffers (running statistics, normalisers) travel with the weights
        out += [b for b in module.buffers() if b.is_floating_point()]
    return out


def _alias(tensors: list, flat: torch.Tensor) -> None:
    offset = 0
    with torch.no_grad():
        for t in tensors:
            view = flat[offset:offset + t.numel()].view_as(t)
            view.copy_(t.data)
            t.data = view
            offset += t.numel()


class FlatParams:
    """A module's parameters (with ``buffers``, its float buffers too) as views into one float32 vector.

    ``vector`` is the torch vector on the module's device; :meth:`host` gives
    it as a numpy array (a live view on CPU, a copy refreshed from the device
    otherwise) and :meth:`assign` writes a host array into it.
    """

    def __init__(self, module: torch.nn.Module, buffers: bool = True):
        self.module, self._buffers = module, buffers
        self.tensors = _tensors(module, buffers)
        dtypes = {t.dtype for t in self.tensors}
        if dtypes - {torch.float32}:
            raise TypeError(f"flat views need float32 tensors, the module has {sorted(map(str, dtypes))}")
        devices = {t.device for t in self.tensors} or {torch.device("cpu")}
        if len(devices) != 1:
            raise ValueError(f"the module's tensors are on several devices: {sorted(map(str, devices))}")
        self.device = devices.pop()
        self.size = sum(t.numel() for t in self.tensors)
        self.vector = torch.zeros(self.size, dtype=torch.float32, device=self.device)
        _alias(self.tensors, self.vector)
        self._host = self.vector.numpy() if self.device.type == "cpu" else np.zeros(self.size, np.float32)

    def to(self, device) -> "FlatParams":
        """Move the module to ``device`` and flatten it there again (the views stay correct after the move)."""
        self.module.to(device)
        self.__init__(self.module, self._buffers)
        return self

    def check(self) -> None:
        """Raise if a tensor no longer lives in the vector (the module was moved or reassigned)."""
        start = self.vector.data_ptr()
        end = start + self.size * 4
        for t in self.tensors:
            if t.device != self.device or not start <= t.data_ptr() < end:
                raise RuntimeError("a flattened module was moved or had a tensor replaced: its flat vector no "
                                   "longer holds its weights (flatten after .to(device))")

    def host(self) -> np.ndarray:
        """The vector as numpy: the live view on CPU; on a device, a host copy of it now."""
        if self.device.type != "cpu":
            self._host[...] = self.vector.detach().cpu().numpy()
        return self._host

    def assign(self, values: np.ndarray) -> None:
        """Write host ``values`` into the vector (and so into the module)."""
        if self.device.type == "cpu":
            self._host[...] = values
        else:
            self.vector.copy_(torch.from_numpy(np.ascontiguousarray(values, np.float32)))


def flat_parameters(module: torch.nn.Module) -> np.ndarray:
    """Make a CPU module's parameters (and float buffers) views into one float32 vector; return it as numpy.

    The array shares memory with the module: a Bcast or Allreduce into it
    updates the model in place.
    """
    flat = FlatParams(module)
    if flat.device.type != "cpu":
        raise ValueError(f"flat_parameters needs a CPU module (it is on {flat.device}): use FlatParams")
    return flat.host()


def flat_gradients(module: torch.nn.Module, out=None) -> np.ndarray:
    """Make every parameter's ``.grad`` a view into one contiguous float32 vector (CPU).

    With ``out`` (a 1-D float32 array), the gradients are the leading part of
    it, so values appended after them travel in the same collective. Zero it
    in place (not ``zero_grad(set_to_none=True)``) so the views survive.
    """
    params = list(module.parameters())
    n = sum(p.numel() for p in params)
    if out is None:
        flat = torch.zeros(n, dtype=torch.float32)
    else:
        if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.ndim != 1 or out.size < n \
                or not out.flags.c_contiguous:
            raise ValueError(f"out must be a contiguous 1-D float32 array of at least {n} elements")
        flat = torch.from_numpy(out[:n])
        flat.zero_()
    offset = 0
    for p in params:
        p.grad = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
    return flat.numpy()
