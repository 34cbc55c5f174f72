"""A3C (Mnih et al. 2016) in parameter-server form, wired to the MPI world.

Workers (ranks 1..N-1) each own ``env.num_envs`` environment copies and a local
copy of the network. A worker runs ``t_max`` steps with the parameters it last
pulled (version v), computes the A2C gradient of that unroll, and sends the
flat gradient to rank 0 with a nonblocking send from a preallocated buffer;
then it waits (backoff, no spinning) for the reply.

Rank 0 keeps one receive posted per worker and takes gradients first come, in
arrival order. For each it applies the gradient with its one optimizer (the
RMSprop statistics shared by all workers, as in the paper's shared RMSprop),
and sends the fresh parameters and their version back to that worker only.
Staleness of a gradient is rank 0's update count when it is applied minus v:
the updates made from other workers' gradients since the worker's pull.

Checkpoints: rank 0 opens a report round (``mpirl.comm.control``) and flags
it in each worker's next reply; the worker sends its RNG state (JSON) before
its next unroll, and rank 0 writes the checkpoint once every worker has.

Shutdown: once rank 0 decides to stop, it answers each worker's next gradient
(not applied) with a stop flag instead of a new pull; a worker receiving it
completes its sends and says goodbye with its final RNG state. Rank 0
completes its replies, cancels its posted receives, collects the goodbyes and
writes the final checkpoint.
"""
from __future__ import annotations

import time

import numpy as np

from mpirl.algos._loop import ReturnWindow, absorb, should_stop
from mpirl.algos._rank_setup import rank_envs, restored_counters, seed_torch
from mpirl.algos.a2c.config import network_config
from mpirl.algos.a2c.learner import ActorCriticLearner
from mpirl.comm.buffers import MessageSpec
from mpirl.comm.control import ActorControl, StateReports
from mpirl.comm.p2p import Receiver, Sender, deliver_all
from mpirl.comm.tags import TAGS
from mpirl.networks import make_networks
from mpirl.rollout import UnrollActor, resumed_sampling, rng_doc

# TAG_REPORT: the workers' RNG reports and goodbyes.
TAG_GRAD, TAG_PARAMS, TAG_REPORT = TAGS["a3c.grad"], TAGS["a3c.params"], TAGS["a3c.report"]
STATS = ("pg_loss", "value_loss", "entropy", "mpi_s", "wall_s")


def gradient_spec(n: int, max_returns: int) -> MessageSpec:
    """A worker's flat gradient, the version it was computed at, its steps, finished returns and stats."""
    return MessageSpec({"grad": ((n,), np.float32), "version": ((), np.int64), "steps": ((), np.int64),
                        "episodes": ((), np.int64), "episode_returns": ((max_returns,), np.float64),
                        "stats": ((len(STATS),), np.float64)})


def params_spec(n: int) -> MessageSpec:
    """Rank 0's reply: the flat parameters, their version (its update count), the stop flag and the
    report round the worker is asked to answer (0: none)."""
    return MessageSpec({"params": ((n,), np.float32), "version": ((), np.int64), "stop": ((), np.int64),
                        "report": ((), np.int64)})


def train(ctx) -> dict:
    """Run A3C on this rank; returns the server's state on rank 0."""
    a, cfg, world = ctx.agent, ctx.cfg, ctx.world
    seed_torch(ctx)
    resumed_steps = restored_counters(ctx)["env_steps"]
    envs, spec = rank_envs(ctx)
    net = make_networks(spec, network_config(a))
    # Only the server learns on `learner.device`: the workers act, so they compute their gradients on CPU.
    learner = ActorCriticLearner(a, net, cfg.total_env_steps, max_nonfinite=cfg.fault.max_nonfinite,
                                 device=ctx.learner_device if world.is_learner else "cpu")
    specs = gradient_spec(learner.flat.size, a.t_max * cfg.env.num_envs), params_spec(learner.flat.size)
    if world.is_learner:
        envs.close()
        return _serve(ctx, learner, *specs)
    _work(ctx, learner, UnrollActor(envs, net.policy, a.t_max, resumed_sampling(ctx, envs, resumed_steps), net.dist),
          *specs)
    envs.close()
    return {}


