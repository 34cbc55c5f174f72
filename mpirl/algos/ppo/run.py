"""PPO wired to the MPI world, as DD-PPO runs it: every rank collects and learns, gradients averaged.

Each iteration every rank (rank 0 included) runs ``num_steps`` steps in its
``env.num_envs`` copies with its replica of the network. One small
Allreduce then sums the ranks' step and episode counts, return window sums,
rank 0's checkpoint and stop votes, seconds in MPI calls and the replicas'
parameter fingerprints (CRC-32, as A2C checks them: a mismatch raises, which
aborts the job). Each rank computes GAE on its own unroll; the advantages are
normalised with the mean and variance over all ranks (a second small
Allreduce); then ``update_epochs`` passes of ``num_minibatches`` minibatches,
each gradient averaged over the ranks with one Allreduce before clipping and
the step, so the replicas stay bitwise identical.
"""
from __future__ import annotations

import math

import numpy as np

from mpirl.algos._loop import WINDOW, ReturnWindow, absorb_sums, should_stop
from mpirl.algos._rank_setup import rank_envs, restored_counters, seed_torch
from mpirl.algos._replicas import check_replicas, check_replicas_at_end, param_fingerprint
from mpirl.algos.ppo.config import network_config
from mpirl.algos.ppo.learner import TAIL, PPOLearner
from mpirl.learner import AllreduceMean
from mpirl.networks import make_networks
from mpirl.rollout import UnrollActor

CTRL = ("steps", "episodes", "return_sum", "return_count", "checkpoint", "stop", "mpi_s", "fingerprint_hi",
        "fingerprint_lo")


def train(ctx) -> dict:
    """Run PPO on this rank; returns the (identical) learner state."""
    a, cfg, world = ctx.agent, ctx.cfg, ctx.world
    seed_torch(ctx)
    counters = restored_counters(ctx)
    envs, spec = rank_envs(ctx)
    net = make_networks(spec, network_config(a))
    size = world.size
    reduce = AllreduceMean(world, sum(p.numel() for p in net.parameters()), TAIL)
    learner = PPOLearner(a, net, cfg.total_env_steps, ctx.rng, grad_reduce=reduce, sum_reduce=world.allreduce,
                         max_nonfinite=cfg.fault.max_nonfinite, num_envs=cfg.env.num_envs, device=ctx.learner_device)
    learner.load_rank_state(ctx.restored_extra)
    if ctx.restored_state:
        learner.load_state_dict(ctx.restored_state)
    else:
        learner.learner.assign(world.bcast(learner.flat))  # one initialisation for every replica
    learner.updates = counters["updates"]
    actor = UnrollActor(envs, net.policy, a.num_steps, ctx.rng, net.dist)
    window = ReturnWindow(ctx.restored_extra.get("returns", []), maxlen=math.ceil(WINDOW / size))
    ctrl = np.zeros(len(CTRL), np.float64)
    while True:
        out = actor.unroll()
        ctx.mark_first_step()
        window.extend(out["episode_returns"])
        ctrl[:] = (out["steps"], len(out["episode_returns"]), window.sum(), len(window), ctx.checkpoint_due(),
                   ctx.stop_requested(), reduce.mpi_s, *param_fingerprint(learner.flat))
        got = dict(zip(CTRL, world.allreduce(ctrl).tolist()))
        check_replicas(ctrl[-2:], learner.flat, size, f"on rank {ctx.rank} before PPO update {learner.updates + 1}")
        ret_mean = absorb_sums(counters, got)
        learner.set_lr_for(counters["env_steps"])
        stats = learner.update(out)
        counters["updates"] = learner.updates
        done = should_stop(ctx, counters, got["return_count"], ret_mean, learner.state_dict, collective=True,
                           stop_vote=got["stop"] > 0)
        ctx.log(dict(counters, episode_return_mean=ret_mean, **stats,
                     mpi_time_frac=got["mpi_s"] / size / max(ctx.wall_time(), 1e-9), replicas_checked=learner.updates),
                force=done)
        if got["checkpoint"] or done:
            ctx.save_checkpoint(learner.state_dict(), counters, {"returns": window.state(), **learner.rank_state()})
        if done:
            break
    check_replicas_at_end(world, learner.flat, f"on rank {ctx.rank} after the last PPO update")
    envs.close()
    return learner.state_dict()
