"""A throw-away encoder and a throw-away action distribution, defined in this file alone, train impala and a2c.

Nothing under ``mpirl/algos/`` knows them: the job names them as
``module:attribute`` (``impala.encoder``, ``impala.distribution``) and every
rank imports this file from ``PYTHONPATH``. The distribution has one more
parameter than actions (a learned log-temperature), so the policy head's
shape in the checkpoint shows it was used; the encoder's own layer name
(``gated``) shows the encoder was.
"""
import os

import numpy as np
import pytest
import torch
from torch import nn

from mpirl import checkpoint

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE = os.path.splitext(os.path.basename(__file__))[0]
SMALL = ["--set", "log.interval_s=0", "--set", "log.tensorboard=false"]


class GatedEncoder(nn.Module):
    """Features ``tanh(W x) * sigmoid(G x)`` of the flattened observation."""

    def __init__(self, obs_dim: int, width: int):
        super().__init__()
        self.gated = nn.Linear(obs_dim, 2 * width)
        self.out_dim = width

    def forward(self, obs):
        h = self.gated(obs.reshape(obs.shape[0], -1).float())
        a, g = h.chunk(2, dim=-1)
        return torch.tanh(a) * torch.sigmoid(g)


def gated_encoder(env_spec, cfg):
    """The encoder factory the job names: ``fn(env_spec, network_cfg) -> module with out_dim``."""
    return GatedEncoder(int(np.prod(env_spec.obs_shape)), cfg.hidden[-1])


class TemperedCategorical:
    """A softmax over ``n`` actions of ``logits / exp(log_t)``; parameters: n logits and one log-temperature."""

    supports = ("discrete",)

    def __init__(self, action_spec):
        self.n = int(action_spec.n)
        self.num_params = self.n + 1

    def _log_probs(self, params):
        logits, log_t = params[..., : self.n], params[..., self.n:].clamp(-3.0, 3.0)
        return torch.log_softmax(logits / log_t.exp(), dim=-1)

    def log_prob(self, params, actions):
        return self._log_probs(params).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def log_prob_and_entropy(self, params, actions):
        lp = self._log_probs(params)
        return lp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), -(lp.exp() * lp).sum(-1)

    def entropy(self, params):
        lp = self._log_probs(params)
        return -(lp.exp() * lp).sum(-1)

    def mode(self, params):
        return params[..., : self.n].argmax(dim=-1)

    def sample(self, params, rng):
        lp = self._log_probs(torch.from_numpy(params)).numpy()
        return np.argmax(lp - np.log(-np.log(rng.random(lp.shape))), axis=-1)


@pytest.mark.parametrize("algo, n", [("impala", 3), ("a2c", 2)])
def test_user_encoder_and_distribution_train(run_mpirl, write_job, tmp_path, algo, n):
    job = write_job(f"""\
algo = "{algo}"
seed = 0
total_env_steps = 3000

[env]
id = "CartPole-v1"
num_envs = 4

[eval]
episodes = 3

[{algo}]
hidden = [16]
encoder = "{MODULE}:gated_encoder"
distribution = "{MODULE}:TemperedCategorical"
""")
    run = str(tmp_path / "run")
    env = {"PYTHONPATH": os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")])}
    p = run_mpirl(["train", job, "--run-dir", run, *SMALL], n=n, timeout=180, env=env)
    assert p.returncode == 0, p.stderr
    ck = checkpoint.load(os.path.join(run, "checkpoints", "latest.h5"))
    assert ck.counters["env_steps"] >= 3000 and ck.counters["updates"] > 0
    # The towers are Sequential(encoder, head): the encoder's layer, then a head of n actions + 1 temperature.
    assert ck.state["net/actor.0.gated.weight"].shape == (32, 4)
    assert ck.state["net/actor.1.weight"].shape == (2 + 1, 16)
    assert ck.state["net/critic.1.weight"].shape == (1, 16)
    assert np.isfinite(ck.state["net/actor.1.weight"]).all()
    # mpirl eval rebuilds the same network from the stored config (the module is importable here).
    q = run_mpirl(["eval", run, "--episodes", "2"], n=None, timeout=120, env=env)
    assert q.returncode == 0, q.stderr


def test_unknown_encoder_is_a_usage_error(run_mpirl, write_job, tmp_path):
    job = write_job("""\
algo = "impala"
total_env_steps = 1000

[env]
id = "CartPole-v1"

[impala]
encoder = "no_such_module_here:fn"
""")
    p = run_mpirl(["train", job, "--run-dir", str(tmp_path / "run")], n=2, timeout=60)
    assert p.returncode == 2, p.stderr
    line = p.stderr.strip().splitlines()[0]
    assert "encoder 'no_such_module_here:fn'" in line and "impala.encoder" in line, line
