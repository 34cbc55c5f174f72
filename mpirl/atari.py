"""The standard Atari preprocessing (Mnih et al. 2015; Machado et al. 2018), selected by ``env.wrappers = "atari"``.

Per copy: ``ALE/<Game>-v5`` made with frame skip 1 and the sticky-action
probability of ``[env.atari]``; then gymnasium's ``AtariPreprocessing`` (up to
30 no-op actions at reset, the action repeated 4 frames with the max of the
last two, 84x84 grayscale, optionally an episode end at each lost life), FIRE
at reset for games that wait for it, and :class:`FrameStack`: the last 4
frames stacked on the last axis, ``(84, 84, 4)`` uint8, channel-last as the
CNN encoders take them. Reward clipping is not a wrapper: ``env.reward_clip``
clips the rewards the learner sees, so returns in metrics stay the game's.
The settings are :class:`mpirl.config.AtariConfig`.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import AtariPreprocessing


def base_env_kwargs(cfg) -> dict:
    """``gymnasium.make`` arguments of the raw ALE copy (the wrappers do the frame skip)."""
    return {"frameskip": 1, "repeat_action_probability": float(cfg.sticky_actions),
            "full_action_space": bool(cfg.full_action_space)}


def atari_wrappers(env, cfg, evaluation: bool = False):
    """``env`` (an ALE env of frame skip 1) with the preprocessing of ``cfg``; ``evaluation`` plays whole games."""
    env = AtariPreprocessing(env, noop_max=cfg.noop_max, frame_skip=cfg.frame_skip, screen_size=cfg.screen_size,
                             terminal_on_life_loss=cfg.terminal_on_life_loss and not evaluation,
                             grayscale_obs=True, scale_obs=False)
    if cfg.fire_reset and _has_fire(env):
        env = FireReset(env)
    return FrameStack(env, cfg.frame_stack)


def _has_fire(env) -> bool:
    meanings = env.unwrapped.get_action_meanings()
    return len(meanings) > 1 and meanings[1] == "FIRE"


class FrameStack(gym.ObservationWrapper):
    """The last ``k`` (H, W) frames as one ``(H, W, k)`` uint8 observation; the reset frame fills the stack.

    Channel-last (gymnasium's FrameStackObservation stacks on a new first
    axis), so encoders and the frame replay see the stack on the last axis.
    """

    def __init__(self, env, k: int):
        super().__init__(env)
        h, w = env.observation_space.shape[:2]
        self.k = int(k)
        self.frames = np.zeros((h, w, self.k), np.uint8)
        self.observation_space = spaces.Box(0, 255, (h, w, self.k), np.uint8)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.frames[...] = np.asarray(obs)[..., None]
        return self.frames.copy(), info

    def observation(self, obs):
        self.frames[..., :-1] = self.frames[..., 1:]
        self.frames[..., -1] = obs
        return self.frames.copy()


class FireReset(gym.Wrapper):
    """Presses FIRE (action 1) after each reset: Breakout and others do not start without it."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        obs, _, terminated, truncated, info = self.env.step(1)
        if terminated or truncated:  # ended on its first frame: start again
            obs, info = self.env.reset(**kwargs)
        return obs, info
