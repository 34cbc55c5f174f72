"""Configuration of Ape-X DQN (`[apex]`)."""
from __future__ import annotations

from dataclasses import dataclass

from mpirl.algos.dqn.config import QConfig
from mpirl.options import opt


@dataclass
class ApexConfig(QConfig):
    """Ape-X DQN (`algo = "apex"`, Horgan et al. 2018): asynchronous actors, prioritized replay on rank 0."""

    SECTION = "apex"

    epsilon_base: float = opt(0.4, "Actor i of N explores with epsilon_base^(1 + epsilon_alpha * i / (N - 1)).",
                              min=0.0, max=1.0)
    epsilon_alpha: float = opt(7.0, "Exponent spread of the actors' fixed exploration rates.", min=0.0)
    epsilon_warmup_steps: int = opt(0, "Env steps per actor over which its epsilon falls linearly from 1 to its fixed "
                                       "Ape-X value (0: the fixed value from the start, as in the paper). A few "
                                       "thousand random steps give the learner both actions to compare when actors "
                                       "are few.", min=0)
    priority_alpha: float = opt(0.6, "Prioritization exponent: P(i) ~ p_i^alpha.", min=0.0, max=1.0)
    beta_start: float = opt(0.4, "Importance-sampling exponent at the first update, annealed to 1.", min=0.0, max=1.0)
    beta_anneal_updates: int = opt(20_000, "Updates over which beta anneals linearly to 1.", min=1)
    samples_per_insert: float = opt(4.0, "Rate limiter: learner samples (batch_size per update) per inserted "
                                         "transition.", min=0.0)
    rate_error_buffer: float = opt(20_000.0, "Rate limiter slack, in samples, either way of samples_per_insert.",
                                   min=1.0)
    weights_publish_period: int = opt(10, "Learner updates between two weight publications to the actors.", min=1)
    send_slots: int = opt(4, "Preallocated send buffers per actor (messages in flight before an actor waits).",
                          min=1)

    def __post_init__(self):
        super().__post_init__()
        from mpirl.errors import ConfigError

        if self.rate_error_buffer < self.batch_size / 2:
            # Below that, a state exists where the limiter allows neither a batch nor an insert.
            raise ConfigError(f"key 'apex.rate_error_buffer' ({self.rate_error_buffer:g}) must be at least "
                              f"batch_size / 2 ({self.batch_size / 2:g}): with less slack, neither sampling a batch "
                              f"nor inserting keeps the learner within it")
