"""Synchronous A2C wired to the MPI world: every rank acts and learns, one Allreduce per update.

Every rank (rank 0 included) runs ``t_max`` steps in its ``env.num_envs``
copies with its replica of the network and computes the A2C gradient of that
unroll. The gradient is the leading part of one float32 buffer; behind it
each rank appends its step and episode counts, the sum and count of its recent
returns, rank 0's checkpoint vote, its loss parts, its seconds in MPI calls and
the fingerprint (CRC-32) of its parameters. One nonblocking Allreduce(SUM) of
that buffer gives every rank the summed gradient (divided by N: the average)
and the same control values, so every rank applies the identical optimizer
step and takes the same stop and checkpoint decisions. The fingerprints check
that the replicas are bitwise identical before every update (and once after
the last): a mismatch raises, which aborts the job.
"""
from __future__ import annotations

import math

from mpirl.algos._loop import WINDOW, ReturnWindow, absorb_sums, should_stop
from mpirl.algos._rank_setup import rank_envs, restored_counters, seed_torch
from mpirl.algos.a2c.config import network_config
from mpirl.algos._replicas import check_replicas, check_replicas_at_end, param_fingerprint
from mpirl.algos.a2c.learner import ActorCriticLearner
from mpirl.learner import AllreduceMean
from mpirl.networks import make_networks
from mpirl.rollout import UnrollActor

CTRL = ("steps", "episodes", "return_sum", "return_count", "checkpoint", "stop", "pg_loss", "value_loss", "entropy",
        "mpi_s", "fingerprint_hi", "fingerprint_lo")


def train(ctx) -> dict:
    """Run A2C on this rank; returns the (identical) learner state."""
    a, cfg, world = ctx.agent, ctx.cfg, ctx.world
    # torch may be imported after RunContext seeded the globals: seed it here (rank 0's init is broadcast).
    seed_torch(ctx)
    counters = restored_counters(ctx)
    envs, spec = rank_envs(ctx)
    # A first network is drawn from the seed and dropped: A2C once built one only to count its parameters,
    # and every recorded run of the A2C jobs (docs/benchmarks.md) starts from the second draw.
    make_networks(spec, network_config(a))
    net = make_networks(spec, network_config(a))
    size = world.size

    def reduced(tail):  # after the Allreduce, before the update
        check_replicas(tail[-2:], learner.flat, size, f"on rank {ctx.rank} before A2C update {learner.updates + 1}")
        learner.set_lr_for(counters["env_steps"] + int(tail[0]))  # the steps of all ranks, this unroll's included

    reduce = AllreduceMean(world, sum(p.numel() for p in net.parameters()), CTRL, on_reduced=reduced)
    learner = ActorCriticLearner(a, net, cfg.total_env_steps, grad_reduce=reduce, max_nonfinite=cfg.fault.max_nonfinite,
                                 device=ctx.learner_device)
    if ctx.restored_state:
        learner.load_state_dict(ctx.restored_state)
    else:
        learner.learner.assign(world.bcast(learner.flat))  # one initialisation for every replica
    learner.updates = counters["updates"]
    actor = UnrollActor(envs, net.policy, a.t_max, ctx.rng, net.dist)
    # Per-rank windows summing to about the last 100 episodes of all ranks.
    window = ReturnWindow(ctx.restored_extra.get("returns", []), maxlen=math.ceil(WINDOW / size))
    while True:
        out = actor.unroll()
        ctx.mark_first_step()
        window.extend(out["episode_returns"])
        loss, parts = learner.loss(out)
        reduce.tail[:] = (out["steps"], len(out["episode_returns"]), window.sum(), len(window), ctx.checkpoint_due(),
                          ctx.stop_requested(), parts["pg_loss"], parts["value_loss"], parts["entropy"], reduce.mpi_s,
                          *param_fingerprint(learner.flat))
        stats = learner.step(loss)
        got = reduce.sums()
        ret_mean = absorb_sums(counters, got)
        counters["updates"] = learner.updates
        done = should_stop(ctx, counters, got["return_count"], ret_mean, learner.state_dict, collective=True,
                           stop_vote=got["stop"] > 0)
        wall = ctx.wall_time()
        ctx.log(dict(counters, episode_return_mean=ret_mean, **stats,
                     **{k: got[k] / size for k in ("pg_loss", "value_loss", "entropy")},
                     mpi_time_frac=got["mpi_s"] / size / max(wall, 1e-9), replicas_checked=learner.updates),
                force=done)
        if got["checkpoint"] or done:
            ctx.save_checkpoint(learner.state_dict(), counters, {"returns": window.state()})
        if done:
            break
    check_replicas_at_end(world, learner.flat, f"on rank {ctx.rank} after the last A2C update")
    envs.close()
    return learner.state_dict()
