"""Synchronous distributed DQN wired to the MPI world.

Every round: each actor collects ``rollout_steps`` steps in its vector envs
with the current weights; one Gather brings the fixed-shape transition
buffers to rank 0; rank 0 inserts them into a uniform replay (the frame
replay for pixel observations, :mod:`mpirl.replay.frames`), performs
``updates_per_round`` updates and broadcasts the new weights together with the
round's decisions (stop, checkpoint) in one Bcast. Given the seed and rank
count, runs are deterministic.
"""
from __future__ import annotations

import numpy as np

from mpirl.algos._loop import ReturnWindow, absorb, should_stop
from mpirl.algos._rank_setup import rank_envs, restored_counters, seed_torch
from mpirl.algos._schedules import linear_epsilon
from mpirl.algos.dqn.config import network_config
from mpirl.algos.dqn.learner import DQNLearner
from mpirl.algos.dqn.messages import fill_trajectory, make_replay, trajectory_spec, transitions
from mpirl.comm.buffers import MessageSpec
from mpirl.networks import make_networks
from mpirl.params import flat_parameters
from mpirl.rollout import NStepActor
from mpirl.seeding import capture_env_rng, restore_env_rng

_CTRL = ("done", "checkpoint", "env_steps", "updates", "episodes")


def epsilon(a, env_steps: int) -> float:
    """Linearly decayed exploration rate after ``env_steps`` steps of all actors."""
    return linear_epsilon(a.epsilon_start, a.epsilon_end, a.epsilon_decay_steps, env_steps)


def train(ctx) -> dict:
    """Run synchronous distributed DQN on this rank; returns the learner's state on rank 0."""
    a, cfg, world = ctx.agent, ctx.cfg, ctx.world
    seed_torch(ctx)
    counters = restored_counters(ctx)
    envs, spec = rank_envs(ctx)
    slots = a.rollout_steps * cfg.env.num_envs
    traj = trajectory_spec(slots, spec, history=(a.rollout_steps + a.n_step, cfg.env.num_envs)).allocate()
    net = make_networks(spec, network_config(a))

    if world.is_learner:
        learner = DQNLearner(a, net, make_replay(a.replay_capacity, spec), ctx.rng,
                             cfg.fault.max_nonfinite, device=ctx.learner_device)
        if ctx.restored_state:
            learner.load_state_dict(ctx.restored_state)
        # The update count drives the target-copy schedule and the logged/checkpointed counter:
        # continue it (a resumed run without a saved replay makes no update until learning_starts).
        learner.updates = counters["updates"]
        net, flat = learner.online, learner.flat
        recv = np.empty((world.size, traj.spec.nbytes), np.uint8)
        envs.close()
    else:
        flat = flat_parameters(net)
        restore_env_rng(envs, ctx.restored_extra.get("env_rng"))  # before the actor's first reset
        actor = NStepActor(envs, net, a.rollout_steps, a.n_step, a.gamma, ctx.rng)
        recv = None
    weights = MessageSpec({"params": (flat.shape, np.float32), "ctrl": ((len(_CTRL),), np.float64)}).allocate()
    window = ReturnWindow(ctx.restored_extra.get("returns", []))

    def publish():
        weights["params"] = learner.flat if world.is_learner else flat  # the learner's: fresh from its device
        world.bcast(weights.buffer)
        flat[...] = weights["params"]
        return dict(zip(_CTRL, weights["ctrl"]))

    publish()
    metrics = {}
    while True:
        if not world.is_learner:
            out = actor.collect(epsilon(a, counters["env_steps"]))
            ctx.mark_first_step()
            fill_trajectory(traj, out)
        world.gather(traj.buffer, recv)
        if world.is_learner:
            for r in world.actor_ranks:
                m = traj.spec.view(recv[r])
                learner.replay.add(transitions(m, source=r))
                absorb(counters, window, m)
            if len(learner.replay) >= max(a.learning_starts, a.batch_size):
                for _ in range(a.updates_per_round):
                    metrics = learner.update()
            counters["updates"] = learner.updates
            done = should_stop(ctx, counters, len(window), window.mean, lambda: learner.state_dict(with_replay=False),
                               collective=False, stop_vote=ctx.stop_requested())
            weights["ctrl"] = (done, ctx.checkpoint_due(), counters["env_steps"], counters["updates"],
                               counters["episodes"])
            ctx.log(dict(counters, episode_return_mean=window.mean, epsilon=epsilon(a, counters["env_steps"]),
                         replay_size=len(learner.replay), **metrics), force=done)
        ctrl = publish()
        counters.update({k: int(ctrl[k]) for k in ("env_steps", "updates", "episodes")})
        if ctrl["checkpoint"] or ctrl["done"]:
            state = learner.state_dict(cfg.checkpoint.replay) if world.is_learner else {}
            env_rng = [] if world.is_learner else capture_env_rng(envs)
            ctx.save_checkpoint(state, counters, {"returns": window.state(), "env_rng": env_rng})
        if ctrl["done"]:
            break
    if not world.is_learner:
        envs.close()
        return {}
    return learner.state_dict(with_replay=False)
