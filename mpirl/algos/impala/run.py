"""IMPALA wired to the MPI world (Espeholt et al. 2018).

Actors (ranks 1..N-1) act with their local copy of the policy in
``env.num_envs`` environment copies and send each unroll to rank 0 with a
nonblocking synchronous send (``Issend``, complete once rank 0 has matched
it) from a pool of ``send_slots`` preallocated buffers; they keep acting
while the sends are in flight and wait only when the whole pool is (the
learner is behind), which bounds the policy lag and the learner's queue. Before each unroll they drain the weights
receiver to the newest publication, without blocking.

Rank 0 takes unrolls first come from whichever actor has one ready, copies
``batch_size`` of them side by side, makes one V-trace update and publishes
its weights every ``weights_publish_period`` updates (skipping an actor that
has not yet received the previous publication). Each unroll carries the
version of the weights that produced it; ``policy_lag`` is the learner's
version minus that, averaged over the unrolls of each logged row.

Shutdown (as in Ape-X): rank 0 completes its weight sends, sends the
shutdown message, drops incoming unrolls until every actor has flushed its
sends and said goodbye, cancels its posted receives and writes the final
checkpoint.
"""
from __future__ import annotations

import numpy as np

from mpirl.algos._loop import ReturnWindow, WeightPublisher, absorb, act_asynchronously, should_stop
from mpirl.algos._rank_setup import rank_envs, restored_counters, seed_torch
from mpirl.algos.impala.config import network_config
from mpirl.algos.impala.learner import ImpalaLearner
from mpirl.algos.impala.messages import UnrollBatch, fill_unroll, unroll_spec, weights_spec
from mpirl.comm.control import ActorControl, StateReports
from mpirl.comm.p2p import Receiver, Sender
from mpirl.comm.tags import TAGS
from mpirl.networks import make_networks
from mpirl.params import flat_parameters
from mpirl.rollout import UnrollActor, resumed_sampling, rng_doc

# TAG_CTRL: rank 0's report requests and stop; TAG_BYE: the actors' reports and goodbyes (mpirl.comm.control).
TAG_UNROLL, TAG_WEIGHTS, TAG_BYE, TAG_CTRL = (TAGS[f"impala.{k}"] for k in ("unroll", "weights", "bye", "ctrl"))


def train(ctx) -> dict:
    """Run IMPALA on this rank; returns the learner's state on rank 0."""
    a, cfg, world = ctx.agent, ctx.cfg, ctx.world
    seed_torch(ctx)
    resumed_steps = restored_counters(ctx)["env_steps"]
    envs, env_spec = rank_envs(ctx)
    net = make_networks(env_spec, network_config(a))
    spec = unroll_spec(a.unroll_length, cfg.env.num_envs, env_spec, net.dist.num_params)
    if world.is_learner:
        envs.close()
        learner = ImpalaLearner(a, net, cfg.total_env_steps, cfg.fault.max_nonfinite, device=ctx.learner_device)
        return _learn(ctx, learner, spec)
    flat = flat_parameters(net)
    actor = UnrollActor(envs, net.policy, a.unroll_length, resumed_sampling(ctx, envs, resumed_steps), net.dist)
    _act(ctx, actor, flat, spec)
    envs.close()
    return {}


def _act(ctx, actor, flat, spec) -> None:
    a, world = ctx.agent, ctx.world
    # Synchronous sends: a full pool then really means the learner has not taken them (back-pressure).
    tx = Sender(world, spec, TAG_UNROLL, slots=a.send_slots, synchronous=True)
    ctl = ActorControl(world, lambda: rng_doc(ctx, actor), TAG_BYE, TAG_CTRL)
    weights = Receiver(world, weights_spec(flat.size), TAG_WEIGHTS, [world.learner])
    act_asynchronously(ctx, flat, weights, tx, ctl, lambda version: actor.unroll(), fill_unroll)


def _learn(ctx, learner, spec) -> dict:
    a, world = ctx.agent, ctx.world
    counters = restored_counters(ctx)
    if ctx.restored_state:
        learner.load_state_dict(ctx.restored_state)
    learner.updates = counters["updates"]
    window = ReturnWindow(ctx.restored_extra.get("returns", []))
    rx = Receiver(world, spec, TAG_UNROLL, world.actor_ranks)
    pubs = WeightPublisher(world, weights_spec(learner.weights().size), TAG_WEIGHTS)
    batch = UnrollBatch(spec, a.batch_size)
    reports = StateReports(world, TAG_BYE, TAG_CTRL)

    def save(actor_docs):
        ctx.save_checkpoint(learner.state_dict(), counters, {"returns": window.state()}, collective=False,
                            rank_rng_docs=actor_docs)

    per_actor = {r: 0 for r in world.actor_ranks}  # env steps each actor delivered (bench: per-actor speed)
    pubs.publish(learner.weights(), learner.updates)
    metrics, lags, done = {}, [], False
    while not done:
        got = rx.poll() or rx.recv(timeout_s=0.05)  # no unroll ready: wait for one without spinning
        if got is not None:
            source, msg = got
            per_actor[source] += int(msg["steps"])
            absorb(counters, window, msg)
            if batch.add(msg):
                lags.extend((learner.updates - batch.versions).tolist())
                metrics = learner.update(batch.arrays, counters["env_steps"])
                batch.clear()
                if learner.updates % a.weights_publish_period == 0:
                    pubs.publish(learner.weights(), learner.updates)
        counters["updates"] = learner.updates
        done = should_stop(ctx, counters, len(window), window.mean, learner.state_dict, collective=False,
                           stop_vote=ctx.stop_requested())
        row = dict(counters, **{f"env_steps_actor{r}": n for r, n in per_actor.items()},
                   episode_return_mean=window.mean, **metrics)
        if lags:
            row["policy_lag"] = float(np.mean(lags))
        if ctx.log(row, force=done):
            lags = []
        if not done:  # a checkpoint is written once every actor has sent its state
            reports.step(ctx.checkpoint_due(), save)

    save(reports.shutdown(rx, pubs.senders))  # the goodbyes carry the actors' final states
    return learner.state_dict()
