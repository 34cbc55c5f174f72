"""Where a rank's learner computes: the one place that turns `learner.device` into a torch device.

`cpu` is the default everywhere. `cuda` needs a GPU that torch sees (a clear
ConfigError otherwise, exit 2); `auto` takes one when there is one and says
which it chose. Ranks sharing a node take GPUs round-robin by their rank on
the node, so `mpirun -n 4` of an all-learner algorithm on a 4-GPU node puts
one learner on each GPU. Actors always act on CPU.

``MPIRL_STAGED_LEARNER=1`` runs the device code path on a CPU: the learner
keeps its own copy of the network and every host <-> device copy happens
(between two CPU buffers), so the tests exercise that path on machines
without a GPU.
"""
from __future__ import annotations

import os

from mpirl.errors import ConfigError

CHOICES = ("cpu", "cuda", "auto")


def staged() -> bool:
    """Whether a CPU learner runs the device path anyway (``MPIRL_STAGED_LEARNER=1``, for tests)."""
    return os.environ.get("MPIRL_STAGED_LEARNER", "") == "1"


def cuda_count() -> int:
    """CUDA devices torch sees (0 without a CUDA build or driver); imports torch only when asked."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_device(requested: str, key: str = "learner.device") -> None:
    """Raise a ConfigError naming ``key`` when ``requested`` is `cuda` and torch sees no GPU here."""
    if requested not in CHOICES:
        raise ConfigError(f"key {key!r} must be one of {list(CHOICES)}, got {requested!r}", key=key)
    if requested == "cuda" and cuda_count() == 0:
        import torch

        raise ConfigError(f"key {key!r} is 'cuda' but torch sees no CUDA device (torch {torch.__version__}, "
                          f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
                          f"use 'cpu', or 'auto' to take a GPU only where there is one", key=key)


def resolve(requested: str, local_rank: int = 0) -> tuple[str, str]:
    """The torch device string for this rank's learner and a line saying what was chosen and why."""
    if requested == "cpu":
        return "cpu", "learner.device = cpu"
    n = cuda_count()
    if n == 0:
        if requested == "cuda":
            check_device(requested)
        return "cpu", "learner.device = auto: cpu (torch sees no CUDA device)"
    import torch

    index = local_rank % n
    name = torch.cuda.get_device_name(index)
    return f"cuda:{index}", f"learner.device = {requested}: cuda:{index} ({name}; {n} visible on this node)"