def _work(ctx, learner, actor, gspec, pspec) -> None:
    world = ctx.world
    tx = Sender(world, gspec, TAG_GRAD, slots=1)
    ctl = ActorControl(world, lambda: rng_doc(ctx, actor), TAG_REPORT)
    rx = Receiver(world, pspec, TAG_PARAMS, [world.learner])
    _, reply = rx.recv()
    # Time in MPI counts from the first parameters on: the wait for them is start-up (rank 0 still
    # importing under load), and counting it against a clock that starts later gave fractions above 1.
    mpi_s = 0.0
    start = time.perf_counter()
    while not int(reply["stop"]):
        ctl.answer(int(reply["report"]))  # a checkpoint asks for this worker's RNG state (once per round)
        learner.learner.assign(reply["params"])
        version = int(reply["version"])
        out = actor.unroll()
        ctx.mark_first_step()
        parts = learner.compute_gradient(out)
        t0 = time.perf_counter()
        slot = tx.acquire()  # free at once: rank 0 answered, so it has received the previous gradient
        msg = tx.buffer(slot)
        rets = out["episode_returns"]
        msg["grad"], msg["version"], msg["steps"], msg["episodes"] = learner.grad, version, out["steps"], len(rets)
        msg["episode_returns"][: len(rets)] = rets
        msg["stats"] = (parts["pg_loss"], parts["value_loss"], parts["entropy"], mpi_s, time.perf_counter() - start)
        tx.send(slot, world.learner)
        _, reply = rx.recv()
        mpi_s += time.perf_counter() - t0
    ctl.goodbye(tx)  # carries this worker's final state for the last checkpoint
    rx.close()


def _serve(ctx, learner, gspec, pspec) -> dict:
    world = ctx.world
    counters = restored_counters(ctx)
    if ctx.restored_state:
        learner.load_state_dict(ctx.restored_state)
    learner.updates = counters["updates"]
    window = ReturnWindow(ctx.restored_extra.get("returns", []))
    rx = Receiver(world, gspec, TAG_GRAD, world.actor_ranks)
    replies = {r: Sender(world, pspec, TAG_PARAMS, slots=1) for r in world.actor_ranks}
    reports = StateReports(world, TAG_REPORT)  # requests travel in the replies' "report" field
    worker_stats = {}

    def reply(rank, stop):
        sender = replies[rank]
        slot = sender.acquire()  # the worker has received the previous reply before sending this gradient
        msg = sender.buffer(slot)
        msg["params"], msg["version"], msg["stop"] = learner.flat, learner.updates, int(stop)
        msg["report"] = 0 if stop else reports.asking(rank)
        sender.send(slot, rank)

    def save(worker_docs):
        ctx.save_checkpoint(learner.state_dict(), counters, {"returns": window.state()}, collective=False,
                            rank_rng_docs=worker_docs)

    for r in world.actor_ranks:
        reply(r, False)
    metrics, staleness, done, told = {}, [], False, set()
    while len(told) < world.num_actors:
        got = rx.poll() or rx.recv(timeout_s=0.05)  # nothing arrived: wait without spinning
        if got is None:
            continue
        rank, msg = got
        if not done:
            staleness.append(learner.updates - int(msg["version"]))
            learner.grad[...] = msg["grad"]
            absorb(counters, window, msg)
            metrics = learner.apply_gradient(counters["env_steps"])
            counters["updates"] = learner.updates
            worker_stats[rank] = dict(zip(STATS, msg["stats"].tolist()))
            done = should_stop(ctx, counters, len(window), window.mean, learner.state_dict, collective=False,
                               stop_vote=ctx.stop_requested())
            row = dict(counters, episode_return_mean=window.mean, **metrics,
                       **{k: float(np.mean([s[k] for s in worker_stats.values()]))
                          for k in ("pg_loss", "value_loss", "entropy")},
                       mpi_time_frac=float(np.mean([s["mpi_s"] / max(s["wall_s"], 1e-9)
                                                    for s in worker_stats.values()])),
                       staleness=float(np.mean(staleness)), staleness_max=float(np.max(staleness)))
            if ctx.log(row, force=done):
                staleness = []
            if not done:  # a checkpoint is written once every worker has sent its state
                reports.step(ctx.checkpoint_due(), save)
        if done:
            told.add(rank)
            rx.stop_watching(rank)  # it will send nothing more: its silence is no fault
        reply(rank, done)
    deliver_all(world, replies, "the stop message")  # a worker silent now must not hang the job
    rx.close()
    save(reports.collect_goodbyes("the workers' goodbyes"))  # with their final states; same deadline
    return learner.state_dict()
