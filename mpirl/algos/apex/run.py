"""Ape-X DQN wired to the MPI world (Horgan et al. 2018).

Actors (ranks 1..N-1) act with fixed exploration rates, compute initial
priorities with their own network copy and send batches to rank 0 with
nonblocking sends from a pool of preallocated buffers; they pick up the newest
published weights without blocking. Rank 0 polls for batches between
updates, keeps a prioritized replay (over frames for pixel observations,
:mod:`mpirl.replay.frames`), and publishes weights every
``weights_publish_period`` updates. A rate limiter (as in Reverb) holds the
learner's samples per inserted transition near ``samples_per_insert``: when the
learner is ahead it waits for data, when it is behind it stops taking data,
and the actors' full send pools throttle them.

Shutdown: rank 0 stops publishing and completes its weight sends, sends the
shutdown message, keeps receiving (and dropping) data until every actor has
flushed its sends and said goodbye, then cancels its posted receives.
"""
from __future__ import annotations

import numpy as np

from mpirl.algos._loop import ReturnWindow, WeightPublisher, absorb, act_asynchronously, should_stop
from mpirl.algos._rank_setup import rank_envs, restored_counters, seed_torch
from mpirl.algos._schedules import apex_epsilon, linear_beta, warmup_epsilon
from mpirl.algos.dqn.config import network_config
from mpirl.algos.dqn.learner import DQNLearner
from mpirl.algos.dqn.messages import fill_trajectory, make_replay, trajectory_spec, transitions
from mpirl.comm.buffers import MessageSpec
from mpirl.comm.control import ActorControl, StateReports
from mpirl.comm.p2p import Receiver, Sender
from mpirl.comm.tags import TAGS
from mpirl.networks import make_networks
from mpirl.params import flat_parameters
from mpirl.rollout import NStepActor
from mpirl.seeding import capture_env_rng, rank_rng_doc, restore_env_rng

# TAG_CTRL: rank 0's report requests and stop; TAG_BYE: the actors' reports and goodbyes (mpirl.comm.control).
TAG_DATA, TAG_WEIGHTS, TAG_BYE, TAG_CTRL = (TAGS[f"apex.{k}"] for k in ("data", "weights", "bye", "ctrl"))


def actor_epsilon(a, i: int, n: int) -> float:
    """Ape-X's fixed exploration rate of actor ``i`` of ``n``."""
    return apex_epsilon(a.epsilon_base, a.epsilon_alpha, i, n)


class RateLimiter:
    """Keeps ``sampled`` near ``samples_per_insert * inserted`` once ``min_size`` transitions arrived."""

    def __init__(self, samples_per_insert: float, error_buffer: float, min_size: int):
        self.spi, self.error, self.min_size = samples_per_insert, error_buffer, min_size
        self.inserted = 0
        self.sampled = 0

    def _excess(self) -> float:
        return self.sampled - self.spi * max(0, self.inserted - self.min_size)

    def can_sample(self, n: int) -> bool:
        """True if sampling ``n`` more keeps the learner within the slack ahead."""
        return self.inserted >= self.min_size and self._excess() + n <= self.error

    def can_insert(self) -> bool:
        """False while the learner lags more than the slack behind."""
        return self.inserted < self.min_size or -self._excess() <= self.error


def train(ctx) -> dict:
    """Run Ape-X on this rank; returns the learner's state on rank 0."""
    a, cfg, world = ctx.agent, ctx.cfg, ctx.world
    seed_torch(ctx)
    probe, spec = rank_envs(ctx)
    traj_spec = trajectory_spec(a.rollout_steps * cfg.env.num_envs, spec,
                                history=(a.rollout_steps + a.n_step, cfg.env.num_envs))
    net = make_networks(spec, network_config(a))
    if world.is_learner:
        probe.close()
        replay = make_replay(a.replay_capacity, spec, prioritized=True, alpha=a.priority_alpha)
        learner = DQNLearner(a, net, replay, ctx.rng, cfg.fault.max_nonfinite, device=ctx.learner_device)
        weights_spec = MessageSpec({"params": (learner.flat.shape, np.float32), "version": ((), np.int64)})
        return _learn(ctx, learner, traj_spec, weights_spec)
    flat = flat_parameters(net)
    weights_spec = MessageSpec({"params": (flat.shape, np.float32), "version": ((), np.int64)})
    restore_env_rng(probe, ctx.restored_extra.get("env_rng"))  # before the actor's first reset
    actor = NStepActor(probe, net, a.rollout_steps, a.n_step, a.gamma, ctx.rng)
    _act(ctx, actor, flat, traj_spec, weights_spec)
    probe.close()
    return {}


