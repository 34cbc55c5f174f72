"""An asynchronous actor's RNG document round trip: what it reports is what it resumes with.

An actor reports ``mpirl.rollout.rng_doc`` (its rank generator,
sampling generator and environment RNGs) for a checkpoint; on resume its
RunContext restores the rank generator (``restore_rng_state``) and
``resumed_sampling`` the other two. The restored streams must equal the saved
ones and go on exactly as the original actor's would have.
"""
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mpirl.config import EnvConfig
from mpirl.rollout import UnrollActor, make_vec_env, resumed_sampling, rng_doc
from mpirl.seeding import (capture_env_rng, env_generators, rank_rng, rank_rng_doc, restore_env_rng,
                           restore_rng_state)


def _ctx(rank, extra=None):
    return SimpleNamespace(rng=rank_rng(0, rank), restored_extra=extra or {})


def _envs(env_id, seed):
    return make_vec_env(EnvConfig(id=env_id, num_envs=3), seed)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Acrobot-v1"])  # a native vector env, a SyncVectorEnv
def test_restored_actor_continues_the_saved_streams(env_id):
    torch.manual_seed(0)
    ctx = _ctx(1)
    envs = _envs(env_id, 11)
    probe = envs.single_observation_space.shape[0]
    policy = torch.nn.Linear(probe, int(envs.single_action_space.n))
    actor = UnrollActor(envs, policy, 5, resumed_sampling(ctx, envs, 0))
    for _ in range(3):
        actor.unroll()
    doc = json.loads(json.dumps(rng_doc(ctx, actor)))  # what travels to rank 0 and into the HDF5 file

    # Resume: a fresh context (RunContext restores the rank generator), envs seeded differently
    # (rank_envs offsets the seed by the env steps), the sampling generator derived anew, then restored.
    ctx2 = _ctx(1)
    restore_rng_state(doc, ctx2.rng)
    ctx2.restored_extra = doc["extra"]
    envs2 = _envs(env_id, 999)
    rng2 = resumed_sampling(ctx2, envs2, 1234)
    assert rng2.bit_generator.state == doc["extra"]["actor_rng"] == actor.rng.bit_generator.state
    assert capture_env_rng(envs2) == doc["extra"]["env_rng"] == capture_env_rng(envs)
    assert ctx2.rng.bit_generator.state == doc["generator"]

    # Both go on identically: the original actor restarting its in-flight episodes (a new UnrollActor
    # on the same envs and generator resets them) and the restored one.
    ref = UnrollActor(envs, policy, 5, actor.rng)
    actor2 = UnrollActor(envs2, policy, 5, rng2)
    for _ in range(2):
        a, b = ref.unroll(), actor2.unroll()
        for k in ("obs", "action", "reward", "policy_params", "terminated", "truncated", "reset"):
            np.testing.assert_array_equal(a[k], b[k])
    assert int(ctx.rng.integers(2**31)) == int(ctx2.rng.integers(2**31))
    envs.close()
    envs2.close()


def test_a_fresh_actor_without_a_saved_state_derives_its_stream():
    envs = _envs("CartPole-v1", 5)
    a = resumed_sampling(_ctx(2), envs, 100)
    b = resumed_sampling(_ctx(2), envs, 100)
    c = resumed_sampling(_ctx(2), envs, 200)
    assert a.bit_generator.state == b.bit_generator.state != c.bit_generator.state
    envs.close()


def test_env_rng_that_does_not_fit_is_left_alone():
    envs = _envs("Acrobot-v1", 5)
    before = capture_env_rng(envs)
    assert len(before) == 3 and len(env_generators(envs)) == 3
    assert not restore_env_rng(envs, before[:2])  # saved at another num_envs: keep the fresh seeds
    assert not restore_env_rng(envs, None)
    assert capture_env_rng(envs) == before
    envs.close()


def test_rank_rng_doc_is_json_and_restores_the_generator():
    gen = rank_rng(3, 1)
    gen.random(7)
    doc = json.loads(json.dumps(rank_rng_doc(gen, {"own_steps": 42})))
    assert doc["extra"] == {"own_steps": 42}
    fresh = rank_rng(3, 1)
    restore_rng_state(doc, fresh)
    assert fresh.bit_generator.state == gen.bit_generator.state
    np.testing.assert_array_equal(fresh.random(5), gen.random(5))
