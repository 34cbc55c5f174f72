"""Configuration of the advantage actor-critic family: the shared keys and A2C's own (`[a2c]`)."""
from __future__ import annotations

from dataclasses import dataclass

from mpirl.algos._policy_value import PolicyValueKeys, network_config
from mpirl.options import opt

__all__ = ["A2CConfig", "ActorCriticConfig", "network_config"]


@dataclass
class ActorCriticConfig(PolicyValueKeys):
    """Keys shared by `a2c`, `a3c` and `gossip_a2c`."""

    t_max: int = opt(16, "Steps per environment copy between two gradients (an unroll of t_max x env.num_envs "
                         "steps; the n of the n-step returns).", min=1)
    lr: float = opt(1e-3, "Initial learning rate.", min=0.0)
    lr_decay: bool = opt(True, "Decay the learning rate linearly to 0 over `total_env_steps` (all ranks).")
    optimizer: str = opt("rmsprop", "Optimizer applying the gradients.", choices=["rmsprop", "adam"])
    rmsprop_alpha: float = opt(0.99, "RMSprop smoothing constant (Mnih et al. 2016: 0.99).", min=0.0, max=1.0)
    rmsprop_eps: float = opt(1e-5, "RMSprop epsilon (the loss is a mean over the unroll, so a small one).",
                             min=0.0)
    max_grad_norm: float = opt(0.5, "Global gradient-norm clipping of each applied gradient (0 disables).",
                               min=0.0)
    gamma: float = opt(0.99, "Discount factor.", min=0.0, max=1.0)
    reward_scale: float = opt(1.0, "Factor on the rewards in the loss (episode returns and the stop test stay "
                                   "unscaled), as IMPALA's key: it sets the scale of the value targets. Pendulum's "
                                   "rewards of -16..0 per step want about 0.1.", min=0.0)
    value_cost: float = opt(0.5, "Weight of the value loss 0.5 * (R_t - V(x_t))^2.", min=0.0)
    entropy_cost: float = opt(0.01, "Weight of the entropy bonus (subtracted from the loss).", min=0.0)
    torch_threads: int = opt(1, "torch intra-op threads per rank (1: ranks share the cores).", min=1)


@dataclass
class A2CConfig(ActorCriticConfig):
    """Synchronous A2C (`algo = "a2c"`): every rank learns, one Allreduce averages the gradients."""

    SECTION = "a2c"

