"""The sbatch templates and the test-cluster scripts pass `bash -n` and shellcheck."""
import glob
import os
import shutil
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = sorted(glob.glob(os.path.join(REPO, "slurm", "*.sbatch")) + [os.path.join(REPO, "slurm", "lib.sh")]
                 + glob.glob(os.path.join(REPO, "tests", "slurm", "*.sh")))


def test_templates_exist():
    names = {os.path.basename(p) for p in SCRIPTS}
    assert {"train.sbatch", "sweep-array.sbatch", "train-multinode.sbatch", "train-gpu.sbatch"} <= names


@pytest.mark.parametrize("path", SCRIPTS, ids=os.path.basename)
def test_bash_syntax(path):
    r = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("path", SCRIPTS, ids=os.path.basename)
def test_shellcheck(path):
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck; `make test` installs it as root)")
    r = subprocess.run(["shellcheck", "-x", path], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_start_that_died_before_its_first_checkpoint_is_moved_aside(tmp_path):
    # Outside SLURM: lib.sh's run directory for job id "lost1" holds files but no checkpoint.
    import sys

    runs = tmp_path / "runs"
    old = runs / "job-lost1"
    old.mkdir(parents=True)
    (old / "metrics.csv").write_text("env_steps\n10\n")
    job = tmp_path / "job.toml"
    job.write_text('algo = "tabular_q"\ntotal_env_steps = 2000\n[env]\nid = "FrozenLake-v1"\n'
                   '[log]\ntensorboard = false\nprogress = false\n[eval]\nepisodes = 10\n')
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ, SLURM_JOB_ID="lost1", MPIRL_RUNS=str(runs), MPIRL_LAUNCHER="mpiexec", SLURM_NTASKS="1",
               MPIRL_PYTHON=sys.executable, PATH=bindir + os.pathsep + os.environ["PATH"])
    r = subprocess.run(["bash", "-c", f'source "{REPO}/slurm/lib.sh" && mpirl_main "{job}"'], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "moved it to" in r.stdout and "starting afresh" in r.stdout
    aside = [p for p in os.listdir(runs) if p.startswith("job-lost1.no-checkpoint-")]
    assert len(aside) == 1 and (runs / aside[0] / "metrics.csv").read_text() == "env_steps\n10\n"
    assert os.path.exists(runs / "job-lost1" / "checkpoints" / "latest.h5")
