"""make_optimizer: the one place the torch learners build their optimizers."""
import torch

from mpirl.optim import make_optimizer


def params():
    torch.manual_seed(0)
    return [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(2))]


def test_adam_fused_by_default_and_foreach_when_asked():
    fused = make_optimizer("adam", params(), 1e-3)
    assert fused.defaults["fused"] is True  # torch 2.13 has fused Adam on CPU
    plain = make_optimizer("adam", params(), 1e-3, fused=False)
    assert not plain.defaults["fused"] and plain.defaults["foreach"] is True


def test_rmsprop_keys_reach_the_optimizer():
    opt = make_optimizer("rmsprop", params(), 2e-3, rmsprop_alpha=0.9, rmsprop_eps=1e-3)
    assert isinstance(opt, torch.optim.RMSprop)
    assert opt.defaults["lr"] == 2e-3 and opt.defaults["alpha"] == 0.9 and opt.defaults["eps"] == 1e-3
    assert opt.defaults["centered"] is False and opt.defaults["foreach"] is True


def test_foreach_adam_steps_exactly_like_torch_adam_foreach():
    # The IMPALA and actor-critic learners were tuned on foreach Adam: routing them through
    # make_optimizer(fused=False) must not change a single bit of their updates.
    a, b = params(), params()
    ours, ref = make_optimizer("adam", a, 1e-2, fused=False), torch.optim.Adam(b, lr=1e-2, foreach=True)
    for step in range(5):
        for ps, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            sum((p * (step + 1.0)).square().sum() for p in ps).backward()
            opt.step()
    assert all(torch.equal(x, y) for x, y in zip(a, b))
