"""The network keys every policy-value algorithm shares (`a2c`, `a3c`, `gossip_a2c`, `impala`, `ppo`), said once.

Each algorithm's section dataclass derives from :class:`PolicyValueKeys` and
names its section in ``SECTION``; :func:`network_config` turns the keys into
what :func:`mpirl.networks.make_networks` builds.
"""
from __future__ import annotations

from dataclasses import dataclass

from mpirl.options import distribution_opt, encoder_opt, opt, shared_encoder_opt


@dataclass
class PolicyValueKeys:
    """Network keys of a policy-value section: layer sizes, encoder, action distribution, initialisation."""

    SECTION = "agent"  # the job-file section, named in errors (each algorithm's own)

    hidden: list = opt([64, 64], "Hidden layer sizes of the policy MLP and of the (separate) value MLP.")
    encoder: str = encoder_opt("tanh", " in each tower")
    distribution: str = distribution_opt()
    shared_encoder: bool = shared_encoder_opt()
    init: str = opt("default", "Initial weights: `default` (torch's), or `orthogonal` (cleanRL's PPO: gain sqrt(2), "
                               "zero biases, 0.01 for the policy head and 1 for the value head).",
                    choices=["default", "orthogonal"])
    log_std_init: float = opt(0.0, "Initial log standard deviation of a Gaussian policy (Box actions; ignored by "
                                   "a categorical one). Below 0 starts with less exploration noise (SB3 zoo's "
                                   "Pendulum A2C: -2).")

    def __post_init__(self):
        from mpirl.errors import ConfigError

        if not self.hidden or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in self.hidden):
            raise ConfigError(f"key '{self.SECTION}.hidden' must be a non-empty list of positive integers, "
                              f"got {self.hidden!r}")


def network_config(a: PolicyValueKeys):
    """The policy-value network the section describes (:func:`mpirl.networks.make_networks`)."""
    from mpirl.networks import NetworkConfig

    return NetworkConfig("policy_value", tuple(a.hidden), "tanh", encoder=a.encoder, distribution=a.distribution,
                         key=a.SECTION, shared_encoder=a.shared_encoder, init=a.init, log_std_init=a.log_std_init,
                         obs_norm=bool(getattr(a, "norm_obs", False)), obs_clip=float(getattr(a, "clip_obs", 10.0)))
