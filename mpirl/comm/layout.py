"""Which ranks learn and which act: the one place that knows the rank layout.

Today one learner (rank 0) serves every actor; the multi-learner work widens
``num_learners`` and everything that asks the layout (``learner_of``,
``actor_index``) follows. Algorithms never write ``rank == 0`` or
``range(1, size)``.
"""
from __future__ import annotations


class Layout:
    """``num_learners`` learner ranks first (0..L-1), then the actor ranks, each served by one learner."""

    def __init__(self, size: int, num_learners: int = 1):
        if not 1 <= num_learners <= size:
            raise ValueError(f"a layout of {size} ranks cannot have {num_learners} learners")
        self.size, self.num_learners = size, num_learners

    @property
    def learner_ranks(self) -> list:
        """The ranks that learn."""
        return list(range(self.num_learners))

    @property
    def actor_ranks(self) -> list:
        """The ranks that act."""
        return list(range(self.num_learners, self.size))

    def is_learner(self, rank: int) -> bool:
        """Whether ``rank`` learns."""
        return rank < self.num_learners

    def actor_index(self, rank: int) -> int:
        """The position of actor ``rank`` among the actors (0-based), e.g. for Ape-X's epsilon ladder."""
        if self.is_learner(rank):
            raise ValueError(f"rank {rank} is a learner, not an actor")
        return rank - self.num_learners

    def learner_of(self, rank: int) -> int:
        """The learner that actor ``rank`` sends to (round-robin over the learners)."""
        return self.actor_index(rank) % self.num_learners

    def actors_of(self, learner: int) -> list:
        """The actors a learner serves."""
        return [r for r in self.actor_ranks if self.learner_of(r) == learner]
