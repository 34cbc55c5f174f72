"""``opt``: a documented, bounded dataclass field; a leaf module, so algorithm configs import it without
importing :mod:`mpirl.config` (which imports the algorithm registry)."""
from __future__ import annotations

from dataclasses import field


def opt(default, help, **bounds):
    """A config field with its documentation and validation bounds."""
    meta = {"help": help, **bounds}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def encoder_opt(activation: str, where: str = ""):
    """The ``encoder`` key of a torch algorithm's section (``where``: e.g. " in each tower")."""
    return opt("auto", f"Encoder of the observations{where}: `auto` picks from the observation spec (`mlp` for "
                       "vectors, `minatar_cnn` for frames smaller than 32x32, `nature_cnn` for larger ones); "
                       f"`mlp` ({activation} layers of `hidden` sizes); for (H, W, C) frames `minatar_cnn`, "
                       "`nature_cnn` or `impala_resnet` (a dense layer of hidden[-1] units after the "
                       "convolutions); or a user factory `package.module:function` (docs/architecture.md).")


def distribution_opt():
    """The ``distribution`` key of a policy-gradient algorithm's section."""
    return opt("auto", "Action distribution of the policy: `auto` (`categorical` for discrete actions, `gaussian` "
                       "for Box ones), `categorical`, `gaussian` (diagonal, state-independent log std; actions "
                       "clipped to the Box at the environment only), `tanh_gaussian` (squashed into the Box), or a "
                       "user class `package.module:Class` (docs/architecture.md).")


def shared_encoder_opt():
    """The ``shared_encoder`` key of a policy-value algorithm's section."""
    return opt(False, "One encoder under both the policy and the value head (the IMPALA and Atari-PPO networks) "
                      "instead of a separate tower each: on frames it halves the learner's cost per sample; "
                      "the value loss then trains the policy's features too.")
