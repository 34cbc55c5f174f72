"""Encoders: observations of an :class:`~mpirl.specs.EnvSpec` in, flat float features out.

``mlp`` for vectors (any other shape is flattened into it); for ``(H, W, C)``
frames ``minatar_cnn`` (Young & Tian 2019), ``nature_cnn`` (Mnih et al. 2015)
and ``impala_resnet`` (Espeholt et al. 2018).

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


class _PixelEncoder(nn.Module):
    """Base of the CNN encoders: ``[N, H, W, C]`` frames (uint8, bool or float) in, features out.

    Frames arrive channel-last, as gymnasium gives them, in their own dtype;
    uint8 frames are divided by 255 here, on the learner's device, so they
    travel as uint8 everywhere before this layer.
    """

    def __init__(self, obs_shape: tuple):
        super().__init__()
        if len(obs_shape) != 3:
            raise ValueError(f"a CNN encoder needs frames of shape (H, W, C), got {tuple(obs_shape)}")
        self.obs_shape = tuple(int(s) for s in obs_shape)

    def frames(self, obs: torch.Tensor) -> torch.Tensor:
        """``[N, H, W, C]`` as float ``[N, C, H, W]``, uint8 scaled to [0, 1]."""
        x = obs.permute(0, 3, 1, 2)
        return x.float() / 255.0 if obs.dtype == torch.uint8 else x.float()

    def _flat_size(self, body: nn.Module) -> int:
        with torch.no_grad():  # on torch's meta device too (state_shapes): zeros follow the default device
            h, w, c = self.obs_shape
            return int(body(torch.zeros(1, c, h, w)).numel())


class MinAtarCNN(_PixelEncoder):
    """The MinAtar network (Young & Tian 2019): one 3x3 convolution of 16 filters, then ``hidden`` units."""

    def __init__(self, obs_shape: tuple, hidden: int = 128):
        super().__init__(obs_shape)
        c = self.obs_shape[2]
        self.conv = nn.Sequential(nn.Conv2d(c, 16, 3, stride=1), nn.ReLU(), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(self._flat_size(self.conv), hidden), nn.ReLU())
        self.out_dim = hidden

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(self.frames(obs)))


class NatureCNN(_PixelEncoder):
    """The Nature DQN network (Mnih et al. 2015): 8x8/4 x32, 4x4/2 x64, 3x3/1 x64, then 512 units."""

    def __init__(self, obs_shape: tuple, hidden: int = 512):
        super().__init__(obs_shape)
        c = self.obs_shape[2]
        self.conv = nn.Sequential(nn.Conv2d(c, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
                                  nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(self._flat_size(self.conv), hidden), nn.ReLU())
        self.out_dim = hidden

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(self.frames(obs)))


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(torch.relu(self.conv0(torch.relu(x))))


class ImpalaResNet(_PixelEncoder):
    """The "deep" network of the IMPALA paper (Espeholt et al. 2018, Fig. 3).

    Three sections of 16, 32 and 32 channels, each a 3x3 conv, a 3x3/2 max
    pool and two residual blocks; then ReLU and ``hidden`` units.
    """

    def __init__(self, obs_shape: tuple, hidden: int = 256, channels=(16, 32, 32)):
        super().__init__(obs_shape)
        layers, c = [], self.obs_shape[2]
        for out in channels:
            layers += [nn.Conv2d(c, out, 3, padding=1), nn.MaxPool2d(3, stride=2, padding=1),
                       _ResidualBlock(out), _ResidualBlock(out)]
            c = out
        self.conv = nn.Sequential(*layers, nn.ReLU(), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(self._flat_size(self.conv), hidden), nn.ReLU())
        self.out_dim = hidden

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(self.frames(obs)))


def _units(cfg, default: int) -> int:
    hidden = tuple(getattr(cfg, "hidden", ()) or ())
    return int(hidden[-1]) if hidden else default


def minatar_cnn(env_spec, cfg) -> MinAtarCNN:
    """The MinAtar network for ``(10, 10, C)`` frames; its dense layer has ``cfg.hidden[-1]`` units."""
    return MinAtarCNN(env_spec.obs_shape, _units(cfg, 128))


def nature_cnn(env_spec, cfg) -> NatureCNN:
    """The Nature DQN CNN (for 84x84 Atari frames); its dense layer has ``cfg.hidden[-1]`` units."""
    return NatureCNN(env_spec.obs_shape, _units(cfg, 512))


def impala_resnet(env_spec, cfg) -> ImpalaResNet:
    """The IMPALA ResNet; its dense layer has ``cfg.hidden[-1]`` units."""
    return ImpalaResNet(env_spec.obs_shape, _units(cfg, 256))


def auto_encoder(env_spec, cfg) -> nn.Module:
    """The encoder the observation spec calls for: ``mlp`` for vectors; for frames ``minatar_cnn`` below
    32x32 (MinAtar's 10x10) and ``nature_cnn`` from 32x32 up (Atari's 84x84)."""
    if env_spec.obs_kind != "image":
        return mlp_encoder(env_spec, cfg)
    h, w, _ = env_spec.obs_shape
    return minatar_cnn(env_spec, cfg) if min(h, w) < 32 else nature_cnn(env_spec, cfg)


ENCODERS.update({"auto": auto_encoder, "minatar_cnn": minatar_cnn, "nature_cnn": nature_cnn,
                 "impala_resnet": impala_resnet})
