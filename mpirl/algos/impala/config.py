"""Configuration of IMPALA (`[impala]`, with the learner's placement in `[impala.learner]`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from mpirl.algos._policy_value import PolicyValueKeys, network_config
from mpirl.options import opt

__all__ = ["ImpalaConfig", "LearnerConfig", "network_config"]


@dataclass
class LearnerConfig:
    """Where the IMPALA learner (rank 0) computes its updates."""

    device: str = opt("cpu", "Alias of `learner.device` (kept for job files that name it here).",
                      choices=["cpu", "cuda", "auto"])


@dataclass
class ImpalaConfig(PolicyValueKeys):
    """IMPALA (`algo = "impala"`, Espeholt et al. 2018): asynchronous actors, a batching V-trace learner on rank 0."""

    SECTION = "impala"

    unroll_length: int = opt(20, "Steps per environment copy in one unroll (an actor message holds "
                                 "unroll_length x env.num_envs steps).", min=1)
    batch_size: int = opt(2, "Unrolls (actor messages) per learner update, taken first come from any actor.", min=1)
    lr: float = opt(6e-4, "Initial learning rate.", min=0.0)
    lr_decay: bool = opt(True, "Decay the learning rate linearly to 0 over `total_env_steps` (steps the learner "
                               "has received, all actors).")
    optimizer: str = opt("rmsprop", "Optimizer of the learner.", choices=["rmsprop", "adam"])
    rmsprop_alpha: float = opt(0.99, "RMSprop smoothing constant (IMPALA: 0.99).", min=0.0, max=1.0)
    rmsprop_eps: float = opt(0.01, "RMSprop epsilon (IMPALA: 0.01, for a loss summed over the batch; the loss "
                                   "here is a mean, so smaller values suit it).", min=0.0)
    max_grad_norm: float = opt(40.0, "Gradient-norm clipping threshold (0 disables).", min=0.0)
    gamma: float = opt(0.99, "Discount factor.", min=0.0, max=1.0)
    reward_scale: float = opt(1.0, "Factor on the rewards in the learner's loss (episode returns and the stop "
                                   "test stay unscaled). It sets the scale of the value targets, about "
                                   "reward_scale / (1 - gamma) for a reward of 1 per step: with RMSprop or Adam "
                                   "each parameter moves about lr per update, so targets near 10 are fitted "
                                   "much sooner than targets near 100.", min=0.0)
    baseline_cost: float = opt(0.5, "Weight of the value (baseline) loss 0.5 * (v_s - V(x_s))^2.", min=0.0)
    entropy_cost: float = opt(0.01, "Weight of the entropy bonus (subtracted from the loss).", min=0.0)
    entropy_cost_final: Optional[float] = opt(
        None, "Entropy cost at `total_env_steps`, reached linearly from `entropy_cost` (steps the learner has "
              "received, as `lr_decay`): explore early, act near-greedily late. Unset: constant.", min=0.0)
    clip_rho_threshold: float = opt(1.0, "V-trace rho-bar: clipping of the importance weights in the value "
                                         "targets.", min=0.0)
    clip_pg_rho_threshold: float = opt(1.0, "Clipping of the importance weights of the policy-gradient "
                                            "advantages.", min=0.0)
    send_slots: int = opt(4, "Preallocated send buffers per actor (unrolls in flight before an actor waits).",
                          min=1)
    weights_publish_period: int = opt(1, "Learner updates between two weight publications to the actors.", min=1)
    torch_threads: int = opt(1, "torch intra-op threads per rank (1: ranks share the cores).", min=1)
    learner: LearnerConfig = field(default_factory=LearnerConfig, metadata={"help": "Alias of `[learner]`."})