def _act(ctx, actor, flat, traj_spec, weights_spec) -> None:
    a, world = ctx.agent, ctx.world
    eps = actor_epsilon(a, world.layout.actor_index(world.rank), world.num_actors)
    # A resumed run has finished its warm-up: this actor's own count from its checkpointed state, or
    # (a checkpoint without it) the share of the steps it took.
    own = {"steps": int(ctx.restored_extra.get("own_steps", restored_counters(ctx)["env_steps"] // world.num_actors))}
    # What this actor reports for a checkpoint: its generator (acting), environment RNGs, warm-up position.
    ctl = ActorControl(world, lambda: rank_rng_doc(ctx.rng, {"env_rng": capture_env_rng(actor.envs),
                                                             "own_steps": own["steps"]}), TAG_BYE, TAG_CTRL)
    tx = Sender(world, traj_spec, TAG_DATA, slots=a.send_slots, synchronous=True)
    weights = Receiver(world, weights_spec, TAG_WEIGHTS, [world.learner])

    def produce(version):
        out = actor.collect(warmup_epsilon(eps, own["steps"], a.epsilon_warmup_steps))
        own["steps"] += out["steps"]
        return out

    def fill(msg, out, version):
        fill_trajectory(msg, out)
        msg["priority"] = actor.priorities(out)

    act_asynchronously(ctx, flat, weights, tx, ctl, produce, fill)


def _learn(ctx, learner, traj_spec, weights_spec) -> dict:
    a, cfg, world = ctx.agent, ctx.cfg, ctx.world
    counters = restored_counters(ctx)
    if ctx.restored_state:
        learner.load_state_dict(ctx.restored_state)
        learner.updates = counters["updates"]
    window = ReturnWindow(ctx.restored_extra.get("returns", []))
    rx = Receiver(world, traj_spec, TAG_DATA, world.actor_ranks)
    pubs = WeightPublisher(world, weights_spec, TAG_WEIGHTS)
    reports = StateReports(world, TAG_BYE, TAG_CTRL)
    limiter = RateLimiter(a.samples_per_insert, a.rate_error_buffer, max(a.learning_starts, a.batch_size))
    limiter.inserted = len(learner.replay)
    saved = ctx.restored_extra.get("limiter")
    if saved and len(learner.replay):  # the memory came back: so does the limiter's ratio
        limiter.inserted, limiter.sampled = int(saved[0]), int(saved[1])

    def save(actor_docs):
        ctx.save_checkpoint(learner.state_dict(cfg.checkpoint.replay), counters,
                            {"returns": window.state(), "limiter": [limiter.inserted, limiter.sampled]},
                            collective=False, rank_rng_docs=actor_docs)

    per_actor = {r: 0 for r in world.actor_ranks}  # env steps each actor contributed (bench: per-actor speed)

    def take(source, msg):
        per_actor[source] += int(msg["steps"])
        rows = transitions(msg, source)
        learner.replay.add(rows, msg["priority"][msg["valid"].astype(bool)])
        limiter.inserted += len(rows["action"])
        absorb(counters, window, msg)

    pubs.publish(learner.flat, learner.updates)
    metrics, done = {}, False
    while not done:
        got = rx.poll() if limiter.can_insert() else None
        if got is not None:
            take(*got)
        if limiter.can_sample(a.batch_size):
            metrics = learner.update(linear_beta(a.beta_start, a.beta_anneal_updates, learner.updates))
            limiter.sampled += a.batch_size
            if learner.updates % a.weights_publish_period == 0:
                pubs.publish(learner.flat, learner.updates)
        elif got is None and limiter.can_insert():  # always true here while rate_error_buffer >= batch_size / 2
            got = rx.recv(timeout_s=0.05)  # nothing to do: wait for data without spinning
            if got is not None:
                take(*got)
        counters["updates"] = learner.updates
        done = should_stop(ctx, counters, len(window), window.mean, lambda: learner.state_dict(with_replay=False),
                           collective=False, stop_vote=ctx.stop_requested())
        ctx.log(dict(counters, **{f"env_steps_actor{r}": n for r, n in per_actor.items()},
                     episode_return_mean=window.mean, replay_size=len(learner.replay),
                     samples_per_insert=limiter.sampled / max(1, limiter.inserted), **metrics), force=done)
        if not done:  # a checkpoint is written once every actor has sent its state
            reports.step(ctx.checkpoint_due(), save)

    save(reports.shutdown(rx, pubs.senders))  # the goodbyes carry the actors' final states
    return learner.state_dict(with_replay=False)
