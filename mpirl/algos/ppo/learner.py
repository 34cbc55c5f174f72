"""The PPO learner: GAE on one rank's unroll, then epochs of minibatch steps with averaged gradients.

It does not know about ranks or MPI. Two hooks hold the group: ``grad_reduce``
(an :class:`~mpirl.learner.AllreduceMean` whose tail carries each
minibatch's KL estimate, so every replica takes the same early-stop
decision) and ``sum_reduce(array)``, which sums a small float64 array over
the group in place (the advantages' global mean and variance, and the
moments of the observation and return normalisers). Without them it is
single-process PPO.
"""
from __future__ import annotations

import numpy as np
import torch

from mpirl.algos._schedules import linear_anneal, lr_at
from mpirl.functional.ppo import gae, ppo_loss
from mpirl.learner import Learner, UsesLearner
from mpirl.networks.normalize import RewardScaler, moments

#: Values each minibatch's gradient carries in the Allreduce tail.
TAIL = ("approx_kl",)


class PPOLearner(UsesLearner):
    """Clipped-surrogate updates of a policy-value network ``net`` from ``[T+1, B]`` unrolls.

    ``rng`` (numpy Generator) shuffles the samples into minibatches. Every
    replica must run the same number of minibatches: each rank splits its own
    samples into ``num_minibatches`` parts, whatever their count.
    """

    def __init__(self, a, net: torch.nn.Module, total_env_steps: int, rng: np.random.Generator,
                 grad_reduce=None, sum_reduce=None, max_nonfinite: int = 0, num_envs: int = 1,
                 device: str = "cpu"):
        self.a, self.total_env_steps, self.rng = a, total_env_steps, rng
        self.entropy_cost = a.entropy_cost
        self.learner = Learner(net, optimizer=a.optimizer, lr=a.lr, max_grad_norm=a.max_grad_norm,
                               max_nonfinite=max_nonfinite, fused=False, rmsprop_alpha=a.rmsprop_alpha,
                               rmsprop_eps=a.rmsprop_eps, grad_reduce=grad_reduce,
                               flat_grads=grad_reduce is None, device=device)
        self.net, self.dist = self.learner.net, self.learner.net.dist
        self.flat = self.learner.flat
        self.grad_reduce, self.sum_reduce = grad_reduce, sum_reduce
        self.obs_norm = getattr(self.net, "obs_norm", None)  # the learner's (the acting copy follows it)
        self.reward_scaler = (RewardScaler(num_envs, a.gamma, a.clip_reward, sum_reduce=sum_reduce)
                              if a.norm_reward else None)

    def set_lr_for(self, env_steps: int) -> None:
        """Use the annealed learning rate and entropy cost of ``env_steps`` (all ranks) for the next iteration."""
        self.learner.set_lr(lr_at(self.a, env_steps, self.total_env_steps))
        self.entropy_cost = linear_anneal(self.a.entropy_cost, self.a.entropy_cost_final, env_steps,
                                          self.total_env_steps)

    def samples(self, unroll: dict) -> dict:
        """The unroll's real steps (reset steps dropped) as flat tensors, with GAE advantages and targets."""
        a = self.a
        t = self.learner.tensors({k: unroll[k] for k in ("obs", "action", "policy_params", "reset", "reward",
                                                         "terminated")})
        obs, actions = t["obs"], t["action"]
        T = actions.shape[0]
        with torch.no_grad():
            _, values = self.net(obs)
            log_old = self.dist.log_prob(t["policy_params"], actions)
        reset = t["reset"].bool()
        adv = gae(t["reward"], values, t["terminated"], reset, a.gamma, a.gae_lambda)
        real = ~reset.reshape(-1)
        flat = {"obs": obs[:T].reshape(T * obs.shape[1], *obs.shape[2:]), "action": actions.reshape(-1),
                "log_old": log_old.reshape(-1), "value_old": values[:T].reshape(-1),
                "adv": adv.advantages.reshape(-1), "ret": adv.returns.reshape(-1)}
        if actions.ndim > 2:  # continuous actions keep their own dimension
            flat["action"] = actions.reshape(-1, *actions.shape[2:])
        return {k: v[real] for k, v in flat.items()}

    def _normalised(self, adv: torch.Tensor) -> torch.Tensor:
        sums = np.array([adv.numel(), float(adv.sum()), float((adv.double() ** 2).sum())], np.float64)
        if self.sum_reduce is not None:
            self.sum_reduce(sums)
        n, s, sq = sums
        mean = s / max(n, 1.0)
        std = np.sqrt(max(sq / max(n, 1.0) - mean * mean, 0.0) * n / max(n - 1.0, 1.0))
        return (adv - mean) / (std + 1e-8)

    def update(self, unroll: dict) -> dict:
        """One PPO iteration on this rank's unroll; returns the means of the loss parts over applied steps."""
        a = self.a
        if self.reward_scaler is not None:
            unroll = dict(unroll, reward=self.reward_scaler(unroll["reward"], unroll["reset"]))
        s = self.samples(unroll)
        if a.norm_adv:
            s["adv"] = self._normalised(s["adv"])
        n = len(s["ret"])
        sums = {k: 0.0 for k in ("pg_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "grad_norm")}
        steps, stopped = 0, False
        for _ in range(a.update_epochs):
            for idx in np.array_split(self.rng.permutation(n), a.num_minibatches):
                out = self._loss(s, torch.from_numpy(idx).to(self.learner.device))
                kl = self._backward(out)
                if a.target_kl is not None and kl > 1.5 * a.target_kl:
                    stopped = True  # every replica saw the same averaged KL: all stop here
                    break
                stats = self.learner.apply(float(out.loss.detach()))
                steps += 1
                for k in ("pg_loss", "value_loss", "entropy", "clip_fraction"):
                    sums[k] += float(getattr(out, k))
                sums["approx_kl"] += kl
                sums["grad_norm"] += stats["grad_norm"]
            if stopped:
                break
        if self.obs_norm is not None:
            self._update_obs_norm(s["obs"])
        self.learner.weights()  # the acting network (a CPU copy when the learner has a device) follows
        means = {k: v / max(steps, 1) for k, v in sums.items()}
        var = float(s["ret"].var()) if n > 1 else float("nan")
        explained = 1.0 - float((s["ret"] - s["value_old"]).var()) / var if var > 0 else float("nan")
        return {**means, "entropy_cost": self.entropy_cost, "minibatch_steps": steps, "kl_stopped": int(stopped),
                "explained_variance": explained,
                "lr": self.learner.lr, "nonfinite_skipped": self.learner.guard.metrics()["nonfinite_skipped"]}

    def _update_obs_norm(self, obs: torch.Tensor) -> None:
        # After the epochs: the iteration acted and learned under one set of statistics, so the behaviour
        # log-probabilities stay those of the network being trained.
        sums = moments(obs.cpu().numpy())
        if self.sum_reduce is not None:
            self.sum_reduce(sums)
        self.obs_norm.update(sums)

    def _loss(self, s: dict, idx: torch.Tensor):
        a = self.a
        params, values = self.net(s["obs"][idx])
        log_pi, entropy = self.dist.log_prob_and_entropy(params, s["action"][idx])
        return ppo_loss(log_pi, s["log_old"][idx], s["adv"][idx], values, s["value_old"][idx], s["ret"][idx],
                        entropy, a.clip_coef, a.value_cost, self.entropy_cost,
                        value_clip=a.clip_coef if a.clip_vloss else None)

    def _backward(self, out) -> float:
        """Gradient of one minibatch, averaged over the group; returns the group's mean KL estimate."""
        self.learner.backward(out.loss)
        if self.grad_reduce is None:
            return float(out.approx_kl)
        self.grad_reduce.tail[0] = float(out.approx_kl)
        self.grad_reduce(self.learner.grad)
        return float(self.grad_reduce.tail[0]) / self.grad_reduce.world.size

    def state_dict(self) -> dict:
        """Network (with its observation statistics), optimizer (with its current learning rate) and the reward
        scaler's statistics as named arrays."""
        extra = self.reward_scaler.state_arrays() if self.reward_scaler is not None else {}
        return {**self.learner.state_dict("net"), **extra}

    def load_state_dict(self, arrays: dict) -> None:
        """Restore what :meth:`state_dict` saved (the flat views stay intact)."""
        self.learner.load_state_dict(arrays, "net")
        if self.reward_scaler is not None and "reward_norm/var" in arrays:
            self.reward_scaler.load_state_arrays(arrays)

    def rank_state(self) -> dict:
        """This rank's own state for the checkpoint (JSON): the reward scaler's running discounted returns."""
        return {"reward_returns": self.reward_scaler.returns.tolist()} if self.reward_scaler is not None else {}

    def load_rank_state(self, extra: dict) -> None:
        """Restore what :meth:`rank_state` saved for this rank (absent on a fresh run)."""
        if self.reward_scaler is not None and "reward_returns" in extra:
            self.reward_scaler.returns[:] = extra["reward_returns"]
