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
