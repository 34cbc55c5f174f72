"""Configuration of PPO (`[ppo]`): synchronous data-parallel, every rank a learner."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from mpirl.algos._policy_value import PolicyValueKeys, network_config
from mpirl.options import opt

__all__ = ["PPOConfig", "network_config"]


@dataclass
class PPOConfig(PolicyValueKeys):
    """PPO (`algo = "ppo"`, Schulman et al. 2017) run as DD-PPO does: every rank collects and learns.

    Defaults are cleanRL's `ppo.py` (CartPole) settings; the key names follow
    cleanRL where mpirl has no name of its own.
    """

    SECTION = "ppo"

    init: str = opt(
        "orthogonal", "Initial weights: `orthogonal` (cleanRL's PPO: gain sqrt(2), zero biases, 0.01 for the policy "
                      "head and 1 for the value head), or `default` (torch's).", choices=["default", "orthogonal"])
    num_steps: int = opt(128, "Steps per environment copy per iteration (each rank collects num_steps x "
                              "env.num_envs steps, then updates).", min=1)
    update_epochs: int = opt(4, "Passes over the iteration's samples.", min=1)
    num_minibatches: int = opt(4, "Minibatches per epoch on each rank; each is one optimizer step whose gradient "
                                  "is averaged over the ranks with one Allreduce.", min=1)
    lr: float = opt(2.5e-4, "Initial learning rate (Adam).", min=0.0)
    lr_decay: bool = opt(True, "Anneal the learning rate linearly to 0 over `total_env_steps` (all ranks).")
    optimizer: str = opt("adam", "Optimizer of the replicas.", choices=["adam", "rmsprop"])
    rmsprop_alpha: float = opt(0.99, "RMSprop smoothing constant.", min=0.0, max=1.0)
    rmsprop_eps: float = opt(1e-5, "RMSprop epsilon.", min=0.0)
    gamma: float = opt(0.99, "Discount factor.", min=0.0, max=1.0)
    gae_lambda: float = opt(0.95, "lambda of generalized advantage estimation.", min=0.0, max=1.0)
    clip_coef: float = opt(0.2, "Clipping range epsilon of the probability ratio (and of the value change when "
                                "`clip_vloss`).", min=0.0)
    clip_vloss: bool = opt(True, "Clip the value loss around the rollout's values (the PPO reference "
                                 "implementation's pessimistic value loss).")
    norm_adv: bool = opt(True, "Normalise the advantages with the mean and standard deviation of the iteration's "
                               "samples on all ranks (one Allreduce of sums).")
    norm_obs: bool = opt(False, "Normalise observations by their running mean and variance over all ranks (vector "
                                "observations; updated after each iteration, stored with the network in "
                                "checkpoints and applied by `mpirl eval`).")
    clip_obs: float = opt(10.0, "Normalised observations are clipped to [-clip_obs, clip_obs].", min=0.0)
    norm_reward: bool = opt(False, "Divide the rewards the loss sees by the running standard deviation of the "
                                   "discounted return over all ranks (episode returns and the stop rule stay "
                                   "unscaled).")
    clip_reward: float = opt(10.0, "Scaled rewards are clipped to [-clip_reward, clip_reward].", min=0.0)
    value_cost: float = opt(0.5, "Weight of the value loss 0.5 * (V - R)^2 (c1 of the paper's eq. 9).", min=0.0)
    entropy_cost: float = opt(0.01, "Weight of the entropy bonus (c2 of eq. 9).", min=0.0)
    entropy_cost_final: Optional[float] = opt(
        None, "Entropy cost at `total_env_steps`, reached linearly from `entropy_cost` (all ranks' env steps, "
              "as `lr_decay`; set once per iteration): explore early, act near-greedily late. Unset: constant.",
        min=0.0)
    max_grad_norm: float = opt(0.5, "Global gradient-norm clipping of each averaged gradient (0 disables).",
                               min=0.0)
    target_kl: Optional[float] = opt(None, "Early stop: an iteration's epochs end at the first minibatch whose KL "
                                           "estimate, averaged over ranks, exceeds 1.5 x target_kl (that minibatch "
                                           "is not applied). Unset: all epochs run.", min=0.0)
    torch_threads: int = opt(1, "torch intra-op threads per rank (1: ranks share the cores).", min=1)

