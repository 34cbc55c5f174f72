"""The learner's device path (`learner.device`), run on CPU through MPIRL_STAGED_LEARNER's staging."""
import numpy as np
import pytest
import torch

from mpirl.config import load_job
from mpirl.device import check_device, resolve
from mpirl.errors import ConfigError
from mpirl.learner import Learner

NO_CUDA = not torch.cuda.is_available()


def small_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))


def losses(learner, n=5):
    x = torch.linspace(-1, 1, 12).reshape(4, 3)
    out = []
    for _ in range(n):
        batch = learner.tensors({"x": x.numpy()})
        loss = (learner.net(batch["x"]) ** 2).mean()
        out.append(learner.step(loss)["loss"])
    return out


@pytest.mark.parametrize("flat_grads", [False, True])
def test_staged_learner_matches_the_plain_one_bitwise(flat_grads):
    plain = Learner(small_net(), optimizer="adam", lr=1e-2, max_grad_norm=0.5, flat_grads=flat_grads, staged=False)
    staged = Learner(small_net(), optimizer="adam", lr=1e-2, max_grad_norm=0.5, flat_grads=flat_grads, staged=True)
    assert staged.net is not staged.acting_net and plain.net is plain.acting_net
    assert losses(plain) == losses(staged)
    assert np.array_equal(plain.weights(), staged.weights())
    # The acting copy holds the published weights, not the initial ones.
    acting = torch.cat([p.detach().reshape(-1) for p in staged.acting_net.parameters()]).numpy()
    assert np.array_equal(acting, plain.weights())
    for k, v in plain.state_dict().items():
        assert np.array_equal(v, staged.state_dict()[k]), k


def test_staged_assign_and_received_gradients_reach_the_learner():
    ref = Learner(small_net(), optimizer="adam", lr=0.1, flat_grads=True, staged=False)
    learner = Learner(small_net(), optimizer="adam", lr=0.1, flat_grads=True, staged=True)
    values = np.arange(learner.weights().size, dtype=np.float32) / 100
    learner.assign(values)
    ref.assign(values)
    assert np.array_equal(torch.cat([p.detach().reshape(-1) for p in learner.net.parameters()]).numpy(), values)
    # A parameter server writes a worker's gradient into the host vector and applies it.
    g = np.linspace(-1, 1, values.size).astype(np.float32)
    learner.grad[...] = g
    ref.grad[...] = g
    learner.apply()
    ref.apply()
    assert np.array_equal(learner.weights(), ref.weights()) and not np.array_equal(learner.weights(), values)


def test_staged_restore_refreshes_the_acting_copy():
    a = Learner(small_net(), optimizer="adam", lr=1e-2, staged=True)
    losses(a, 3)
    b = Learner(small_net(), optimizer="adam", lr=1e-2, staged=True)
    b.load_state_dict(a.state_dict())
    acting = torch.cat([p.detach().reshape(-1) for p in b.acting_net.parameters()]).numpy()
    assert np.array_equal(acting, a.weights())


def test_auto_on_a_machine_without_cuda_takes_the_cpu_and_says_so():
    if not NO_CUDA:
        pytest.skip("torch sees a CUDA device here")
    device, note = resolve("auto", 0)
    assert device == "cpu" and note == "learner.device = auto: cpu (torch sees no CUDA device)"
    assert resolve("cpu") == ("cpu", "learner.device = cpu")


@pytest.mark.skipif(not NO_CUDA, reason="torch sees a CUDA device here")
def test_cuda_without_a_gpu_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match="key 'learner.device' is 'cuda' but torch sees no CUDA device"):
        check_device("cuda")
    with pytest.raises(ConfigError, match="impala.learner.device"):
        check_device("cuda", "impala.learner.device")


def test_impala_learner_device_is_an_alias_of_learner_device():
    cfg = load_job("jobs/cartpole_impala.toml", ["impala.learner.device=auto"])
    assert cfg.learner.device == "auto" and cfg.learner.given_as == "impala.learner.device"
    cfg = load_job("jobs/cartpole_impala.toml", ["learner.device=auto"])
    assert cfg.agent.learner.device == "auto" and cfg.learner.given_as == "learner.device"
    with pytest.raises(ConfigError, match="name the same setting"):
        load_job("jobs/cartpole_impala.toml", ["learner.device=auto", "impala.learner.device=cuda"])
    assert load_job("jobs/cartpole_ppo.toml").learner.device == "cpu"


def test_a_resume_override_beats_the_stored_alias():
    from mpirl.config import apply_overrides, parse_config, to_dict

    stored = to_dict(load_job("jobs/cartpole_impala.toml"))  # both keys 'cpu', as a checkpoint holds them
    sets = ["learner.device=auto"]
    cfg = parse_config(apply_overrides(stored, sets), "ckpt", overrides=sets)
    assert cfg.learner.device == cfg.agent.learner.device == "auto"


@pytest.mark.cuda
@pytest.mark.skipif(NO_CUDA, reason="torch sees no CUDA device on this machine")
def test_cuda_learner_matches_the_cpu_one_closely():
    cpu = Learner(small_net(), optimizer="adam", lr=1e-2, max_grad_norm=0.5, flat_grads=True)
    gpu = Learner(small_net(), optimizer="adam", lr=1e-2, max_grad_norm=0.5, flat_grads=True, device="cuda")
    assert next(gpu.net.parameters()).is_cuda and not next(gpu.acting_net.parameters()).is_cuda
    np.testing.assert_allclose(losses(cpu), losses(gpu), rtol=1e-4)
    np.testing.assert_allclose(cpu.weights(), gpu.weights(), rtol=1e-4, atol=1e-6)
