"""The pixel workloads' environment layer: MinAtar and ALE ids, the Atari wrappers, encoder choice, reward clip."""
import numpy as np
import pytest

from mpirl.config import AtariConfig, EnvConfig
from mpirl.envs import make_env, make_vec_env
from mpirl.networks import NetworkConfig, make_networks
from mpirl.networks.encoders import MinAtarCNN, MLPEncoder, NatureCNN
from mpirl.rollout import Autoreset
from mpirl.specs import DiscreteSpec, EnvSpec, env_spec

pytest.importorskip("minatar", reason="the minatar extra is not installed (pip install 'mpirl[minatar]')")


def test_minatar_ids_register_on_first_use_and_are_images():
    env = make_env(EnvConfig(id="MinAtar/Breakout-v1"))
    spec = env_spec(env)
    assert spec.obs_shape == (10, 10, 4) and spec.obs_dtype == np.bool_ and spec.obs_kind == "image"
    assert spec.action == DiscreteSpec(3)


@pytest.mark.parametrize("shape,dtype,cls", [((4,), np.float32, MLPEncoder), ((10, 10, 4), np.bool_, MinAtarCNN),
                                             ((10, 10, 6), np.uint8, MinAtarCNN),
                                             ((84, 84, 4), np.uint8, NatureCNN)])
def test_auto_encoder_follows_the_observation_spec(shape, dtype, cls):
    spec = EnvSpec(shape, np.dtype(dtype), DiscreteSpec(3))
    net = make_networks(spec, NetworkConfig("q", (32,)))  # encoder defaults to "auto"
    assert type(net.torso) is cls or isinstance(net.torso, cls)


def test_auto_encoder_of_vectors_is_the_plain_mlp_as_before():
    spec = EnvSpec((4,), np.dtype(np.float32), DiscreteSpec(2))
    auto = make_networks(spec, NetworkConfig("policy_value", (8,), "tanh"))
    mlp = make_networks(spec, NetworkConfig("policy_value", (8,), "tanh", encoder="mlp"))
    assert list(auto.state_dict()) == list(mlp.state_dict())


def test_bool_frames_go_through_the_network_unconverted():
    spec = EnvSpec((10, 10, 4), np.dtype(np.bool_), DiscreteSpec(3))
    net = make_networks(spec, NetworkConfig("policy_value", (16,)))
    import torch

    out = net.policy(torch.zeros((5, 10, 10, 4), dtype=torch.bool))
    assert out.shape == (5, 3)


def test_reward_clip_clips_what_the_learner_sees_not_the_returns():
    ar = Autoreset(2, reward_clip=1.0)
    finished = []
    _, r1, *_ = ar.step(np.array([5.0, -3.0]), np.array([False, False]), np.array([False, False]), finished)
    _, r2, *_ = ar.step(np.array([0.5, 2.0]), np.array([True, True]), np.array([False, False]), finished)
    assert r1.tolist() == [1.0, -1.0] and r2.tolist() == [0.5, 1.0]
    assert finished == [5.5, -1.0]


def test_vector_envs_carry_the_reward_clip():
    from mpirl.rollout import reward_clip_of

    envs = make_vec_env(EnvConfig(id="CartPole-v1", num_envs=2, reward_clip=1.0), 0)
    assert reward_clip_of(envs) == 1.0
    envs.close()


class TestAtari:
    ale_py = pytest.importorskip("ale_py", reason="the atari extra is not installed (pip install 'mpirl[atari]')")

    def test_preprocessing_gives_channel_last_stacks_of_84x84_uint8(self):
        cfg = EnvConfig(id="ALE/Pong-v5", wrappers="atari", atari=AtariConfig(noop_max=0))
        env = make_env(cfg)
        obs, _ = env.reset(seed=1)
        assert obs.shape == (84, 84, 4) and obs.dtype == np.uint8
        assert all((obs[..., i] == obs[..., 0]).all() for i in range(4))  # the reset frame fills the stack
        prev = obs
        for _ in range(30):
            obs, *_ = env.step(0)
            np.testing.assert_array_equal(obs[..., :-1], prev[..., 1:])  # each step shifts in one frame
            prev = obs
        assert env_spec(env).obs_kind == "image"
        env.close()

    def test_vector_copies_and_evaluation_copies_see_the_same_spaces(self):
        cfg = EnvConfig(id="ALE/Breakout-v5", wrappers="atari", num_envs=2,
                        atari=AtariConfig(terminal_on_life_loss=True, frame_stack=2))
        envs = make_vec_env(cfg, 0)
        assert envs.single_observation_space.shape == (84, 84, 2)
        ev = make_env(cfg, evaluation=True)
        assert ev.observation_space == envs.single_observation_space
        assert "AtariPreprocessing" in str(ev) and "FireReset" in str(ev)  # Breakout waits for FIRE
        envs.close()
        ev.close()

    def test_atari_wrappers_refuse_a_non_atari_id(self):
        from mpirl.errors import ConfigError

        with pytest.raises(ConfigError, match="env.wrappers") as e:
            make_env(EnvConfig(id="CartPole-v1", wrappers="atari"))
        assert e.value.key == "env.wrappers"



def test_bench_frames_counts_emulator_frames_of_the_jobs_own_env(tmp_path):
    pytest.importorskip("ale_py", reason="the atari extra is not installed (pip install 'mpirl[atari]')")
    from mpirl.bench.frames import frame_skip, job_row, raw_frames_per_s
    from mpirl.config import load_job

    job = tmp_path / "pong.toml"
    job.write_text('algo = "impala"\n[env]\nid = "ALE/Pong-v5"\nwrappers = "atari"\nnum_envs = 2\n'
                   '[env.atari]\nframe_skip = 3\n')
    assert frame_skip(load_job(str(job)).env) == 3
    assert frame_skip(load_job("jobs/cartpole_impala.toml").env) == 1
    assert raw_frames_per_s(str(job), 0.3) > 0
    rows = [{"wall_time_s": 1.0, "env_steps": 10.0, "updates": 1.0, "policy_lag": 2.0,
             "env_steps_actor1": 4.0, "env_steps_actor2": 6.0},
            {"wall_time_s": 1.5, "env_steps": 55.0, "updates": 4.0, "policy_lag": float("nan")},
            {"wall_time_s": 2.0, "env_steps": 100.0, "updates": 8.0, "policy_lag": float("nan"),
             "env_steps_actor1": 40.0, "env_steps_actor2": 60.0}]
    row = job_row(str(job), {"rows": rows}, 3, 3, raw=300.0)
    assert row["who"] == "pong" and row["frames_per_s"] == 150.0 and row["fraction_of_raw"] == 0.5
    assert row["frames_per_s_second_half"] == 270.0  # (100 - 55) steps x 3 frames in the last 0.5 s
    assert row["frames_per_s_per_actor"] == 75.0 and row["updates_per_s"] == 4.0 and row["policy_lag"] == 2.0
