"""Encoders: observations of an :class:`~mpirl.specs.EnvSpec` in, flat float features out.

An encoder is a torch module with an ``out_dim`` attribute whose forward takes
``[N, *obs_shape]`` observations in their own dtype. Encoders are the only
place where observations are flattened or converted (the pixel encoders of
the next workloads divide uint8 frames by 255 here, on the learner's device).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Linear layers ``in_dim -> *hidden -> out_dim`` with ``activation`` between them (none after the last)."""
    sizes = (in_dim, *hidden, out_dim)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MLPEncoder(nn.Sequential):
    """Linear + activation layers (one after the last too) over flat float32 observation vectors.

    nn.Linear takes any leading dimensions, so vector observations need no
    reshaping: ``prepare`` is None, and a policy tower built on it is a plain
    Sequential (:func:`~mpirl.networks.heads.tower`) whose parameter names
    are flat (``actor.0.weight`` ... ``actor.4.bias``), those of checkpoints
    written before the encoders existed.
    """

    prepare = None

    def __init__(self, obs_shape: tuple, hidden: tuple[int, ...], activation: str = "relu", nested: bool = False):
        if not hidden:
            raise ValueError("an MLP encoder needs at least one hidden layer size")
        act = ACTIVATIONS[activation]
        in_dim = int(np.prod(obs_shape))
        if nested:  # the Q-network torso's historical layout: (mlp(..., hidden[-1]), act)
            layers = [mlp(in_dim, tuple(hidden[:-1]), hidden[-1], act), act()]
        else:
            layers = list(mlp(in_dim, tuple(hidden[:-1]), hidden[-1], act)) + [act()]
        super().__init__(*layers)
        self.obs_ndim = len(obs_shape)
        self.out_dim = int(hidden[-1])


class FlatteningMLPEncoder(MLPEncoder):
    """An :class:`MLPEncoder` for observations that are not flat float32 vectors: flattened and cast first."""

    def prepare(self, obs: torch.Tensor) -> torch.Tensor:
        """``[N, *obs_shape]`` observations as ``[N, prod(obs_shape)]`` float32."""
        return obs.reshape(obs.shape[0], -1).to(torch.float32)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return super().forward(self.prepare(obs))


def mlp_encoder(env_spec, cfg) -> MLPEncoder:
    """The MLP encoder of ``cfg.hidden`` layers and ``cfg.activation`` (observations flattened if need be)."""
    flat = len(env_spec.obs_shape) == 1 and np.dtype(env_spec.obs_dtype) == np.float32
    cls = MLPEncoder if flat else FlatteningMLPEncoder
    return cls(env_spec.obs_shape, tuple(cfg.hidden), cfg.activation, nested=cfg.nested_torso)


ENCODERS = {"mlp": mlp_encoder}
