"""Experience replay for off-policy learners: uniform ring buffer and proportional prioritized replay.

For pixel observations, :mod:`mpirl.replay.frames` stores each frame once
(:class:`FrameReplay`, :class:`PrioritizedFrameReplay`).
"""
from mpirl.replay.prioritized import PrioritizedReplay
from mpirl.replay.sumtree import SumTree
from mpirl.replay.uniform import ReplayBuffer
from mpirl.replay.frames import FrameReplay, PrioritizedFrameReplay  # last: it builds on the three above

__all__ = ["ReplayBuffer", "PrioritizedReplay", "SumTree", "FrameReplay", "PrioritizedFrameReplay"]
