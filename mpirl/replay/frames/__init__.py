"""Frame-deduplicating replay for pixel observations: each frame stored once, stacks rebuilt when sampled."""
from mpirl.replay.frames.layout import FrameLayout, default_stack
from mpirl.replay.frames.prioritized import PrioritizedFrameReplay
from mpirl.replay.frames.uniform import FrameReplay

__all__ = ["FrameReplay", "PrioritizedFrameReplay", "FrameLayout", "default_stack"]
