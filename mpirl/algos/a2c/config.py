"""Configuration of the advantage actor-critic family: the shared keys and A2C's own (`[a2c]`)."""
from __future__ import annotations

from dataclasses import dataclass

from mpirl.options import distribution_opt, encoder_opt, opt, shared_encoder_opt


@dataclass
class ActorCriticConfig:
    """Keys shared by `a2c`, `a3c` and `gossip_a2c`."""

    SECTION = "agent"  # the job-file section, named in errors (each algorithm's own)

    hidden: list = opt([64, 64], "Hidden layer sizes of the policy MLP and of the (separate) value MLP.")
    encoder: str = encoder_opt("tanh", " in each tower")
    distribution: str = distribution_opt()
    shared_encoder: bool = shared_encoder_opt()
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
    value_cost: float = opt(0.5, "Weight of the value loss 0.5 * (R_t - V(x_t))^2.", min=0.0)
    entropy_cost: float = opt(0.01, "Weight of the entropy bonus (subtracted from the loss).", min=0.0)
    torch_threads: int = opt(1, "torch intra-op threads per rank (1: ranks share the cores).", min=1)

    def __post_init__(self):
        from mpirl.errors import ConfigError

        if not self.hidden or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in self.hidden):
            raise ConfigError(f"key 'hidden' of the actor-critic section must be a non-empty list of positive "
                              f"integers, got {self.hidden!r}")


@dataclass
class A2CConfig(ActorCriticConfig):
    """Synchronous A2C (`algo = "a2c"`): every rank learns, one Allreduce averages the gradients."""

    SECTION = "a2c"


def network_config(a: ActorCriticConfig):
    """The policy-value network the section describes (:func:`mpirl.networks.make_networks`)."""
    from mpirl.networks import NetworkConfig

    return NetworkConfig("policy_value", tuple(a.hidden), "tanh", encoder=a.encoder, distribution=a.distribution,
                         key=a.SECTION, shared_encoder=a.shared_encoder)
