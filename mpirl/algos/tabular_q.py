"""Tabular distributed Q-learning: every rank learns, one Allreduce combines the tables.

Every rank (rank 0 included) runs ``env.num_envs`` environment copies with its
own seed and epsilon-greedy Q-learning on a local table. Every ``sync_every``
local steps one Allreduce of a single flat buffer combines, across ranks, the
table changes since the last sync, the visit counts, and the episode
statistics, so all ranks hold identical tables after each sync and take the
same stop and checkpoint decisions.

Combination (``combine``): ``"sum"`` (default) adds every rank's change since
the last sync, ``Q <- Q_sync + sum_r (Q_r - Q_sync)``: to first order this is
serial Q-learning on the pooled experience of all ranks, so N ranks need about
N times fewer steps each. Summing can overshoot when several ranks update the
same entry with large steps, so the step size of an entry seen ``n`` times by
all ranks, ``max(alpha_min, alpha * (1 + n)^-alpha_exponent)``, is capped at
``1 / ranks``. ``"mean"`` averages the changes (federated averaging): always
stable, but it uses the extra ranks only to reduce noise. ``"pooled"``
weighs the changes by how far each rank's own steps moved an entry
(:func:`pooled_combine`): no step cap, no overshoot, and exactly serial
Q-learning at one rank.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from mpirl.options import opt
from mpirl.envs import make_env
from mpirl.errors import ConfigError

MIN_RANKS = 1
_CTRL = 6  # steps, episodes, return sum, return count, checkpoint vote, stop vote


@dataclass
class Config:
    """Tabular Q-learning (`algo = "tabular_q"`): Discrete observations and actions."""

    gamma: float = opt(0.99, "Discount factor.", min=0.0, max=1.0)
    alpha: float = opt(1.0, "Initial step size; decays with the entry's visit count (all ranks).", min=0.0, max=1.0)
    alpha_exponent: float = opt(0.6, "Step-size decay exponent w in alpha * (1 + n)^-w; 0 keeps alpha constant.",
                                min=0.0, max=2.0)
    alpha_min: float = opt(0.01, "Floor of the step size; a floor > 0 keeps Q noisy enough to flip near-tied "
                                 "actions on stochastic environments (the FrozenLake jobs use 0-0.002).",
                           min=0.0, max=1.0)
    epsilon_start: float = opt(1.0, "Exploration rate at the first step.", min=0.0, max=1.0)
    epsilon_end: float = opt(0.1, "Exploration rate after the decay.", min=0.0, max=1.0)
    epsilon_decay_steps: int = opt(20_000, "Env steps per rank over which epsilon decays linearly.", min=1)
    sync_every: int = opt(100, "Env steps per rank (per env copy) between two Allreduce syncs. With "
                               "combine = 'sum', an entry updated many times per rank between syncs can "
                               "overshoot (CliffWalking needs <= 10-20 at 4 ranks); 'pooled' cannot.", min=1)
    combine: str = opt("sum", "How tables are combined at a sync: 'sum' of changes (step size capped at "
                              "1/ranks), 'mean' of changes, or 'pooled' (changes weighed by each rank's own "
                              "steps; no cap, cannot overshoot, for long sync windows and many ranks).",
                       choices=["sum", "mean", "pooled"])


def pooled_combine(q_sync: np.ndarray, delta_sum: np.ndarray, log_keep_sum: np.ndarray,
                   moved_sum: np.ndarray) -> np.ndarray:
    """The table after a sync with ``combine = "pooled"``, from sums over ranks r of per-entry values.

    Between two syncs rank r updates an entry k times with steps a_1..a_k:
    Q_r - Q_sync = sum_i a_i prod_{j>i} (1 - a_j) (T_i - Q_sync), a weighted
    sum of its targets T_i whose weights add up to f_r = 1 - prod_i (1 - a_i)
    (``moved``). So (Q_r - Q_sync) / f_r is rank r's weighted mean target
    offset, and pooling all ranks' updates as one serial sequence moves the
    entry by F = 1 - prod_r prod_i (1 - a_i) = 1 - exp(sum_r L_r) towards the
    pooled mean, with L_r = sum_i log(1 - a_i) (``log_keep``):

        Q = Q_sync + F * sum_r (Q_r - Q_sync) / sum_r f_r.

    F <= 1 and the mean is a convex combination of targets, so no entry
    passes the targets (no overshoot, no step cap); at one rank F = f_1 and
    the result is serial Q-learning, the same as with "sum". Entries no rank updated
    keep Q_sync. Arguments: ``delta_sum`` = sum_r (Q_r - Q_sync),
    ``log_keep_sum`` = sum_r L_r (-inf where a step of 1 was taken),
    ``moved_sum`` = sum_r f_r.
    """
    if not (q_sync.shape == delta_sum.shape == log_keep_sum.shape == moved_sum.shape):
        raise ValueError(f"shapes differ: {q_sync.shape}, {delta_sum.shape}, {log_keep_sum.shape}, "
                         f"{moved_sum.shape}")
    moved_all = -np.expm1(log_keep_sum)  # F
    ratio = np.divide(moved_all, moved_sum, out=np.zeros_like(moved_sum), where=moved_sum > 0)
    return q_sync + delta_sum * ratio


def check_env(cfg, env) -> None:
    """Reject environments without Discrete observation and action spaces."""
    from gymnasium import spaces

    for what, space in (("observation", env.observation_space), ("action", env.action_space)):
        if not isinstance(space, spaces.Discrete):
            raise ConfigError(f"algo 'tabular_q' needs a Discrete {what} space; "
                              f"env {cfg.env.id!r} has {space} (key 'env.id')")


def state_shapes(cfg, env) -> dict:
    """Shapes of the arrays a checkpoint of this job must hold."""
    shape = (int(env.observation_space.n), int(env.action_space.n))
    return {"q": shape, "visits": shape}


def greedy_policy(state: dict, cfg):
    """The greedy policy of a checkpoint's Q-table."""
    q = np.asarray(state["q"])
    return lambda obs: int(np.argmax(q[int(obs)]))


