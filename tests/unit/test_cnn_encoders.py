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
