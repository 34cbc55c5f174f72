"""What an environment looks like to an algorithm, said once: observation shape and dtype, action kind.

Every message, unroll buffer and replay layout is derived from an
:class:`EnvSpec` (``(T+1, B, *obs_shape)`` in the observation's own dtype, so a
uint8 image stays uint8 from the environment to the network's first layer),
and only the encoders of :mod:`mpirl.networks` turn observations into flat
features. This module imports neither torch nor gymnasium at import time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple, Union

import numpy as np


@dataclass(frozen=True)
class DiscreteSpec:
    """``n`` actions, numbered ``0..n-1`` (gymnasium ``Discrete(n)``)."""

    n: int

    kind = "discrete"

    def field(self, *lead: int) -> tuple:
        """``(shape, dtype)`` of ``lead`` actions in a message: one int64 index each."""
        return (tuple(lead), np.int64)


@dataclass(frozen=True)
class BoxSpec:
    """Real-valued actions of ``shape`` within ``[low, high]`` (gymnasium ``Box``)."""

    shape: Tuple[int, ...]
    low: Tuple[float, ...]
    high: Tuple[float, ...]

    kind = "box"

    def field(self, *lead: int) -> tuple:
        """``(shape, dtype)`` of ``lead`` actions in a message: float32 vectors."""
        return ((*lead, *self.shape), np.float32)


ActionSpec = Union[DiscreteSpec, BoxSpec]


@dataclass(frozen=True)
class EnvSpec:
    """One environment copy's observation (shape, dtype) and action space."""

    obs_shape: Tuple[int, ...]
    obs_dtype: np.dtype
    action: ActionSpec

    @property
    def obs_kind(self) -> str:
        """``"image"`` for uint8 or bool observations of rank 3 (H, W, C frames: Atari, MinAtar), else ``"vector"``."""
        return "image" if np.dtype(self.obs_dtype) in (np.uint8, np.bool_) and len(self.obs_shape) == 3 else "vector"

    def obs_field(self, *lead: int) -> tuple:
        """``(shape, dtype)`` of ``lead`` observations: ``(*lead, *obs_shape)`` in the observation's dtype."""
        return ((*lead, *self.obs_shape), np.dtype(self.obs_dtype))

    def obs_array(self, *lead: int) -> np.ndarray:
        """A zeroed array for ``lead`` observations."""
        shape, dtype = self.obs_field(*lead)
        return np.zeros(shape, dtype)

    def action_array(self, *lead: int) -> np.ndarray:
        """A zeroed array for ``lead`` actions."""
        shape, dtype = self.action.field(*lead)
        return np.zeros(shape, dtype)


def spec_from_spaces(observation_space, action_space) -> EnvSpec:
    """The :class:`EnvSpec` of gymnasium spaces (a Box observation; Discrete or Box actions).

    Raises ``TypeError`` naming the unsupported space: algorithms turn it into
    a ConfigError that names the ``env.id`` key.
    """
    from gymnasium import spaces

    if not isinstance(observation_space, spaces.Box):
        raise TypeError(f"observation space {observation_space} is not a Box")
    if isinstance(action_space, spaces.Discrete):
        if int(action_space.start) != 0:
            raise TypeError(f"action space {action_space} does not start at 0")
        action: ActionSpec = DiscreteSpec(int(action_space.n))
    elif isinstance(action_space, spaces.Box):
        action = BoxSpec(tuple(int(s) for s in action_space.shape),
                         tuple(float(x) for x in np.ravel(action_space.low)),
                         tuple(float(x) for x in np.ravel(action_space.high)))
    else:
        raise TypeError(f"action space {action_space} is neither Discrete nor Box")
    return EnvSpec(tuple(int(s) for s in observation_space.shape), np.dtype(observation_space.dtype), action)


def env_spec(env) -> EnvSpec:
    """The :class:`EnvSpec` of a gymnasium environment or vector environment (one copy's spaces)."""
    obs = getattr(env, "single_observation_space", None) or env.observation_space
    act = getattr(env, "single_action_space", None) or env.action_space
    return spec_from_spaces(obs, act)
