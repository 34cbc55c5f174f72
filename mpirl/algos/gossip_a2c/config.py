"""Configuration of decentralized gossip A2C (`[gossip_a2c]`)."""
from __future__ import annotations

from dataclasses import dataclass

from mpirl.algos.a2c.config import ActorCriticConfig
from mpirl.options import opt


@dataclass
class GossipA2CConfig(ActorCriticConfig):
    """Gossip A2C (`algo = "gossip_a2c"`): every rank learns alone and averages parameters with one peer."""

    SECTION = "gossip_a2c"

    gossip_every: int = opt(1, "Local updates between two pairwise parameter averagings.", min=1)
    stats_every: int = opt(10, "Updates between two global reductions (episode statistics, stop and checkpoint "
                                "decisions, consensus distance): the only global synchronisation.", min=1)
