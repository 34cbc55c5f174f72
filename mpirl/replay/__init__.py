"""Experience replay for off-policy learners: uniform ring buffer and proportional prioritized replay."""
from mpirl.replay.prioritized import PrioritizedReplay
from mpirl.replay.sumtree import SumTree
from mpirl.replay.uniform import ReplayBuffer

__all__ = ["ReplayBuffer", "PrioritizedReplay", "SumTree"]
