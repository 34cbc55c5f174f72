"""mpirl.functional.vtrace against a loop reference written in the notation of Espeholt et al. 2018 (after TorchBeast's vtrace_test.py)."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mpirl.functional import VTraceReturns, vtrace

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def vtrace_reference(log_rhos, discounts, rewards, values, bootstrap_value,
                     clip_rho=1.0, clip_c=1.0, clip_pg=1.0, lambda_=1.0):
    """Equation (1), one (s, b) at a time, in float64, summing to the end of the unroll:

    v_s = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} gamma_i) (prod_{i=s}^{t-1} c_i) delta_t V,
    delta_t V = rho_t (r_t + gamma_t V(x_{t+1}) - V(x_t)),  V(x_T) = bootstrap_value,
    rho_t = min(rho_bar, pi/mu), c_i = lambda min(c_bar, pi/mu); then
    A_s = min(rho_bar_pg, pi/mu) (r_s + gamma_s v_{s+1} - V(x_s)) with v_T = V(x_T).
    """
    log_rhos, discounts, rewards, values, bootstrap_value = (
        np.asarray(x, dtype=np.float64) for x in (log_rhos, discounts, rewards, values, bootstrap_value))
    T, B = log_rhos.shape

    def clip(x, threshold):
        return x if threshold is None else min(threshold, x)

    def V(t, b):
        return bootstrap_value[b] if t == T else values[t, b]

    vs = np.zeros((T, B))
    pg = np.zeros((T, B))
    for b in range(B):
        for s in range(T):
            v_s = V(s, b)
            for t in range(s, T):
                gamma_prod, c_prod = 1.0, 1.0
                for i in range(s, t):
                    gamma_prod *= discounts[i, b]
                    c_prod *= lambda_ * clip(math.exp(log_rhos[i, b]), clip_c)
                rho_t = clip(math.exp(log_rhos[t, b]), clip_rho)
                delta_t = rho_t * (rewards[t, b] + discounts[t, b] * V(t + 1, b) - V(t, b))
                v_s += gamma_prod * c_prod * delta_t
            vs[s, b] = v_s
        for s in range(T):
            v_sp1 = vs[s + 1, b] if s + 1 < T else bootstrap_value[b]
            pg_rho = clip(math.exp(log_rhos[s, b]), clip_pg)
            pg[s, b] = pg_rho * (rewards[s, b] + discounts[s, b] * v_sp1 - values[s, b])
    return vs, pg


def random_inputs(rng, T, B, log_rho_scale=1.0):
    """log_rhos spanning both sides of the thresholds; discounts with episode ends (zeros)."""
    log_rhos = rng.normal(0.0, log_rho_scale, (T, B))
    discounts = np.where(rng.random((T, B)) < 0.2, 0.0, rng.uniform(0.8, 1.0, (T, B)))
    rewards = rng.normal(0.0, 1.0, (T, B))
    values = rng.normal(0.0, 1.0, (T, B))
    bootstrap_value = rng.normal(0.0, 1.0, B)
    return log_rhos, discounts, rewards, values, bootstrap_value


def run(arrays, dtype, **kwargs):
    return vtrace(*(torch.as_tensor(a, dtype=dtype) for a in arrays), **kwargs)


def assert_matches_reference(arrays, dtype, clip_rho, clip_c, clip_pg, lambda_):
    # The reference sees exactly the (possibly float32-rounded) inputs vtrace sees.
    tensors = [torch.as_tensor(a, dtype=dtype) for a in arrays]
    out = vtrace(*tensors, clip_rho_threshold=clip_rho, clip_c_threshold=clip_c,
                 clip_pg_rho_threshold=clip_pg, lambda_=lambda_)
    ref_vs, ref_pg = vtrace_reference(*(t.numpy() for t in tensors), clip_rho, clip_c, clip_pg, lambda_)
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    for got, want in ((out.vs, ref_vs), (out.pg_advantages, ref_pg)):
        assert got.dtype == dtype and tuple(got.shape) == want.shape
        # Relative to the largest entry: unclipped traces can make some entries large.
        np.testing.assert_allclose(got.numpy(), want, rtol=tol, atol=tol * max(1.0, np.abs(want).max(initial=0)))


# ---------------------------------------------------------------- 1. against the paper's sum

SHAPES = [(1, 1), (1, 4), (6, 1), (7, 3), (20, 2)]
CLIPS = [(1.0, 1.0, 1.0), (None, None, None), (0.5, 0.3, 0.7), (2.0, 1.5, 3.0), (3.7, 1.0, 2.2), (1.0, 2.0, None)]


@pytest.mark.parametrize("lambda_", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clips", CLIPS, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matches_paper_sum(shape, clips, lambda_):
    rng = np.random.default_rng([shape[0], shape[1], CLIPS.index(clips), int(lambda_ * 10)])
    arrays = random_inputs(rng, *shape)
    for dtype in (torch.float32, torch.float64):
        assert_matches_reference(arrays, dtype, *clips, lambda_)


# ---------------------------------------------------------------- 2. by hand

def test_hand_computed_default_clipping():
    # rho = [2, 0.5] -> clipped rho = c = pg rho = [1, 0.5];  V(x_{t+1}) = [4, 5]
    # delta_0 = 1.0 * (1 + 0.9*4 - 3) = 1.6
    # delta_1 = 0.5 * (2 + 0.9*5 - 4) = 1.25
    # v_1 = 4 + 1.25 = 5.25
    # v_0 = 3 + 1.6 + 0.9 * 1.0 * 1.25 = 5.725
    # A_0 = 1.0 * (1 + 0.9*5.25 - 3) = 2.725
    # A_1 = 0.5 * (2 + 0.9*5 - 4) = 1.25
    out = vtrace(torch.log(torch.tensor([[2.0], [0.5]], dtype=torch.float64)),
                 torch.tensor([[0.9], [0.9]], dtype=torch.float64),
                 torch.tensor([[1.0], [2.0]], dtype=torch.float64),
                 torch.tensor([[3.0], [4.0]], dtype=torch.float64),
                 torch.tensor([5.0], dtype=torch.float64))
    np.testing.assert_allclose(out.vs.numpy(), [[5.725], [5.25]], rtol=1e-12)
    np.testing.assert_allclose(out.pg_advantages.numpy(), [[2.725], [1.25]], rtol=1e-12)


def test_hand_computed_episode_end_lambda_and_unclipped_pg():
    # rho = [0.5, 1.5, 1]; rho_bar = c_bar = 1, lambda = 0.5, no pg clipping:
    # clipped rho = [0.5, 1, 1], c = 0.5 * [0.5, 1, 1] = [0.25, 0.5, 0.5], pg rho = [0.5, 1.5, 1]
    # gamma = [0.5, 0 (episode ends at t=1), 0.5];  V(x_{t+1}) = [1, 2, 4]
    # delta_0 = 0.5 * (1 + 0.5*1 - 0) = 0.75
    # delta_1 = 1.0 * (-1 + 0*2 - 1) = -2
    # delta_2 = 1.0 * (2 + 0.5*4 - 2) = 2
    # v_2 = 2 + 2 = 4
    # v_1 = 1 + (-2) + 0 * 0.5 * (4 - 2) = -1
    # v_0 = 0 + 0.75 + 0.5 * 0.25 * (-1 - 1) = 0.5
    # A_0 = 0.5 * (1 + 0.5*(-1) - 0) = 0.25
    # A_1 = 1.5 * (-1 + 0*4 - 1) = -3
    # A_2 = 1.0 * (2 + 0.5*4 - 2) = 2   (v_3 = bootstrap = 4)
    out = vtrace(torch.log(torch.tensor([[0.5], [1.5], [1.0]])),
                 torch.tensor([[0.5], [0.0], [0.5]]),
                 torch.tensor([[1.0], [-1.0], [2.0]]),
                 torch.tensor([[0.0], [1.0], [2.0]]),
                 torch.tensor([4.0]),
                 clip_pg_rho_threshold=None, lambda_=0.5)
    np.testing.assert_allclose(out.vs.numpy(), [[0.5], [-1.0], [4.0]], rtol=1e-6)
    np.testing.assert_allclose(out.pg_advantages.numpy(), [[0.25], [-3.0], [2.0]], rtol=1e-6)


# ---------------------------------------------------------------- 3. on-policy: n-step returns

@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (30, 4)], ids=str)
def test_on_policy_is_n_step_bootstrapped_return(shape):
    T, B = shape
    rng = np.random.default_rng(T * 100 + B)
    _, discounts, rewards, values, bootstrap_value = random_inputs(rng, T, B)
    # G_s = sum_{t=s}^{T-1} (prod_{i<t} gamma_i) r_t + (prod_{i<T} gamma_i) V(x_T), accumulated forwards.
    returns = np.zeros((T, B))
    for b in range(B):
        for s in range(T):
            g, scale = 0.0, 1.0
            for t in range(s, T):
                g += scale * rewards[t, b]
                scale *= discounts[t, b]
            returns[s, b] = g + scale * bootstrap_value[b]
    out = run((np.zeros((T, B)), discounts, rewards, values, bootstrap_value), torch.float64)
    np.testing.assert_allclose(out.vs.numpy(), returns, rtol=1e-10, atol=1e-10)
    # On-policy, r_s + gamma_s G_{s+1} = G_s, so the advantage is G_s - V(x_s).
    np.testing.assert_allclose(out.pg_advantages.numpy(), returns - values, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- 4. random shapes and thresholds

thresholds = st.one_of(st.none(), st.floats(0.0, 3.0))


@settings(max_examples=50, deadline=None)
@given(data=st.data(), T=st.integers(1, 12), B=st.integers(1, 5),
       clip_rho=thresholds, clip_c=thresholds, clip_pg=thresholds, lambda_=st.floats(0.0, 1.0),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_random_shapes_and_thresholds(data, T, B, clip_rho, clip_c, clip_pg, lambda_, dtype):
    def arr(shape, lo, hi):
        return data.draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi)))

    discounts = data.draw(hnp.arrays(np.float64, (T, B), elements=st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0])))
    arrays = (arr((T, B), -2.0, 2.0), discounts, arr((T, B), -10.0, 10.0), arr((T, B), -10.0, 10.0),
              arr((B,), -10.0, 10.0))
    assert_matches_reference(arrays, dtype, clip_rho, clip_c, clip_pg, lambda_)


# ---------------------------------------------------------------- 5. contract

def good_inputs(T=5, B=4):
    return dict(log_rhos=torch.zeros(T, B), discounts=torch.full((T, B), 0.9), rewards=torch.ones(T, B),
                values=torch.zeros(T, B), bootstrap_value=torch.zeros(B))


@pytest.mark.parametrize("name", ["discounts", "rewards", "values"])
def test_wrong_shape_names_the_argument(name):
    kwargs = good_inputs()
    kwargs[name] = torch.zeros(5, 3)
    with pytest.raises(ValueError, match=rf"vtrace: {name} has shape \(5, 3\), expected \(T, B\) = \(5, 4\) like log_rhos"):
        vtrace(**kwargs)


@pytest.mark.parametrize("shape", [(5,), (5, 4, 1), ()], ids=str)
def test_log_rhos_must_be_2d(shape):
    kwargs = good_inputs()
    kwargs["log_rhos"] = torch.zeros(shape)
    with pytest.raises(ValueError, match=r"vtrace: log_rhos must be 2-D"):
        vtrace(**kwargs)


@pytest.mark.parametrize("shape", [(3,), (1, 4), (5, 4), ()], ids=str)
def test_bootstrap_value_must_be_b(shape):
    kwargs = good_inputs()
    kwargs["bootstrap_value"] = torch.zeros(shape)
    with pytest.raises(ValueError, match=r"vtrace: bootstrap_value has shape .*, expected \(B,\) = \(4,\)"):
        vtrace(**kwargs)


@pytest.mark.parametrize("name", ["log_rhos", "discounts", "rewards", "values", "bootstrap_value"])
def test_non_float_dtype_is_rejected(name):
    kwargs = good_inputs()
    kwargs[name] = kwargs[name].long()
    with pytest.raises(ValueError, match=rf"vtrace: {name} must have a floating-point dtype, got torch.int64"):
        vtrace(**kwargs)


def test_non_tensor_is_rejected():
    kwargs = good_inputs()
    kwargs["rewards"] = np.ones((5, 4))
    with pytest.raises(TypeError, match=r"vtrace: rewards must be a torch.Tensor, got ndarray"):
        vtrace(**kwargs)


@pytest.mark.parametrize("name", ["clip_rho_threshold", "clip_c_threshold", "clip_pg_rho_threshold"])
@pytest.mark.parametrize("value", [-0.1, float("nan")])
def test_bad_threshold_is_rejected(name, value):
    with pytest.raises(ValueError, match=rf"vtrace: {name} must be None \(no clipping\) or >= 0"):
        vtrace(**good_inputs(), **{name: value})


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_lambda_outside_unit_interval_is_rejected(value):
    with pytest.raises(ValueError, match=r"vtrace: lambda_ must be in \[0, 1\]"):
        vtrace(**good_inputs(), lambda_=value)


def test_no_gradient_and_inputs_untouched():
    rng = np.random.default_rng(7)
    tensors = [torch.tensor(a, dtype=torch.float32, requires_grad=True) for a in random_inputs(rng, 6, 3)]
    before = [t.detach().clone() for t in tensors]
    with torch.enable_grad():
        out = vtrace(*tensors, clip_rho_threshold=None, clip_c_threshold=None, clip_pg_rho_threshold=None)
    assert isinstance(out, VTraceReturns) and out._fields == ("vs", "pg_advantages")
    for x in out:
        assert not x.requires_grad and x.grad_fn is None
    for t, b in zip(tensors, before):
        assert torch.equal(t.detach(), b) and t.grad is None


def test_zero_length_unroll_gives_empty_outputs():
    out = vtrace(**good_inputs(T=0))
    assert out.vs.shape == (0, 4) and out.pg_advantages.shape == (0, 4)


# ---------------------------------------------------------------- 6. import surface

def test_top_level_lazy_export():
    import mpirl
    import mpirl.functional

    assert {"vtrace", "VTraceReturns"} <= set(mpirl.__all__) and "vtrace" in dir(mpirl)
    assert mpirl.vtrace is vtrace and mpirl.VTraceReturns is VTraceReturns
    from mpirl import VTraceReturns as top_returns, vtrace as top_vtrace
    assert top_vtrace is vtrace is mpirl.functional.vtrace and top_returns is VTraceReturns
    with pytest.raises(AttributeError, match="no_such_name"):
        mpirl.no_such_name


def test_import_mpirl_does_not_import_torch():
    code = "import mpirl, sys; assert 'torch' not in sys.modules, 'import mpirl imported torch'"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
