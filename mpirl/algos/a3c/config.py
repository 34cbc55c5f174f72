"""Configuration of A3C with a parameter server (`[a3c]`)."""
from __future__ import annotations

from dataclasses import dataclass

from mpirl.algos.a2c.config import ActorCriticConfig


@dataclass
class A3CConfig(ActorCriticConfig):
    """A3C (`algo = "a3c"`, Mnih et al. 2016): workers send gradients, rank 0 applies them with shared RMSprop."""

    SECTION = "a3c"
