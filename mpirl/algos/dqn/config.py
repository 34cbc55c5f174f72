"""Configuration of distributed DQN (`[dqn]`); Ape-X extends it (`[apex]`)."""
from __future__ import annotations

from dataclasses import dataclass

from mpirl.options import encoder_opt, opt


@dataclass
class QConfig:
    """Keys shared by the DQN family: network, n-step double-Q loss, replay, actors."""

    SECTION = "agent"  # the job-file section, named in errors (each algorithm's own)

    hidden: list = opt([128, 128], "Hidden layer sizes of the Q-network MLP.")
    dueling: bool = opt(False, "Dueling head: Q = V + A - mean(A) (Wang et al. 2016).")
    encoder: str = encoder_opt("ReLU", "")
    gamma: float = opt(0.99, "Discount factor.", min=0.0, max=1.0)
    n_step: int = opt(3, "Steps of the n-step return.", min=1, max=100)
    lr: float = opt(1e-3, "Learning rate.", min=0.0)
    optimizer: str = opt("adam", "Optimizer of the online network.", choices=["adam", "rmsprop"])
    batch_size: int = opt(128, "Transitions per gradient update.", min=1)
    replay_capacity: int = opt(100_000, "Transitions the replay memory holds (oldest evicted first).", min=1)
    learning_starts: int = opt(1_000, "Transitions in replay before the first update.", min=0)
    target_update_period: int = opt(250, "Updates between copies of the online network into the target.", min=1)
    max_grad_norm: float = opt(10.0, "Gradient-norm clipping threshold (0 disables).", min=0.0)
    huber_delta: float = opt(1.0, "Huber loss threshold.", min=0.0)
    rollout_steps: int = opt(16, "Steps per environment copy an actor collects per round (dqn) or per message (apex).",
                             min=1)
    torch_threads: int = opt(1, "torch intra-op threads per rank (1: ranks share the cores).", min=1)

    def __post_init__(self):
        from mpirl.errors import ConfigError

        if not self.hidden or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in self.hidden):
            raise ConfigError(f"key 'hidden' must be a non-empty list of positive integers, got {self.hidden!r}")


@dataclass
class DQNConfig(QConfig):
    """Synchronous distributed DQN (`algo = "dqn"`): n-step double DQN, rank 0 learns, the others act."""

    SECTION = "dqn"

    updates_per_round: int = opt(8, "Learner updates per round.", min=0)
    epsilon_start: float = opt(1.0, "Exploration rate at the start.", min=0.0, max=1.0)
    epsilon_end: float = opt(0.02, "Exploration rate after the decay.", min=0.0, max=1.0)
    epsilon_decay_steps: int = opt(20_000, "Env steps (all actors) over which epsilon decays linearly.", min=1)


def network_config(a: QConfig):
    """The Q-network the section describes (:func:`mpirl.networks.make_networks`)."""
    from mpirl.networks import NetworkConfig

    return NetworkConfig("q", tuple(a.hidden), "relu", dueling=a.dueling, encoder=a.encoder, key=a.SECTION)