def epsilon(a: Config, rank_steps: int) -> float:
    """Linearly decayed exploration rate after ``rank_steps`` steps of this rank."""
    frac = min(1.0, rank_steps / a.epsilon_decay_steps)
    return a.epsilon_start + frac * (a.epsilon_end - a.epsilon_start)


def train(ctx) -> dict:
    """Run the job on this rank; returns the final state (identical on every rank)."""
    a, cfg, world, rng = ctx.agent, ctx.cfg, ctx.world, ctx.rng
    from mpirl.seeding import env_seeds

    envs = [make_env(cfg.env) for _ in range(cfg.env.num_envs)]
    n_s, n_a = int(envs[0].observation_space.n), int(envs[0].action_space.n)
    q = np.zeros((n_s, n_a))
    visits = np.zeros((n_s, n_a))
    counters = {"env_steps": 0, "updates": 0, "episodes": 0}
    extra = ctx.restored_extra
    if ctx.restored_state:
        q[...] = ctx.restored_state["q"]
        visits[...] = ctx.restored_state["visits"]
        counters.update({k: int(ctx.restored_counters[k]) for k in counters})
    rank_steps = int(extra.get("rank_steps", 0))
    window = deque(extra.get("returns", []), maxlen=max(1, math.ceil(100 / world.size)))

    obs = []
    for i, (env, seed) in enumerate(zip(envs, env_seeds(cfg.seed, ctx.rank, len(envs)))):
        if "env_rng" in extra:
            # Resume: episodes in flight restart, but each env's random stream continues.
            o, _ = env.reset()
            env.unwrapped.np_random.bit_generator.state = extra["env_rng"][i]
        else:
            o, _ = env.reset(seed=seed)
        obs.append(int(o))
    ep_ret = [0.0] * len(envs)

    q_sync = q.copy()
    local_n = np.zeros_like(visits)
    pooled = a.combine == "pooled"
    log_keep = np.zeros_like(q)  # pooled: sum of log(1 - step) per entry since the sync
    tables = 4 if pooled else 2  # table change, visits (+ log_keep and moved for pooled)
    buf = np.zeros(tables * q.size + _CTRL)
    cap = 1.0 / world.size if a.combine == "sum" else 1.0
    gamma = a.gamma
    target_steps = cfg.total_env_steps
    threshold = cfg.stop.episode_return_mean
    ret_mean = float("nan")

    while True:
        steps = episodes = 0
        for _ in range(a.sync_every):
            eps = epsilon(a, rank_steps)
            rank_steps += 1
            for i, env in enumerate(envs):
                s = obs[i]
                if rng.random() < eps:
                    act = int(rng.integers(n_a))
                else:
                    row = q[s]
                    best = np.flatnonzero(row == row.max())
                    act = int(best[0] if len(best) == 1 else best[rng.integers(len(best))])
                s2, r, term, trunc, _ = env.step(act)
                ctx.mark_first_step()
                s2 = int(s2)
                target = r if term else r + gamma * q[s2].max()
                n = visits[s, act] + local_n[s, act]
                step = min(cap, max(a.alpha_min, a.alpha * (1.0 + n) ** -a.alpha_exponent))
                q[s, act] += step * (target - q[s, act])
                local_n[s, act] += 1
                if pooled:
                    log_keep[s, act] = -math.inf if step >= 1.0 else log_keep[s, act] + math.log1p(-step)
                ep_ret[i] += r
                steps += 1
                if term or trunc:
                    window.append(ep_ret[i])
                    episodes += 1
                    ep_ret[i] = 0.0
                    s2, _ = env.reset()
                    s2 = int(s2)
                obs[i] = s2
            if counters["env_steps"] + steps * world.size >= target_steps:
                break  # every rank breaks at the same local step: the condition uses only agreed numbers

        # One Allreduce: table changes, visit counts and control values.
        part = buf[:tables * q.size].reshape(tables, *q.shape)
        part[0], part[1] = q - q_sync, local_n
        if pooled:
            part[2], part[3] = log_keep, -np.expm1(log_keep)
        buf[tables * q.size:] = (steps, episodes, sum(window), len(window), float(ctx.checkpoint_due()),
                                 float(ctx.stop_requested()))
        world.allreduce(buf)
        if pooled:
            q[...] = pooled_combine(q_sync, part[0], part[2], part[3])
            log_keep[...] = 0.0
        else:
            q[...] = q_sync + (part[0] if a.combine == "sum" else part[0] / world.size)
        q_sync[...] = q
        visits += part[1]
        local_n[...] = 0
        g_steps, g_eps, ret_sum, ret_cnt, ckpt_vote, stop_vote = buf[tables * q.size:]
        counters["env_steps"] += int(g_steps)
        counters["episodes"] += int(g_eps)
        counters["updates"] += 1
        ret_mean = ret_sum / ret_cnt if ret_cnt else float("nan")

        done = counters["env_steps"] >= target_steps or (
            threshold is not None and counters["episodes"] >= 100 and ret_mean >= threshold) or stop_vote > 0
        ctx.log(dict(counters, episode_return_mean=ret_mean, epsilon=epsilon(a, rank_steps)), force=done)
        if ckpt_vote or done:
            extra_now = {"rank_steps": rank_steps, "returns": list(window),
                         "env_rng": [e.unwrapped.np_random.bit_generator.state for e in envs]}
            ctx.save_checkpoint({"q": q, "visits": visits}, counters, extra_now)
        if done:
            break
    for env in envs:
        env.close()
    return {"q": q, "visits": visits}
