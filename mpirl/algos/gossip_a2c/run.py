"""Decentralized gossip A2C wired to the MPI world: pairwise parameter averaging, no parameter server.

Every rank (rank 0 included) acts in its ``env.num_envs`` copies and makes its
own A2C update from its own gradient, with its own optimizer. Every
``gossip_every`` updates it averages its parameters with the one peer that
the deterministic schedule of :mod:`mpirl.functional.gossip` gives it for
that round (hypercube for a power-of-two N, round-robin matchings otherwise):
the pair swaps flat parameter vectors with a nonblocking Isend/Irecv pair and
both keep the mean. Only the two ranks of a pair wait for each other.

Every ``stats_every`` updates (a count, so all ranks do it at the same
update) one Allreduce sums the parameters and the episode statistics, rank
0's checkpoint vote and the seconds spent in MPI; a second, one-number
Allreduce sums each rank's distance from the average. These are the only
global synchronisations: they set the agreed counters, the stop and
checkpoint decisions, and the consensus distance (mean over ranks of
||theta_r - mean_r theta_r||). Checkpoints are collective and hold every
rank's network and optimizer (``rank_<k>/...``, what each rank resumes
from); ``net/*``, the network evaluated, is the average of the ranks'
networks from that same reduction (no extra communication).
"""
from __future__ import annotations

import math
import time

import numpy as np

from mpirl.algos._loop import WINDOW, ReturnWindow, absorb_sums, should_stop
from mpirl.algos._rank_setup import rank_envs, restored_counters, seed_torch
from mpirl.algos.a2c.config import network_config
from mpirl.algos.a2c.learner import ActorCriticLearner
from mpirl.comm.tags import TAGS
from mpirl.functional.gossip import gossip_peer
from mpirl.networks import make_networks
from mpirl.rollout import UnrollActor

TAG_GOSSIP = TAGS["gossip.params"]
CTRL = ("steps", "episodes", "return_sum", "return_count", "checkpoint", "stop", "pg_loss", "value_loss", "entropy",
        "mpi_s")


def train(ctx) -> dict:
    """Run gossip A2C on this rank; returns the state with the ranks' average network (evaluated on rank 0)."""
    a, cfg, world = ctx.agent, ctx.cfg, ctx.world
    # torch may be imported after RunContext seeded the globals: seed it here (rank 0's init is broadcast).
    seed_torch(ctx)
    counters = restored_counters(ctx)
    envs, spec = rank_envs(ctx)
    net = make_networks(spec, network_config(a))
    learner = ActorCriticLearner(a, net, cfg.total_env_steps, max_nonfinite=cfg.fault.max_nonfinite,
                                 device=ctx.learner_device)
    if ctx.restored_rank_arrays:
        learner.load_state_dict(ctx.restored_rank_arrays)
    elif ctx.restored_state:  # resumed at a larger rank count: a new rank starts from rank 0's network
        learner.load_state_dict(ctx.restored_state)
    else:
        learner.learner.assign(world.bcast(learner.flat))  # consensus at the start
    learner.updates = counters["updates"]
    actor = UnrollActor(envs, net.policy, a.t_max, ctx.rng, net.dist)
    window = ReturnWindow(ctx.restored_extra.get("returns", []), maxlen=math.ceil(WINDOW / world.size))
    flat, n, size = learner.flat, learner.flat.size, world.size
    peer_buf = np.empty_like(flat)
    stats = np.zeros(n + len(CTRL), np.float64)
    dist = np.zeros(1, np.float64)
    steps = episodes = 0
    parts_sum = np.zeros(3)
    mpi_s = 0.0
    while True:
        out = actor.unroll()
        ctx.mark_first_step()
        window.extend(out["episode_returns"])
        steps += out["steps"]
        episodes += len(out["episode_returns"])
        parts = learner.compute_gradient(out)
        parts_sum += (parts["pg_loss"], parts["value_loss"], parts["entropy"])
        # Between global reductions the step count is this rank's share times N (for the lr schedule only).
        metrics = learner.apply_gradient(counters["env_steps"] + steps * size)
        k = learner.updates
        if k % a.gossip_every == 0:
            peer = gossip_peer(ctx.rank, size, k // a.gossip_every)
            if peer is not None:
                t0 = time.perf_counter()
                world.sendrecv(flat, peer_buf, peer, TAG_GOSSIP)
                mpi_s += time.perf_counter() - t0
                flat += peer_buf  # both ranks compute (a + b) / 2: the pair agrees bitwise
                flat *= np.float32(0.5)
                learner.learner.assign(flat)
        if k % a.stats_every:
            continue
        stats[:n] = flat
        stats[n:] = (steps, episodes, window.sum(), len(window), ctx.checkpoint_due(), ctx.stop_requested(),
                     *parts_sum, mpi_s)
        t0 = time.perf_counter()
        world.allreduce(stats)
        dist[0] = np.linalg.norm(flat - stats[:n] / size)
        world.allreduce(dist)
        mpi_s += time.perf_counter() - t0
        got = dict(zip(CTRL, stats[n:].tolist()))
        ret_mean = absorb_sums(counters, got)
        counters["updates"] = k
        steps = episodes = 0
        per_update = size * a.stats_every
        # The network evaluated is the ranks' average: the greedy check (if asked for) looks at that one.
        done = should_stop(ctx, counters, got["return_count"], ret_mean, lambda: _with_params(learner, stats[:n] / size),
                           collective=True, stop_vote=got["stop"] > 0)
        ctx.log(dict(counters, episode_return_mean=ret_mean, **metrics, consensus_distance=dist[0] / size,
                     pg_loss=got["pg_loss"] / per_update, value_loss=got["value_loss"] / per_update,
                     entropy=got["entropy"] / per_update,
                     mpi_time_frac=got["mpi_s"] / size / max(ctx.wall_time(), 1e-9)), force=done)
        parts_sum[:] = 0.0
        if got["checkpoint"] or done:
            mean_state = _with_params(learner, stats[:n] / size)
            ctx.save_checkpoint(mean_state, counters, {"returns": window.state()}, rank_arrays=learner.state_dict())
        if done:
            break
    envs.close()
    return mean_state


def _with_params(learner, params) -> dict:
    """The learner's state with ``params`` (the ranks' average) as its network."""
    own = learner.learner.weights().copy()
    learner.learner.assign(params)
    state = learner.state_dict()  # copies
    learner.learner.assign(own)
    return state
