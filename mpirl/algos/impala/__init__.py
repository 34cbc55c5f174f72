"""IMPALA with V-trace (`algo = "impala"`): see run.py for the message flow."""
from __future__ import annotations

from mpirl.algos._mlp_contract import argmax_policy, check_box_discrete, dims
from mpirl.algos.impala.config import ImpalaConfig as Config
from mpirl.errors import ConfigError

__all__ = ["Config", "MIN_RANKS", "check_env", "greedy_policy", "state_shapes", "train"]

MIN_RANKS = 2
#: Honours stop.greedy_episodes (RunContext.stop_confirmed).
GREEDY_STOP = True


def check_env(cfg, env) -> None:
    """An MLP policy over a categorical distribution needs a Box observation space and Discrete actions.

    ``learner.device = "cuda"`` also needs a CUDA device on rank 0.
    """
    check_box_discrete(cfg, env)
    if cfg.agent.learner.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("key 'impala.learner.device' is 'cuda' but torch sees no CUDA device "
                              f"(torch {torch.__version__})")


def state_shapes(cfg, env) -> dict:
    """Shapes of the network's tensors, which a resumed checkpoint must match."""
    from mpirl.algos.impala.learner import make_network

    net = make_network(cfg.agent, *dims(env))
    return {f"net/{k}": tuple(v.shape) for k, v in net.state_dict().items()}


def greedy_policy(state: dict, cfg):
    """The most probable action of a checkpoint's policy network."""
    from mpirl.algos.impala.learner import make_network

    return argmax_policy(state, cfg, make_network, "net", head=lambda net: net.actor)


def train(ctx):
    """Run the job on this rank (see run.py)."""
    from mpirl.algos.impala.run import train as run

    return run(ctx)
