"""mpirl.functional.ppo against loop references in the notation of Schulman et al. 2017 (equations 7-12)."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mpirl.functional.ppo import gae, ppo_loss


def gae_reference(rewards, values, terminated, reset, gamma, lam):
    """Equation (11), one (t, b) at a time in float64, summed forward over the rest of t's episode:

    A_t = sum_{l >= 0} (gamma lambda)^l delta_{t+l},  delta_t = r_t + gamma V(s_{t+1}) - V(s_t),
    where V(s_{t+1}) counts only if step t did not terminate, and the sum stops after the step that
    ended the episode (terminated or truncated) or at the end of the unroll. Reset steps: A_t = 0.
    """
    rewards, values = np.asarray(rewards, np.float64), np.asarray(values, np.float64)
    T, B = rewards.shape
    adv = np.zeros((T, B))
    for b in range(B):
        for t in range(T):
            if reset[t, b]:
                continue
            total, weight = 0.0, 1.0
            for k in range(t, T):
                bootstrap = 0.0 if terminated[k, b] else gamma * values[k + 1, b]
                total += weight * (rewards[k, b] + bootstrap - values[k, b])
                if terminated[k, b] or (k + 1 < T and reset[k + 1, b]):  # the episode ended at step k
                    break
                weight *= gamma * lam
            adv[t, b] = total
    return adv


def unroll(seed, T, B, p_end=0.2):
    """A random unroll obeying next-step autoreset: a reset step follows every episode end."""
    rng = np.random.default_rng(seed)
    term = np.zeros((T, B), bool)
    trunc = np.zeros((T, B), bool)
    reset = np.zeros((T, B), bool)
    reset[0] = rng.random(B) < p_end  # the previous unroll may have ended an episode at its last step
    for t in range(T):
        if t > 0:
            reset[t] = term[t - 1] | trunc[t - 1]
        if not reset[t].all():
            end = (rng.random(B) < p_end) & ~reset[t]
            kind = rng.random(B) < 0.5
            term[t], trunc[t] = end & kind, end & ~kind
    rewards = rng.normal(size=(T, B)) * ~reset
    values = rng.normal(size=(T + 1, B))
    return rewards, values, term, trunc, reset


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.integers(1, 12), B=st.integers(1, 4),
       gamma=st.sampled_from([0.0, 0.9, 0.99, 1.0]), lam=st.sampled_from([0.0, 0.5, 0.95, 1.0]))
def test_gae_matches_the_sum_of_discounted_td_errors(seed, T, B, gamma, lam):
    rewards, values, term, trunc, reset = unroll(seed, T, B)
    out = gae(torch.tensor(rewards, dtype=torch.float64), torch.tensor(values), torch.tensor(term),
              torch.tensor(reset), gamma, lam)
    expected = gae_reference(rewards, values, term, reset, gamma, lam)
    np.testing.assert_allclose(out.advantages.numpy(), expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out.returns.numpy(), expected + values[:T], rtol=1e-10, atol=1e-10)


def test_gae_lambda_one_is_the_bootstrapped_return_and_zero_the_td_error():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [0.25], [0.125], [4.0]])
    none = torch.zeros(3, 1, dtype=torch.bool)
    full = gae(rewards, values, none, none, 0.5, 1.0)
    # R_0 = 1 + 0.5 * 2 + 0.25 * 3 + 0.125 * V(x_3)
    assert full.returns[0, 0].item() == pytest.approx(1 + 1 + 0.75 + 0.5)
    td = gae(rewards, values, none, none, 0.5, 0.0)
    assert td.advantages[:, 0].tolist() == pytest.approx([1 + 0.125 - 0.5, 2 + 0.0625 - 0.25, 3 + 2 - 0.125])


def test_gae_truncation_bootstraps_from_the_final_observation_and_termination_does_not():
    rewards = torch.tensor([[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    values = torch.tensor([[0.0, 0.0], [10.0, 10.0], [7.0, 7.0], [0.0, 0.0]])  # V(x_1) = final observation
    term = torch.tensor([[False, True], [False, False], [False, False]])
    trunc_or_term_reset = torch.tensor([[False, False], [True, True], [False, False]])
    out = gae(rewards, values, term, trunc_or_term_reset, 0.9, 0.95)
    assert out.advantages[0].tolist() == pytest.approx([1 + 0.9 * 10, 1.0])  # truncated | terminated
    assert out.advantages[1].tolist() == [0.0, 0.0]  # reset steps
    assert out.returns[1].tolist() == [10.0, 10.0]  # their targets are V itself: no value loss


def test_gae_checks_shapes():
    with pytest.raises(ValueError, match=r"values must be \[T\+1, B\]"):
        gae(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3, 2), 0.99, 0.95)


def ppo_loss_reference(log_pi, log_pi_old, adv, v, v_old, ret, ent, eps, c1, c2, value_clip):
    """Equations (7) and (9), one sample at a time in float64:

    L^CLIP = E[min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)],  r_t = pi(a_t|s_t) / pi_old(a_t|s_t),
    L^VF = E[(V(s_t) - V_t^targ)^2] / 2 (clipped around V_old when value_clip is set),
    loss = -(L^CLIP - c1 L^VF + c2 S).
    """
    n = len(log_pi)
    clip_terms, vf_terms = [], []
    for i in range(n):
        r = np.exp(log_pi[i] - log_pi_old[i])
        clip_terms.append(min(r * adv[i], min(max(r, 1 - eps), 1 + eps) * adv[i]))
        vf = (v[i] - ret[i]) ** 2
        if value_clip is not None:
            vc = v_old[i] + min(max(v[i] - v_old[i], -value_clip), value_clip)
            vf = max(vf, (vc - ret[i]) ** 2)
        vf_terms.append(0.5 * vf)
    l_clip, l_vf, s = np.mean(clip_terms), np.mean(vf_terms), np.mean(ent)
    return -(l_clip - c1 * l_vf + c2 * s)


@pytest.mark.parametrize("value_clip", [None, 0.2])
@pytest.mark.parametrize("seed", range(5))
def test_ppo_loss_matches_the_papers_objective(seed, value_clip):
    rng = np.random.default_rng(seed)
    n = 64
    log_pi_old = rng.normal(-1.0, 0.3, n)
    log_pi = log_pi_old + rng.normal(0, 0.3, n)  # ratios on both sides of the clip range
    adv, v_old, ret, ent = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n), rng.random(n)
    v = v_old + rng.normal(0, 0.4, n)
    t = [torch.tensor(x) for x in (log_pi, log_pi_old, adv, v, v_old, ret, ent)]
    out = ppo_loss(*t, clip_coef=0.2, value_cost=0.5, entropy_cost=0.01, value_clip=value_clip)
    expected = ppo_loss_reference(log_pi, log_pi_old, adv, v, v_old, ret, ent, 0.2, 0.5, 0.01, value_clip)
    assert out.loss.item() == pytest.approx(expected, rel=1e-10)
    ratio = np.exp(log_pi - log_pi_old)
    assert out.clip_fraction.item() == pytest.approx(np.mean(np.abs(ratio - 1) > 0.2))
    assert out.approx_kl.item() == pytest.approx(np.mean((ratio - 1) - np.log(ratio)))


def test_clipped_samples_carry_no_policy_gradient():
    # A positive advantage with r > 1 + eps (and a negative one with r < 1 - eps) is clipped: zero gradient.
    log_pi_old = torch.zeros(4, dtype=torch.float64)
    log_pi = torch.tensor([0.5, -0.5, 0.05, -0.05], dtype=torch.float64, requires_grad=True)
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    zeros = torch.zeros(4, dtype=torch.float64)
    ppo_loss(log_pi, log_pi_old, adv, zeros, zeros, zeros, zeros, 0.2, 0.5, 0.0).loss.backward()
    assert log_pi.grad[:2].tolist() == [0.0, 0.0]
    assert (log_pi.grad[2:].abs() > 0).all()


def test_ppo_loss_checks_shapes():
    x = torch.zeros(4)
    with pytest.raises(ValueError, match="advantages must have log_pi's shape"):
        ppo_loss(x, x, torch.zeros(3), x, x, x, x, 0.2, 0.5, 0.0)
