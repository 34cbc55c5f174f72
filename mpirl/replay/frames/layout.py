"""How an observation splits into frames, and back: the part of the frame replay that knows about pixels.

An observation of shape ``(H, W, C)`` is ``k`` frames along its last axis:
either ``k = C`` one-channel ``(H, W)`` planes (a frame stack, as
:class:`mpirl.atari.FrameStack` gives: the newest frame last), or ``k = 1``
frame that is the whole observation (MinAtar's object channels, RGB, one
grayscale frame). Consecutive observations of one stream share ``k - 1``
planes when ``obs_t[..., :-1] == obs_{t-1}[..., 1:]``; that test is on the
bytes, so sharing is never assumed, only found.
"""
from __future__ import annotations

import numpy as np


def default_stack(obs_shape, dtype) -> int:
    """Frames per observation the frame replay assumes for ``(H, W, C)`` observations of ``dtype``.

    uint8 with 2 <= C <= 16 channels other than 3: a stack of C grayscale
    frames (Atari's (84, 84, 4)). Anything else (bool MinAtar planes, which
    are object kinds, not frames; 3-channel RGB; one channel; channel-first
    layouts, whose last axis is a width): 1, the whole observation.
    """
    c = int(obs_shape[-1])
    return c if np.dtype(dtype) == np.uint8 and 2 <= c <= 16 and c != 3 else 1


class FrameLayout:
    """The frames of ``(H, W, C)`` observations stacked ``stack`` deep (``stack`` is 1 or C)."""

    def __init__(self, obs_shape: tuple, dtype, stack: int):
        obs_shape = tuple(int(s) for s in obs_shape)
        if len(obs_shape) != 3:
            raise ValueError(f"the frame replay needs (H, W, C) observations, got shape {obs_shape}")
        if np.dtype(dtype) not in (np.uint8, np.bool_):
            raise ValueError(f"the frame replay stores uint8 or bool frames, not {np.dtype(dtype)}")
        c = obs_shape[-1]
        stack = int(stack)
        if stack not in (1, c):
            raise ValueError(f"stack must be 1 (one frame per observation) or the channel count {c}, got {stack}")
        self.obs_shape, self.dtype, self.k = obs_shape, np.dtype(dtype), stack
        self.planes = stack > 1
        self.frame_shape = obs_shape[:-1] if self.planes else obs_shape
        self.frame_nbytes = int(np.prod(self.frame_shape)) * self.dtype.itemsize

    def plane(self, history: np.ndarray, j: int) -> np.ndarray:
        """Frame j of every observation of ``history[R, B, ...]``, as ``[R * B, *frame_shape]`` (a view)."""
        r, b = history.shape[:2]
        return (history[..., j] if self.planes else history).reshape((r * b,) + self.frame_shape)

    def shifted(self, history: np.ndarray) -> np.ndarray:
        """``[R-1, B]``: does observation i+1 of column b hold observation i's last k-1 planes first?

        Compared as flat bytes, where the test is "byte j+1 of obs i equals
        byte j of obs i+1" for every j that is not a last channel: one
        contiguous comparison (20 times faster than the strided one).
        """
        r, b = history.shape[:2]
        if not self.planes or r < 2:
            return np.zeros((max(r - 1, 0), b), bool)
        flat = np.ascontiguousarray(history).view(np.uint8).reshape(r, b, -1)
        eq = np.empty((r - 1, b, flat.shape[2]), bool)
        np.equal(flat[1:, :, :-1], flat[:-1, :, 1:], out=eq[..., :-1])
        eq.reshape(r - 1, b, -1, self.k)[..., -1] = True  # the new frame's channel: no condition
        return eq.all(-1)

    def observations(self, frames: np.ndarray) -> np.ndarray:
        """``[S, k, *frame_shape]`` gathered frames as ``[S, *obs_shape]`` observations.

        For stacks this is a transposed view (channel-last over frame-major
        memory): bitwise the observations, without a copy; the CNN encoders
        permute to channel-first anyway.
        """
        return np.moveaxis(frames, 1, -1) if self.planes else frames[:, 0]
