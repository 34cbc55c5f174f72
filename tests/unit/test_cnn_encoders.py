"""The CNN encoders: uint8 frames in (scaled inside), the papers' layer sizes, every head on top, meta-device shapes."""
import numpy as np
import pytest
import torch

from mpirl.networks import NetworkConfig, make_networks
from mpirl.networks.encoders import ImpalaResNet, MinAtarCNN, NatureCNN
from mpirl.specs import DiscreteSpec, EnvSpec

CASES = [("minatar_cnn", (10, 10, 4)), ("nature_cnn", (84, 84, 4)), ("impala_resnet", (64, 64, 3))]


@pytest.mark.parametrize("encoder, shape", CASES)
def test_every_head_runs_on_uint8_frames_with_leading_dims(encoder, shape):
    torch.manual_seed(0)
    spec = EnvSpec(shape, np.dtype(np.uint8), DiscreteSpec(5))
    pv = make_networks(spec, NetworkConfig("policy_value", (32,), "tanh", encoder=encoder))
    q = make_networks(spec, NetworkConfig("q", (32,), "relu", dueling=True, encoder=encoder))
    x = torch.randint(0, 256, (3, 2, *shape), dtype=torch.uint8)  # [T+1, B, H, W, C] as in an unroll
    params, values = pv(x)
    assert params.shape == (3, 2, 5) and values.shape == (3, 2) and q(x).shape == (3, 2, 5)
    assert pv.greedy(x[0]).shape == (2,) and bool(torch.isfinite(params).all())
    (params.sum() + values.sum()).backward()
    assert all(p.grad is not None for p in pv.parameters())
    with torch.device("meta"):  # state_shapes builds on the meta device: same names and shapes
        meta = make_networks(spec, NetworkConfig("policy_value", (32,), "tanh", encoder=encoder))
    assert {k: v.shape for k, v in meta.state_dict().items()} == {k: v.shape for k, v in pv.state_dict().items()}


@pytest.mark.parametrize("cls, shape", [(MinAtarCNN, (10, 10, 6)), (NatureCNN, (84, 84, 4)), (ImpalaResNet, (84, 84, 4))])
def test_uint8_frames_are_scaled_inside_the_encoder(cls, shape):
    torch.manual_seed(1)
    enc = cls(shape)
    frames = torch.randint(0, 256, (4, *shape), dtype=torch.uint8)
    torch.testing.assert_close(enc(frames), enc(frames.float() / 255.0))
    assert enc(frames).shape == (4, enc.out_dim)


def test_layer_sizes_are_the_papers():
    minatar = MinAtarCNN((10, 10, 4))  # one 3x3 conv of 16 filters (8x8 out), 128 units
    assert minatar.conv[0].weight.shape == (16, 4, 3, 3) and minatar.fc[0].weight.shape == (128, 16 * 8 * 8)
    nature = NatureCNN((84, 84, 4))  # 32x8x8/4, 64x4x4/2, 64x3x3/1 -> 7x7x64 -> 512
    assert [m.weight.shape for m in nature.conv if isinstance(m, torch.nn.Conv2d)] == [
        (32, 4, 8, 8), (64, 32, 4, 4), (64, 64, 3, 3)]
    assert nature.fc[0].weight.shape == (512, 7 * 7 * 64)
    resnet = ImpalaResNet((84, 84, 4))  # 16, 32, 32 channels, three /2 pools: 84 -> 42 -> 21 -> 11
    assert resnet.fc[0].weight.shape == (256, 32 * 11 * 11)
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        NatureCNN((84, 84))


@pytest.mark.parametrize("encoder, shape, dtype", [("minatar_cnn", (10, 10, 4), np.bool_), ("mlp", (6,), np.float32)])
def test_a_shared_encoder_serves_both_heads_and_acts_as_forward_does(encoder, shape, dtype):
    torch.manual_seed(2)
    spec = EnvSpec(shape, np.dtype(dtype), DiscreteSpec(3))
    cfg = dict(kind="policy_value", hidden=(32,), activation="tanh", encoder=encoder)
    shared = make_networks(spec, NetworkConfig(**cfg, shared_encoder=True))
    separate = make_networks(spec, NetworkConfig(**cfg))
    enc = sum(p.numel() for p in shared.encoder.parameters())
    heads = sum(p.numel() for p in shared.policy_head.parameters()) + sum(p.numel() for p in shared.value_head.parameters())
    assert sum(p.numel() for p in shared.parameters()) == enc + heads
    assert sum(p.numel() for p in separate.parameters()) == 2 * enc + heads  # the shared net has one encoder
    x = torch.rand(4, 2, *shape) < 0.3 if dtype == np.bool_ else torch.randn(4, 2, *shape)
    params, values = shared(x)  # [T+1, B, ...] as in an unroll
    assert params.shape == (4, 2, 3) and values.shape == (4, 2)
    torch.testing.assert_close(shared.policy(x[1]), params[1])  # what an actor samples from = what the learner scores
    torch.testing.assert_close(shared.value(x[1]), values[1])
    assert torch.equal(shared.greedy(x[1]), params[1].argmax(-1))
    values.sum().backward()  # the value loss reaches the encoder, not the policy head
    assert shared.encoder.parameters().__next__().grad.abs().sum() > 0 and shared.policy_head.weight.grad is None


def test_shared_encoder_is_a_key_of_every_policy_value_section():
    from mpirl.algos.a2c.config import network_config as a2c_net
    from mpirl.algos.impala.config import network_config as impala_net
    from mpirl.config import parse_config
    from mpirl.networks import SharedPolicyValueNet

    spec = EnvSpec((4,), np.dtype(np.float32), DiscreteSpec(2))
    for algo in ("impala", "a2c", "a3c", "gossip_a2c"):
        cfg = parse_config({"algo": algo, "env": {"id": "CartPole-v1"}, algo: {"shared_encoder": True}})
        net = make_networks(spec, (impala_net if algo == "impala" else a2c_net)(cfg.agent))
        assert isinstance(net, SharedPolicyValueNet), algo
