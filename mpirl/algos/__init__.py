"""The algorithm registry: ``algo = "<name>"`` in a job file maps to a module here.

Each algorithm module defines ``Config`` (its documented dataclass, the
``[<name>]`` section), ``MIN_RANKS``, ``check_env(env)``, ``train(ctx)`` and
``greedy_policy(state, cfg)``. Modules are imported lazily so that start-up
only pays for the algorithm in use.
"""
import importlib

_ALGOS = {
    "tabular_q": "mpirl.algos.tabular_q",
    "dqn": "mpirl.algos.dqn",
    "apex": "mpirl.algos.apex",
    "impala": "mpirl.algos.impala",
    "a2c": "mpirl.algos.a2c",
    "a3c": "mpirl.algos.a3c",
    "gossip_a2c": "mpirl.algos.gossip_a2c",
    "ppo": "mpirl.algos.ppo",
}


def algo_names() -> list:
    """The names valid for the ``algo`` key."""
    return sorted(_ALGOS)


def get_algo(name: str):
    """Import and return the module implementing ``name``."""
    return importlib.import_module(_ALGOS[name])
