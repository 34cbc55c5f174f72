"""Networks built from an environment spec: encoders, heads and action distributions, resolved in one place.

``make_networks(env_spec, network_cfg)`` returns the network an algorithm
learns; algorithms never build layers themselves. Encoders and distributions
are looked up by name in :data:`ENCODERS` / :data:`DISTRIBUTIONS`, or given as
``"package.module:callable"`` (a user's own, imported on every rank):

- an encoder factory is ``fn(env_spec, network_cfg) -> nn.Module`` with an
  ``out_dim`` attribute, taking ``[N, *obs_shape]`` observations in their dtype;
- a distribution is a class built as ``cls(action_spec)``, with ``num_params``,
  ``log_prob``, ``entropy``, ``log_prob_and_entropy``, ``mode`` and ``sample``
  (see :class:`~mpirl.networks.distributions.Categorical`) and ``supports``,
  the action kinds it handles.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Tuple

import torch

from mpirl.errors import ConfigError
from mpirl.networks.distributions import AUTO, DISTRIBUTIONS, Categorical, DiagGaussian, GaussianHead, TanhGaussian
from mpirl.networks.encoders import ENCODERS, FlatteningMLPEncoder, MLPEncoder, mlp, mlp_encoder
from mpirl.networks.heads import PolicyValueNet, QNet, SharedPolicyValueNet, Tower, orthogonal_init, tower
from mpirl.networks.normalize import ObsNormalized, RewardScaler, RunningNorm

__all__ = ["Categorical", "DISTRIBUTIONS", "DiagGaussian", "ENCODERS", "FlatteningMLPEncoder", "MLPEncoder",
           "NetworkConfig", "ObsNormalized", "PolicyValueNet", "QNet", "RewardScaler", "RunningNorm",
           "SharedPolicyValueNet", "TanhGaussian", "Tower", "make_distribution", "make_networks", "mlp",
           "mlp_encoder", "orthogonal_init", "resolve", "tower"]


@dataclass(frozen=True)
class NetworkConfig:
    """What to build: ``kind`` ``"q"`` (Q-values) or ``"policy_value"`` (policy and value towers).

    ``shared_encoder`` (policy_value only): one encoder under both heads
    instead of one per tower. ``key`` is the job-file section the settings
    came from (``impala``), named in errors. ``distribution`` ``"auto"``:
    a Categorical for discrete actions, a diagonal Gaussian for Box ones.
    ``init`` ``"orthogonal"`` (policy_value only): :func:`orthogonal_init`;
    ``"default"``: torch's own. ``obs_norm``: observations pass through a
    :class:`~mpirl.networks.normalize.RunningNorm` (clipped at ``obs_clip``)
    first, vectors only. ``log_std_init``: the starting value of every
    :class:`~mpirl.networks.distributions.GaussianHead`'s log std.
    """

    kind: str
    hidden: Tuple[int, ...]
    activation: str = "relu"
    dueling: bool = False
    encoder: str = "auto"
    distribution: str = "categorical"
    key: str = "agent"
    shared_encoder: bool = False
    init: str = "default"
    obs_norm: bool = False
    obs_clip: float = 10.0
    log_std_init: float = 0.0

    @property
    def nested_torso(self) -> bool:
        """The Q-network torso keeps its historical nesting (checkpoint names ``torso.0.0.weight``)."""
        return self.kind == "q"


def resolve(name: str, table: dict, what: str, key: str):
    """``table[name]``, or the object a ``"module:attr"`` string names; a ConfigError naming ``key`` otherwise."""
    if name in table:
        return table[name]
    if ":" not in name:
        raise ConfigError(f"unknown {what} {name!r} (key {key!r}): choose one of {sorted(table)} or give "
                          f"'package.module:callable'", key=key)
    module, _, attr = name.partition(":")
    try:
        obj = importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{what} {name!r} (key {key!r}) cannot be loaded: {type(e).__name__}: {e}",
                          key=key) from None
    return obj


def make_distribution(env_spec, cfg: NetworkConfig):
    """The action distribution family ``cfg.distribution`` for ``env_spec``'s actions."""
    name = AUTO.get(env_spec.action.kind, "") if cfg.distribution == "auto" else cfg.distribution
    cls = resolve(name, DISTRIBUTIONS, "distribution", f"{cfg.key}.distribution")
    kinds = getattr(cls, "supports", ())
    if env_spec.action.kind not in kinds:
        raise ConfigError(f"distribution {cfg.distribution!r} (key '{cfg.key}.distribution') handles "
                          f"{', '.join(kinds) or 'no'} actions, not {env_spec.action.kind}", key=f"{cfg.key}.distribution")
    return cls(env_spec.action)


def make_encoder(env_spec, cfg: NetworkConfig):
    """One encoder module for ``env_spec``'s observations."""
    factory = resolve(cfg.encoder, ENCODERS, "encoder", f"{cfg.key}.encoder")
    enc = factory(env_spec, cfg)
    if not isinstance(getattr(enc, "out_dim", None), int):
        raise ConfigError(f"encoder {cfg.encoder!r} (key '{cfg.key}.encoder') returned a module without an "
                          f"integer out_dim", key=f"{cfg.key}.encoder")
    return enc


def make_networks(env_spec, cfg: NetworkConfig):
    """The network of kind ``cfg.kind`` for ``env_spec``: a :class:`QNet`, a :class:`PolicyValueNet`, or
    with ``cfg.shared_encoder`` a :class:`SharedPolicyValueNet`.

    Layers are created in a fixed order (policy encoder and head, then the
    value tower), so a seed gives the same initial weights as before the
    networks package existed.
    """
    obs_ndim = len(env_spec.obs_shape)
    if cfg.kind == "q":
        if env_spec.action.kind != "discrete":
            raise ConfigError(f"Q-learning needs discrete actions, not {env_spec.action.kind} (key 'env.id')",
                              key="env.id")
        return QNet(make_encoder(env_spec, cfg), env_spec.action.n, obs_ndim, dueling=cfg.dueling)
    if cfg.kind != "policy_value":
        raise ValueError(f"unknown network kind {cfg.kind!r}")
    if cfg.shared_encoder:
        net = SharedPolicyValueNet(make_encoder(env_spec, cfg), make_distribution(env_spec, cfg), obs_ndim)
    else:
        net = PolicyValueNet(lambda: make_encoder(env_spec, cfg), make_distribution(env_spec, cfg), obs_ndim)
    if cfg.init == "orthogonal":
        orthogonal_init(net)
    for m in net.modules():
        if isinstance(m, GaussianHead):
            with torch.no_grad():
                m.log_std.fill_(cfg.log_std_init)
    if cfg.obs_norm:
        if env_spec.obs_kind == "image":
            raise ConfigError(f"key '{cfg.key}.norm_obs' normalises vector observations; frames are scaled by their "
                              f"encoder (set it false)", key=f"{cfg.key}.norm_obs")
        net = ObsNormalized(net, env_spec.obs_shape, cfg.obs_clip)
    return net

