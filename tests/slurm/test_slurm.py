"""The sbatch templates on a real one-node SLURM cluster (Debian slurm-wlm + munge) started here.

The module fixture runs tests/slurm/start-cluster.sh and stop-cluster.sh afterwards (see
slurm_helpers.py: skipped with the script's reason when the cluster cannot start). Jobs are tiny tabular
FrozenLake runs of 2 ranks launched by the bundled MPICH `mpiexec`.
"""
import glob
import os
import re

import pytest

from slurm_helpers import QUIET, cluster_env, env_steps_column, preempted_run, read, sbatch, wait_state

JOB = "jobs/frozenlake_q.toml"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    yield from cluster_env(tmp_path_factory, nodes=1)


def test_train_completes(cluster, tmp_path):
    out = str(tmp_path)
    jid = sbatch(cluster, out, "train.sbatch", JOB, "--set", "total_env_steps=20000", "--set", "eval.episodes=50",
                 *QUIET)
    info = wait_state(cluster, jid)
    log = read(f"{out}/slurm-{jid}.out")
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log
    assert "mpirl exited with status 0" in log and "launcher mpiexec" in log, log
    run = f"{out}/runs/frozenlake_q-{jid}"
    assert env_steps_column(f"{run}/metrics.csv")[-1] == 20000
    assert glob.glob(f"{run}/checkpoints/ckpt-*.h5"), os.listdir(run)
    assert os.path.exists(f"{run}/eval.json")


def test_array_two_seeds(cluster, tmp_path):
    out = str(tmp_path)
    jid = sbatch(cluster, out, "sweep-array.sbatch", JOB, "--", "--set", "total_env_steps=10000", "--no-eval",
                 *QUIET, options=["--array=0-1", f"--output={out}/slurm-%A_%a.out"], extra_env={"SEEDS": "0 1"})
    for task in (0, 1):
        info = wait_state(cluster, f"{jid}_{task}")
        assert info["JobState"] == "COMPLETED", read(f"{out}/slurm-{jid}_{task}.out")
    runs = sorted(os.listdir(f"{out}/runs"))
    assert runs == [f"frozenlake_q-s0-{jid}_0", f"frozenlake_q-s1-{jid}_1"], runs
    for seed, run in enumerate(runs):
        assert re.search(rf"^seed = {seed}$", read(f"{out}/runs/{run}/config.toml"), re.M)
        assert glob.glob(f"{out}/runs/{run}/checkpoints/ckpt-10000.h5")
    # Different seeds give different learning curves.
    assert read(f"{out}/runs/{runs[0]}/metrics.csv") != read(f"{out}/runs/{runs[1]}/metrics.csv")


def test_preempt_requeue_resume(cluster, tmp_path):
    preempted_run(cluster, str(tmp_path), "train.sbatch")


def test_multinode_template_through_srun(cluster, tmp_path):
    # One node here: the template's own 2-node default is overridden, and srun (PMI-2) launches the
    # ranks as it would with a site MPI, instead of the bundled mpiexec.
    out = str(tmp_path)
    jid = sbatch(cluster, out, "train-multinode.sbatch", JOB, "--set", "total_env_steps=10000", "--no-eval",
                 *QUIET, options=["--nodes=1", "--ntasks-per-node=2"], extra_env={"MPIRL_LAUNCHER": "srun"})
    info = wait_state(cluster, jid)
    log = read(f"{out}/slurm-{jid}.out")
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log
    assert "launcher srun" in log, log
    run = f"{out}/runs/frozenlake_q-{jid}"
    assert env_steps_column(f"{run}/metrics.csv")[-1] == 10000
    assert glob.glob(f"{run}/checkpoints/ckpt-10000.h5"), os.listdir(run)
