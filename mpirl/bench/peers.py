"""`mpirl bench peers`: an mpirl job and stable-baselines3 PPO on the same task, side by side in one session.

The question a user asks before switching: how long from launch until the
training return mean (last 100 episodes) reaches ``--threshold``, start-up
included? Each repeat runs the mpirl job (``mpirun -n --ranks``, seeds
0..R-1) and then stable-baselines3 PPO (``--sb3-seconds`` at most) in a fresh
process, alternating, so both see the same machine load. SB3 runs the
setting measured for MinAtar in ``../shared/README.md``: the MinAtar network
(one 3x3 conv of 16 filters, 128 units, shared by policy and value), 8
DummyVecEnv copies, ``n_steps`` 128, 4 epochs, Adam 5e-4, SB3's other
defaults but the minibatch size (``--sb3-batch-size``, 256: SB3's default
of 64 ran at 2.2K env steps/s here, 256 at 4.5K, 512 and 1,024 no faster;
the reference's 7.6K was not reached by any). For an environment with Box
actions (MuJoCo) SB3 runs the continuous-control setting of the same
README instead: cleanRL's (MlpPolicy 64x64 tanh, 1 env, ``n_steps`` 2048, 10
epochs, minibatches of 64, Adam 3e-4, no entropy bonus) under
VecNormalize, for ``--sb3-steps`` env steps; the mpirl job runs its own
``total_env_steps``, and the table adds each side's wall time and final
training return mean. stable-baselines3 is a peer, not a dependency: the bench needs it
installed (``pip install stable-baselines3``). Writes ``peers.csv``,
``peers.json`` and ``peers.png`` (return against launch time) into
``--out-dir``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from mpirl.bench.output import add_out_dir, bench_parser, print_written, write_csv_json
from mpirl.bench.runs import launch, time_to_return


def parser() -> argparse.ArgumentParser:
    """The ``mpirl bench peers`` option parser."""
    p = bench_parser("peers", __doc__)
    p.add_argument("--job", default="jobs/minatar_breakout_impala.toml", help="mpirl job (default %(default)s)")
    p.add_argument("--ranks", type=int, default=3, help="mpirun -n for the job (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each, seeds 0..R-1 unless --first-seed (default %(default)s)")
    p.add_argument("--first-seed", type=int, default=0,
                   help="seed of the first repeat: seeds F..F+R-1, to add repeats to a series (default %(default)s)")
    p.add_argument("--threshold", type=float, default=20.0, help="training return mean to reach (default 20)")
    p.add_argument("--sb3-seconds", type=float, default=600.0, help="wall-time budget of each SB3 run (default %(default)s)")
    p.add_argument("--sb3-batch-size", type=int, default=256,
                   help="SB3 PPO minibatch size of the MinAtar setting (default %(default)s)")
    p.add_argument("--sb3-steps", type=int, default=1_000_000,
                   help="env steps of each SB3 run in the continuous (Box actions) setting (default %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override for the mpirl job (repeatable; default none)")
    add_out_dir(p, "peers")
    return p


def sb3_ppo(env_id: str, seed: int, threshold: float, seconds: float, batch_size: int = 256,
            steps: int = 10**9) -> dict:
    """One SB3 PPO run in this process; the training return curve against seconds since ``t0`` (launch).

    Box actions: the continuous setting (see the module docstring) for ``steps`` env steps.
    """
    t0 = float(os.environ.get("MPIRL_PEER_T0", time.time()))
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from torch import nn

    from mpirl.envs import register_family

    register_family(env_id)

    class MinAtarNet(BaseFeaturesExtractor):
        def __init__(self, space):
            super().__init__(space, 128)
            c = space.shape[2]
            self.conv = nn.Sequential(nn.Conv2d(c, 16, 3), nn.ReLU(), nn.Flatten())
            n = self.conv(torch.zeros(1, c, *space.shape[:2])).shape[1]
            self.fc = nn.Sequential(nn.Linear(n, 128), nn.ReLU())

        def forward(self, obs):
            return self.fc(self.conv(obs.float().permute(0, 3, 1, 2)))

    curve = []

    class Watch(BaseCallback):
        def _on_step(self):
            buf = self.model.ep_info_buffer
            if buf and len(buf) >= 10:
                mean = float(sum(e["r"] for e in buf) / len(buf))
                now = time.time() - t0
                if not curve or now - curve[-1][0] >= 1.0:
                    curve.append((now, self.num_timesteps, mean))
                if (mean >= threshold and not continuous) or now >= seconds:
                    curve.append((now, self.num_timesteps, mean))
                    return False
            return True

    import gymnasium as gym

    probe = gym.make(env_id)
    continuous = isinstance(probe.action_space, gym.spaces.Box)
    probe.close()
    if continuous:
        from stable_baselines3.common.vec_env import VecNormalize

        envs = VecNormalize(make_vec_env(env_id, n_envs=1, seed=seed), gamma=0.99)
        model = PPO("MlpPolicy", envs, n_steps=2048, batch_size=64, n_epochs=10, learning_rate=3e-4, gamma=0.99,
                    gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, seed=seed,
                    verbose=0, policy_kwargs={"activation_fn": nn.Tanh, "net_arch": {"pi": [64, 64], "vf": [64, 64]}})
        model.learn(total_timesteps=steps, callback=Watch())
        buf = model.ep_info_buffer
        final = float(sum(e["r"] for e in buf) / len(buf)) if buf else float("nan")
        curve.append((time.time() - t0, model.num_timesteps, final))
        reached = next((t for t, _, r in curve if r >= threshold), float("inf"))
        return {"curve": curve, "launch_to_return_s": reached, "env_steps": model.num_timesteps,
                "final_return": final, "wall_s": time.time() - t0}
    envs = make_vec_env(env_id, n_envs=8, seed=seed)
    model = PPO("CnnPolicy", envs, n_steps=128, n_epochs=4, learning_rate=5e-4, batch_size=batch_size,
                seed=seed, verbose=0,
                policy_kwargs={"features_extractor_class": MinAtarNet, "normalize_images": False,
                               "share_features_extractor": True})
    model.learn(total_timesteps=10**9, callback=Watch())
    reached = next((t for t, _, r in curve if r >= threshold), float("inf"))
    return {"curve": curve, "launch_to_return_s": reached, "env_steps": curve[-1][1] if curve else 0,
            "final_return": curve[-1][2] if curve else float("nan"), "wall_s": time.time() - t0}


def _sb3_subprocess(env_id: str, seed: int, threshold: float, seconds: float, batch_size: int, steps: int) -> dict:
    t0 = time.time()
    code = ("import json, sys; from mpirl.bench.peers import sb3_ppo; "
            f"print(json.dumps(sb3_ppo({env_id!r}, {seed}, {threshold}, {seconds}, {batch_size}, {steps})))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds + 300,
                          env=dict(os.environ, MPIRL_PEER_T0=repr(t0)))
    if proc.returncode != 0:
        raise RuntimeError(f"stable-baselines3 PPO failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv) -> int:
    """Run the side-by-side comparison; prints a table and writes CSV/JSON/PNG."""
    args = parser().parse_args(argv)
    import importlib.util

    if importlib.util.find_spec("stable_baselines3") is None:
        print("mpirl bench peers: needs stable-baselines3 (pip install stable-baselines3)", file=sys.stderr)
        return 2
    from mpirl.config import load_job

    env_id = load_job(args.job).env.id
    runs, curves = [], {"mpirl": [], "sb3": []}
    for seed in range(args.first_seed, args.first_seed + args.repeats):
        run = launch(args.job, args.ranks, [f"seed={seed}", "log.tensorboard=false", *args.set], timeout=1800)
        rows = [r for r in run["rows"] if r.get("episode_return_mean") == r.get("episode_return_mean")]
        curve = [(r["wall_time_s"] + run["offset_s"], r["env_steps"], r["episode_return_mean"]) for r in rows]
        runs.append({"who": "mpirl", "seed": seed, "launch_to_return_s": time_to_return(run, args.threshold),
                     "env_steps": int(run["rows"][-1]["env_steps"]), "final_return": curve[-1][2],
                     "greedy_return": run["eval"].get("episode_return_mean", float("nan")),
                     "wall_s": round(run["rows"][-1]["wall_time_s"] + run["offset_s"], 2),
                     "total_s": round(run["total_s"], 2)})
        curves["mpirl"].append(curve)
        print(json.dumps(runs[-1]), flush=True)
        sb = _sb3_subprocess(env_id, seed, args.threshold, args.sb3_seconds, args.sb3_batch_size, args.sb3_steps)
        runs.append({"who": "sb3_ppo", "seed": seed, "launch_to_return_s": sb["launch_to_return_s"],
                     "env_steps": sb["env_steps"], "final_return": sb["final_return"],
                     "greedy_return": float("nan"), "wall_s": round(sb["wall_s"], 2), "total_s": float("nan")})
        curves["sb3"].append(sb["curve"])
        print(json.dumps(runs[-1]), flush=True)
    summary = {who: statistics.median(r["launch_to_return_s"] for r in runs if r["who"] == who)
               for who in ("mpirl", "sb3_ppo")}
    summary["sb3_over_mpirl"] = summary["sb3_ppo"] / summary["mpirl"]
    for who in ("mpirl", "sb3_ppo"):
        mine = [r for r in runs if r["who"] == who]
        summary[f"{who}_wall_s"] = statistics.median(r["wall_s"] for r in mine)
        summary[f"{who}_final_return"] = statistics.median(r["final_return"] for r in mine)
    summary["wall_sb3_over_mpirl"] = summary["sb3_ppo_wall_s"] / summary["mpirl_wall_s"]
    print(f"\nlaunch to a training mean of {args.threshold:g} ({env_id}), median of {args.repeats}: "
          f"mpirl {summary['mpirl']:.1f} s, SB3 PPO {summary['sb3_ppo']:.1f} s ({summary['sb3_over_mpirl']:.2f}x)")
    print(f"whole runs, median: mpirl {summary['mpirl_wall_s']:.1f} s to a final training mean of "
          f"{summary['mpirl_final_return']:.1f}, SB3 PPO {summary['sb3_ppo_wall_s']:.1f} s to "
          f"{summary['sb3_ppo_final_return']:.1f} ({summary['wall_sb3_over_mpirl']:.2f}x)")
    cols = ["who", "seed", "launch_to_return_s", "env_steps", "final_return", "greedy_return", "wall_s", "total_s"]
    meta = {"summary": summary, "runs": runs, "curves": curves, "job": args.job, "ranks": args.ranks,
            "sb3_batch_size": args.sb3_batch_size, "sb3_steps": args.sb3_steps, "threshold": args.threshold, "date": time.strftime("%Y-%m-%d")}
    written = write_csv_json(args.out_dir, "peers", runs, cols, meta)
    written.append(_plot(args.out_dir, curves, args.threshold, env_id))
    print_written(written)
    return 0


def _plot(out_dir: str, curves: dict, threshold: float, env_id: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for who, color in (("mpirl", "C0"), ("sb3", "C1")):
        for i, c in enumerate(curves[who]):
            if c:
                ax.plot([p[0] for p in c], [p[2] for p in c], color=color, alpha=0.8,
                        label=("mpirl" if who == "mpirl" else "stable-baselines3 PPO") if i == 0 else None)
    ax.axhline(threshold, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="seconds since launch", ylabel="training return mean (last 100 episodes)", title=env_id)
    ax.legend()
    path = os.path.join(out_dir, "peers.png")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
